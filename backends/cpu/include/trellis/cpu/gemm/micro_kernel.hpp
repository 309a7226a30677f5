#pragma once
// The register-tiled GEMM micro-kernel: an MR × (NV·lanes) fp32 tile of C held in MR·NV vector registers
// (6 × 64 = 24 zmm on AVX-512, 6 × 16 = 12 ymm on AVX2), A broadcast one element at a time, B loaded
// as NV vectors per k. Operands come packed and zero-padded (pack.hpp), so there is no tail case here.

#include <cstddef>

#include "trellis/cpu/simd_provider.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// Register tile for provider S: MR rows × NV vectors.
template <class S>
struct gemm_tile {
  static constexpr std::size_t mr = 6;
  static constexpr std::size_t nv = S::lanes >= 16 ? 4 : 2;
  static constexpr std::size_t nr = nv * S::lanes;
};

/// acc[MR, NR] (row stride ld) = (first ? 0 : acc) + Σ_k a_panel[k, :]ᵀ · b_panel[k, :] over kc steps.
/// The sum runs over k in order, so a fixed K blocking gives the same bits on every thread.
template <class S, std::size_t MR, std::size_t NV>
inline void micro_kernel(std::size_t kc, const float* __restrict a_panel, const float* __restrict b_panel,
                         float* __restrict acc, std::size_t ld, bool first) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes, NR = NV * L;
  vec c[MR][NV];
#pragma GCC unroll 8
  for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (std::size_t v = 0; v < NV; ++v) c[r][v] = first ? S::zero() : S::load(acc + r * ld + v * L);
  for (std::size_t k = 0; k < kc; ++k) {
    vec b[NV];
#pragma GCC unroll 4
    for (std::size_t v = 0; v < NV; ++v) b[v] = S::load(b_panel + k * NR + v * L);
#pragma GCC unroll 8
    for (std::size_t r = 0; r < MR; ++r) {
      const vec a = S::set(a_panel[k * MR + r]);
#pragma GCC unroll 4
      for (std::size_t v = 0; v < NV; ++v) c[r][v] = S::fma(a, b[v], c[r][v]);
    }
  }
#pragma GCC unroll 8
  for (std::size_t r = 0; r < MR; ++r)
#pragma GCC unroll 4
    for (std::size_t v = 0; v < NV; ++v) S::store(acc + r * ld + v * L, c[r][v]);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
