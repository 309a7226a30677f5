#pragma once
// The blocked GEMM driver: C ← act(α·A·B + bias) + residual + β·C₀ on fp32 register tiles.
//
// Work is split into independent (MC × NC) blocks of C, distributed statically over threads. Each block
// walks K in KC steps: pack the A and B slices (pack.hpp), run the micro-kernel over the register tiles
// into a per-thread fp32 accumulator block, and after the last K step apply the epilogue row by row while
// storing into C. Every element of C is summed over K in the same order whatever the thread count, so
// results are bit-identical for any `threads`. Scratch is per-thread and reused (scratch.hpp).
//
// Scratch per thread: (MC + NC)·KC + MC·NC floats = 512 KiB + 192 KiB on AVX-512, plus 2·NC floats of row
// buffers; the calling thread also keeps N floats of widened bias.
// Speed tuning (cache-derived blocking, shared packed B, bf16 dot products, a small-M path) is the
// subject of the GEMM performance work; this driver is the correct, vectorised baseline.

#include <algorithm>
#include <cstddef>

#include "trellis/cpu/gemm/micro_kernel.hpp"
#include "trellis/cpu/gemm/pack.hpp"
#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/row_io.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/ops/matmul.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

template <class S>
struct gemm_blocking {
  static constexpr std::size_t mr = gemm_tile<S>::mr, nr = gemm_tile<S>::nr;
  static constexpr std::size_t mc = 16 * mr;  // A block: MC × KC fp32 ≈ 96 KiB, L2-resident
  static constexpr std::size_t kc = 256;
  static constexpr std::size_t nc = 512;      // a multiple of NR; B slice KC × NC fp32 = 512 KiB
  static_assert(nc % nr == 0, "NC must hold whole register tiles");
};

/// Applies the epilogue to one row of the fp32 accumulator block and stores it into C.
/// `row` holds α·(A·B) before scaling: n values of C row i, columns [j0, j0 + n).
template <class S, class TC>
void gemm_store_row(float* row, std::size_t n, std::size_t i, std::size_t j0, tensor_view<TC, 2> c,
                    const matmul_options& opts, const float* bias, float* tmp) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const epilogue& ep = opts.epilogue;
  const vec alpha = S::set(opts.alpha);
  const auto pre_activation = [&](std::size_t j, vec v) {
    v = S::mul(alpha, v);
    if (bias) v = S::add(v, S::load(bias + j0 + j));
    return simd_activation<S>::apply(ep.act, v);
  };
  std::size_t j = 0;
  for (; j + L <= n; j += L) S::store(row + j, pre_activation(j, S::load(row + j)));
  if (j < n) {
    const vec bias_tail = bias ? S::load_n(bias + j0 + j, n - j) : S::zero();
    vec v = S::mul(alpha, S::load_n(row + j, n - j));
    if (bias) v = S::add(v, bias_tail);
    S::store_n(row + j, simd_activation<S>::apply(ep.act, v), n - j);
  }
  // residual and β·C₀ are plain additions: accumulate them in order, as the reference does.
  const auto add_scaled = [&](const float* x, float scale) {
    const vec s = S::set(scale);
    std::size_t jj = 0;
    for (; jj + L <= n; jj += L) S::store(row + jj, S::fma(s, S::load(x + jj), S::load(row + jj)));
    if (jj < n) S::store_n(row + jj, S::fma(s, S::load_n(x + jj, n - jj), S::load_n(row + jj, n - jj)), n - jj);
  };
  if (ep.residual)
    add_scaled(row_as_f32<S>(ep.residual, i * ep.residual.stride(0) + j0 * ep.residual.stride(1),
                             ep.residual.stride(1), n, tmp),
               1.0f);
  TC* c_row = c.data() + i * c.stride(0) + j0 * c.stride(1);
  if (opts.beta != 0.0f) add_scaled(row_as_f32<S>(static_cast<const TC*>(c_row), c.stride(1), n, tmp), opts.beta);
  store_row<S>(c_row, c.stride(1), row, n);
}

/// C ← act(α·A·B + bias) + residual + β·C₀ for a [M, K], b [K, N], c [M, N] (already validated).
template <class S, class TA, class TB, class TC>
void gemm(int threads, tensor_view<const TA, 2> a, tensor_view<const TB, 2> b, tensor_view<TC, 2> c,
          const matmul_options& opts) {
  using blk = gemm_blocking<S>;
  const std::size_t m = c.extent(0), n = c.extent(1), k = a.extent(1);
  if (m == 0 || n == 0) return;

  const float* bias = nullptr;  // widened once by the calling thread, shared read-only by the workers
  if (opts.epilogue.bias) {
    float* widened = thread_scratch(scratch_slot::row_params).get(n);
    bias = row_as_f32<S>(opts.epilogue.bias, 0, opts.epilogue.bias.stride(0), n, widened);
  }

  const std::size_t m_blocks = (m + blk::mc - 1) / blk::mc, n_blocks = (n + blk::nc - 1) / blk::nc;
  parallel_for(threads, m_blocks * n_blocks, [&](std::size_t task) {
    const std::size_t i0 = (task / n_blocks) * blk::mc, j0 = (task % n_blocks) * blk::nc;
    const std::size_t mc = std::min(blk::mc, m - i0), nc = std::min(blk::nc, n - j0);
    const std::size_t mc_pad = (mc + blk::mr - 1) / blk::mr * blk::mr;
    const std::size_t nc_pad = (nc + blk::nr - 1) / blk::nr * blk::nr;
    float* acc = thread_scratch(scratch_slot::gemm_acc).get(mc_pad * nc_pad);  // [mc_pad, nc_pad]
    if (k == 0) std::fill(acc, acc + mc_pad * nc_pad, 0.0f);
    for (std::size_t p0 = 0; p0 < k; p0 += blk::kc) {
      const std::size_t kc = std::min(blk::kc, k - p0);
      float* a_packed = thread_scratch(scratch_slot::gemm_a).get(mc_pad * kc);  // mc_pad/MR panels of [kc, MR]
      float* b_packed = thread_scratch(scratch_slot::gemm_b).get(nc_pad * kc);  // nc_pad/NR panels of [kc, NR]
      pack_a<blk::mr>(a, i0, mc, p0, kc, a_packed);
      pack_b<S, blk::nr>(b, p0, kc, j0, nc, b_packed);
      for (std::size_t jp = 0; jp < nc_pad; jp += blk::nr)
        for (std::size_t ip = 0; ip < mc_pad; ip += blk::mr)
          micro_kernel<S, blk::mr, gemm_tile<S>::nv>(kc, a_packed + ip * kc, b_packed + jp * kc,
                                                     acc + ip * nc_pad + jp, nc_pad, p0 == 0);
    }
    float* tmp = thread_scratch(scratch_slot::row).get(nc);
    for (std::size_t i = 0; i < mc; ++i) gemm_store_row<S>(acc + i * nc_pad, nc, i0 + i, j0, c, opts, bias, tmp);
  });
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
