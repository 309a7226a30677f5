#pragma once
// Reference layernorm and rmsnorm: each row in fp64, two passes (mean, then centred variance).

#include <cmath>
#include <vector>

#include "trellis/core/rows.hpp"
#include "trellis/ops/norm.hpp"
#include "trellis/reference/target.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace reference_detail {

enum class norm_kind { layer, rms };

/// s = x (+ r), written to residual_out when asked; then y = normalise(s)·γ (+ β).
template <class TX, class TY, std::size_t Rank, class Options>
void norm_rows(norm_kind kind, tensor_view<const TX, Rank> x, const any_view& gamma, const any_view& beta,
               tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden, const Options& opts) {
  std::vector<double> s(hidden);
  for (std::size_t row = 0; row < rows; ++row) {
    const TX* xr = detail::row_pointer(x, row);
    for (std::size_t j = 0; j < hidden; ++j) {
      // The fused residual is defined as the fp32 sum x + r (what residual_out holds in fp32).
      const float sum = opts.residual ? float(xr[j]) + opts.residual.load(detail::row_offset(opts.residual, row) + j)
                                      : float(xr[j]);
      s[j] = double(sum);
    }
    double mean = 0.0;
    if (kind == norm_kind::layer) {
      for (double e : s) mean += e;
      mean /= double(hidden);
    }
    double var = 0.0;  // for rmsnorm: mean of squares
    for (double e : s) var += (e - mean) * (e - mean);
    var /= double(hidden);
    const double rstd = 1.0 / std::sqrt(var + double(opts.eps));
    if (opts.residual_out) {
      auto out = opts.residual_out;
      const std::size_t base = detail::row_offset(out, row);
      for (std::size_t j = 0; j < hidden; ++j) {
        if (out.type() == dtype::f32) static_cast<float*>(out.data())[base + j] = float(s[j]);
        else static_cast<bf16*>(out.data())[base + j] = bf16(float(s[j]));
      }
    }
    TY* yr = detail::row_pointer(y, row);
    for (std::size_t j = 0; j < hidden; ++j) {
      double value = (s[j] - mean) * rstd;
      if (gamma) value *= gamma.load(j * gamma.stride(0));
      if (beta) value += beta.load(j * beta.stride(0));
      yr[j] = TY(float(value));
    }
  }
}

}  // namespace reference_detail
TRELLIS_END_ISA_NAMESPACE

template <>
struct op_impl<layernorm_fn, reference> {
  template <class TX, class TY, std::size_t Rank>
  static void run(const reference&, tensor_view<const TX, Rank> x, const any_view& gamma, const any_view& beta,
                  tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden, const layernorm_options& opts) {
    reference_detail::norm_rows(reference_detail::norm_kind::layer, x, gamma, beta, y, rows, hidden, opts);
  }
};

template <>
struct op_impl<rmsnorm_fn, reference> {
  template <class TX, class TY, std::size_t Rank>
  static void run(const reference&, tensor_view<const TX, Rank> x, const any_view& gamma, tensor_view<TY, Rank> y,
                  std::size_t rows, std::size_t hidden, const rmsnorm_options& opts) {
    reference_detail::norm_rows(reference_detail::norm_kind::rms, x, gamma, any_view{}, y, rows, hidden, opts);
  }
};

}  // namespace trellis
