#pragma once
// matmul on the CPU target. Which GEMM runs:
//   B is a packed_matrix                       → the blocked GEMM on its panels (no packing)
//   M ≤ small_m_rows, A and B contiguous in k  → the small-M dot-product path (B as [N, K] weights)
//   otherwise                                  → the blocked GEMM, packing B panels per call
// bf16 inputs multiply k pairs with vdpbf16ps where the CPU has AVX-512 BF16, fp32 FMAs elsewhere.

#include <type_traits>

#include "trellis/cpu/gemm/gemm.hpp"
#include "trellis/cpu/gemm/small_m.hpp"
#include "trellis/cpu/packed_matrix.hpp"
#include "trellis/cpu/simd_hwy.hpp"
#include "trellis/cpu/simd_xsimd.hpp"
#include "trellis/cpu/target.hpp"
#include "trellis/ops/matmul.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// Up to this many rows of A, weights stored as [N, K] take the dot-product path. Measured with
/// bench/gemm_bench (docs/performance.md): with vdpbf16ps the dot path beats packing the transposed
/// weights up to M = 64; in fp32 the blocked GEMM wins from M ≈ 32 on.
template <class S, class T>
inline constexpr std::size_t small_m_rows = uses_pairs_v<S, T> ? 64 : 16;

template <class S, class TA, class TB, class TC>
void gemm(int threads, tensor_view<const TA, 2> a, tensor_view<const TB, 2> b, tensor_view<TC, 2> c,
          const matmul_options& opts) {
  if constexpr (std::is_same_v<TA, TB>)
    if (small_m_applies(a, b, small_m_rows<S, TA>)) return gemm_small_m<S>(threads, a, b, c, opts);
  constexpr bool pairs = uses_pairs_v<S, TA>;
  gemm_blocked<S, pairs>(threads, a, b, prepacked_b<pairs>{}, c, opts);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE

template <class Provider>
struct op_impl<matmul_fn, basic_cpu<Provider>> {
  using simd = cpu_detail::simd<Provider>;

  /// a is [M, K], b is [K, N] (transposes already applied by the front door).
  template <class TA, class TB, class TC>
  static void run(const basic_cpu<Provider>& target, tensor_view<const TA, 2> a,
                  tensor_view<const TB, 2> b, tensor_view<TC, 2> c, const matmul_options& opts) {
    cpu_detail::gemm<simd>(target.threads, a, b, c, opts);
  }

  /// b packed ahead of time for this provider.
  template <class T, class TC>
  static void run(const basic_cpu<Provider>& target, tensor_view<const T, 2> a,
                  const basic_packed_matrix<Provider, T>& b, tensor_view<TC, 2> c,
                  const matmul_options& opts) {
    constexpr bool pairs = cpu_detail::uses_pairs_v<simd, T>;
    cpu_detail::gemm_blocked<simd, pairs>(target.threads, a, tensor_view<const T, 2>{}, b.panels(),
                                          c, opts);
  }
};

}  // namespace trellis
