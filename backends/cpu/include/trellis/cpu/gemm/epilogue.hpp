#pragma once
// The GEMM epilogue, fused into the store of each row of C:
//   C ← act(α·acc + bias) + residual + β·C₀     (β = 0 never reads C)
// in the same order as every other target. The row arrives as contiguous fp32 accumulators and is
// finished in place (it is L1-hot), then written to C in C's type and stride.

#include <cstddef>

#include "trellis/cpu/row_io.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/cpu/simd_provider.hpp"
#include "trellis/ops/matmul.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// The bias as n contiguous floats, widened once by the calling thread and shared read-only by the
/// workers (nullptr without a bias).
template <class S>
const float* widened_bias(const matmul_options& opts, std::size_t n) {
  if (!opts.epilogue.bias) return nullptr;
  float* widened = thread_scratch(scratch_slot::row_params).get(n);
  return row_as_f32<S>(opts.epilogue.bias, 0, opts.epilogue.bias.stride(0), n, widened);
}

/// Applies the epilogue to one row of the fp32 accumulator block and stores it into C.
/// `row` holds A·B for C row i, columns [j0, j0 + n); `tmp` has room for n floats.
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
    if (jj < n)
      S::store_n(row + jj, S::fma(s, S::load_n(x + jj, n - jj), S::load_n(row + jj, n - jj)),
                 n - jj);
  };
  if (ep.residual)
    add_scaled(row_as_f32<S>(ep.residual, i * ep.residual.stride(0) + j0 * ep.residual.stride(1),
                             ep.residual.stride(1), n, tmp),
               1.0f);
  TC* c_row = c.data() + i * c.stride(0) + j0 * c.stride(1);
  if (opts.beta != 0.0f)
    add_scaled(row_as_f32<S>(static_cast<const TC*>(c_row), c.stride(1), n, tmp), opts.beta);
  store_row<S>(c_row, c.stride(1), row, n);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
