#pragma once
// layernorm and rmsnorm on the NeuronCore model: layernorm(nc, x, gamma, beta, y, opts) and
// rmsnorm(nc, x, gamma, y, opts) with the same views and options as every other target.
//
// The host views are the device's HBM (host memory seen as HBM, in place). The leading axes of x, y, r and
// residual_out fold into rows; where some operand's strides do not let them fold, the kernel runs once per
// slice of the outer axes that do not (each call broadcasts γ/β again, and the core times it). The kernels
// (kernels/norm.hpp) run with default_norm_policy(): 3 x buffers where they fit, else 2. Every option is
// implemented: eps, residual, residual_out; γ/β/r/residual_out may be fp32 or bf16 independently of x.

#include <array>
#include <cstddef>
#include <cstdint>

#include "trellis/ops/norm.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/kernels/norm.hpp"

namespace trellis {
namespace systolic::detail {

/// An HBM region [rows, cols] (row stride in elements, unit column stride) over host memory of dtype t.
inline region host_rows(const void* data, trellis::dtype t, bool writable, std::size_t rows, std::size_t cols,
                        std::size_t row_stride) noexcept {
  region r;
  r.space = memory_space::hbm;
  r.type = t == trellis::dtype::f32 ? dtype::f32 : dtype::bf16;
  r.writable = writable;
  r.rows = rows;
  r.cols = cols;
  const std::size_t elem = trellis::size_of(t);
  r.row_stride_bytes = static_cast<std::ptrdiff_t>(row_stride * elem);
  r.col_stride_bytes = static_cast<std::ptrdiff_t>(elem);
  r.origin = reinterpret_cast<std::byte*>(const_cast<void*>(data));
  r.address = reinterpret_cast<std::uintptr_t>(data);
  return r;
}

/// γ or β [H] (any stride) as an HBM region [1, H]; absent stays absent.
inline region host_param(const any_view& v) noexcept {
  if (!v) return {};
  region r = host_rows(v.data(), v.type(), false, 1, v.extent(0), v.extent(0) * v.stride(0));
  r.col_stride_bytes = static_cast<std::ptrdiff_t>(v.stride(0) * trellis::size_of(v.type()));
  return r;
}

/// How the leading axes of up to four same-shaped operands become rows: axes [0, Rank − 1) with extent > 1,
/// of which the inner ones that every operand can fold (stride[a] = stride[a + 1]·extent[a + 1]) form the
/// rows of one kernel call, and the outer ones are looped over.
template <std::size_t Rank>
struct norm_rows {
  static constexpr std::size_t operands = 4;
  std::array<std::size_t, Rank> axes{};  ///< leading axes with extent > 1, outermost first
  std::size_t count = 0;                 ///< of axes
  std::size_t outer = 0;                 ///< axes[0, outer) are looped over
  std::size_t rows = 1;                  ///< rows per call: Π extents of axes[outer, count)

  using strides_type = std::array<std::array<std::size_t, Rank>, operands>;

  norm_rows(const std::array<std::size_t, Rank>& shape, const strides_type& strides, std::size_t used) {
    for (std::size_t a = 0; a + 1 < Rank; ++a)
      if (shape[a] > 1) axes[count++] = a;
    outer = count;
    while (outer > 0) {
      bool folds = true;
      if (outer < count)
        for (std::size_t o = 0; o < used; ++o)
          folds = folds && strides[o][axes[outer - 1]] == strides[o][axes[outer]] * shape[axes[outer]];
      if (!folds) break;
      --outer;
    }
    for (std::size_t i = outer; i < count; ++i) rows *= shape[axes[i]];
  }

  /// Calls f(offsets, row strides) once per slice, offsets/strides in elements per operand.
  template <class F>
  void for_each(const std::array<std::size_t, Rank>& shape, const strides_type& strides, std::size_t hidden,
                F&& f) const {
    std::array<std::size_t, operands> row_stride{};
    for (std::size_t o = 0; o < operands; ++o) row_stride[o] = count > outer ? strides[o][axes[count - 1]] : hidden;
    std::array<std::size_t, Rank> index{};
    for (;;) {
      std::array<std::size_t, operands> offset{};
      for (std::size_t o = 0; o < operands; ++o)
        for (std::size_t i = 0; i < outer; ++i) offset[o] += index[i] * strides[o][axes[i]];
      f(offset, row_stride);
      std::size_t i = outer;  // next index tuple of the looped axes, last fastest
      while (i > 0 && ++index[i - 1] == shape[axes[i - 1]]) index[--i] = 0;
      if (i == 0) return;
    }
  }
};

template <std::size_t Rank, class V>
std::array<std::size_t, Rank> strides_of(const V& v) noexcept {
  std::array<std::size_t, Rank> s{};
  if (v.rank() == 0) return s;
  for (std::size_t a = 0; a < Rank; ++a) s[a] = v.stride(a);
  return s;
}

/// Both ops: fold rows, wrap the views as HBM, run the kernel per slice.
template <class Machine, class TX, class TY, std::size_t Rank, class Options, class Kernel>
void run_norm(core<Machine>& nc, kernels::norm_kind kind, tensor_view<const TX, Rank> x, const any_view& gamma,
              const any_view& beta, tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden, const Options& opts,
              Kernel kernel) {
  if (rows == 0 || hidden == 0) return;
  const std::array<std::array<std::size_t, Rank>, 4> strides{x.strides(), y.strides(), strides_of<Rank>(opts.residual),
                                                             strides_of<Rank>(opts.residual_out)};
  const std::size_t used = opts.residual_out ? 4 : opts.residual ? 3 : 2;
  const norm_rows<Rank> layout(x.shape(), strides, used);
  layout.for_each(x.shape(), strides, hidden, [&](const auto& offset, const auto& row_stride) {
    const std::size_t n = layout.rows;
    hbm<const TX> xs{tensor_view<const TX, 2>{x.data() + offset[0], {n, hidden}, {row_stride[0], 1}}};
    hbm<TY> ys{tensor_view<TY, 2>{y.data() + offset[1], {n, hidden}, {row_stride[1], 1}}};
    kernels::norm_operands extra{.gamma = host_param(gamma), .beta = host_param(beta), .eps = opts.eps};
    if (const any_view& r = opts.residual)
      extra.residual = host_rows(static_cast<const std::byte*>(r.data()) + offset[2] * trellis::size_of(r.type()),
                                 r.type(), false, n, hidden, row_stride[2]);
    if (const any_output_view& s = opts.residual_out)
      extra.residual_out = host_rows(static_cast<const std::byte*>(s.data()) + offset[3] * trellis::size_of(s.type()),
                                     s.type(), true, n, hidden, row_stride[3]);
    kernel(nc, xs, ys, extra, kernels::default_norm_policy(nc, kind, systolic::dtype_of<TX>, extra, hidden));
  });
}

}  // namespace systolic::detail

template <systolic::machine Machine>
struct op_impl<layernorm_fn, systolic::core<Machine>> {
  template <class TX, class TY, std::size_t Rank>
  static void run(systolic::core<Machine>& nc, tensor_view<const TX, Rank> x, const any_view& gamma,
                  const any_view& beta, tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden,
                  const layernorm_options& opts) {
    systolic::detail::run_norm(nc, systolic::kernels::norm_kind::layer, x, gamma, beta, y, rows, hidden, opts,
                               [](auto& core, auto xs, auto ys, const auto& extra, const auto& policy) {
                                 systolic::kernels::layernorm_tiled(core, xs, ys, extra, policy);
                               });
  }
};

template <systolic::machine Machine>
struct op_impl<rmsnorm_fn, systolic::core<Machine>> {
  template <class TX, class TY, std::size_t Rank>
  static void run(systolic::core<Machine>& nc, tensor_view<const TX, Rank> x, const any_view& gamma,
                  tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden, const rmsnorm_options& opts) {
    systolic::detail::run_norm(nc, systolic::kernels::norm_kind::rms, x, gamma, any_view{}, y, rows, hidden, opts,
                               [](auto& core, auto xs, auto ys, const auto& extra, const auto& policy) {
                                 systolic::kernels::rmsnorm_tiled(core, xs, ys, extra, policy);
                               });
  }
};

}  // namespace trellis
