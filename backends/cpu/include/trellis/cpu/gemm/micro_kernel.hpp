#pragma once
// The register-tiled GEMM micro-kernel: an MR × (NV·lanes) fp32 tile of C held in MR·NV vector
// registers (6 × 64 = 24 zmm on AVX-512, 6 × 16 = 12 ymm on AVX2). Each k-step broadcasts one value
// of A per row and loads NV vectors of packed B. A k-step is one k (fp32) or one k pair (bf16
// pairs, vdpbf16ps).
//
// A is addressed as a[r·row_stride + s·step_stride]: packed panels use (1, MR), a row-major fp32 A
// is read in place with (lda, 1), so small-M calls never pack A. B comes packed and zero-padded
// (pack.hpp). Rows: any 1 ≤ rows ≤ MR (kernel_for_rows); columns: always NR, into a padded
// accumulator block.

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>

#include "trellis/core/bf16.hpp"
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

/// What one k-step of A and B holds: an fp32 value, or a pair of bf16 (even k in the low half).
template <bool Pairs>
using gemm_element = std::conditional_t<Pairs, std::uint32_t, float>;

/// The A operand of a k-step: packed (gemm_element), or a row-major bf16 A read in place, whose
/// k pair (2s, 2s + 1) is already one little-endian 4-byte word.
template <bool Pairs, class AElement>
inline gemm_element<Pairs> load_a_step(const AElement* a, std::size_t index) {
  if constexpr (std::is_same_v<AElement, gemm_element<Pairs>>) {
    return a[index];
  } else {
    static_assert(Pairs && std::is_same_v<AElement, bf16>, "in-place A: fp32 or bf16 pairs");
    std::uint32_t pair;
    std::memcpy(&pair, a + index, sizeof pair);
    return pair;
  }
}

/// acc[rows, NR] (row stride ld) = (first ? 0 : acc) + Σ_s a[:, s] ⊗ b[s, :] over `steps` k-steps,
/// in order. A's step s of row r is at a[r·a_row_stride + s·a_step_stride] (in AElement units).
/// B is read at b[s·b_step_stride + c]: NR for packed micro-panels, ldb for a row-major fp32 B
/// whose NR columns all exist.
template <class S, std::size_t Rows, std::size_t NV, bool Pairs,
          class AElement = gemm_element<Pairs>>
void micro_kernel(std::size_t steps, const AElement* __restrict a, std::size_t a_row_stride,
                  std::size_t a_step_stride, const gemm_element<Pairs>* __restrict b,
                  std::size_t b_step_stride, float* __restrict acc, std::size_t ld, bool first) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  vec c[Rows][NV];
#pragma GCC unroll 8
  for (std::size_t r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (std::size_t v = 0; v < NV; ++v)
      c[r][v] = first ? S::zero() : S::load(acc + r * ld + v * L);
  for (std::size_t s = 0; s < steps; ++s) {
    vec bv[NV];
#pragma GCC unroll 4
    for (std::size_t v = 0; v < NV; ++v)
      bv[v] = S::load(reinterpret_cast<const float*>(b + s * b_step_stride + v * L));
#pragma GCC unroll 8
    for (std::size_t r = 0; r < Rows; ++r) {
      const auto a_rs = load_a_step<Pairs>(a, r * a_row_stride + s * a_step_stride);
      const vec av = S::set(std::bit_cast<float>(a_rs));
#pragma GCC unroll 4
      for (std::size_t v = 0; v < NV; ++v) {
        if constexpr (Pairs)
          c[r][v] = S::bf16_pair_dot(c[r][v], av, bv[v]);
        else
          c[r][v] = S::fma(av, bv[v], c[r][v]);
      }
    }
  }
#pragma GCC unroll 8
  for (std::size_t r = 0; r < Rows; ++r)
#pragma GCC unroll 4
    for (std::size_t v = 0; v < NV; ++v) S::store(acc + r * ld + v * L, c[r][v]);
}

template <class S, bool Pairs, class AElement = gemm_element<Pairs>>
using micro_kernel_fn = void (*)(std::size_t, const AElement*, std::size_t, std::size_t,
                                 const gemm_element<Pairs>*, std::size_t, float*, std::size_t,
                                 bool);

/// The micro-kernel for a panel of `rows` (1..MR) rows: a row tail costs only its own rows.
template <class S, bool Pairs, class AElement = gemm_element<Pairs>>
micro_kernel_fn<S, Pairs, AElement> kernel_for_rows(std::size_t rows) {
  constexpr std::size_t MR = gemm_tile<S>::mr, NV = gemm_tile<S>::nv;
  static constexpr auto table = []<std::size_t... R>(std::index_sequence<R...>) {
    return std::array<micro_kernel_fn<S, Pairs, AElement>, MR>{
        &micro_kernel<S, R + 1, NV, Pairs, AElement>...};
  }
  (std::make_index_sequence<MR>{});
  return table[rows - 1];
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
