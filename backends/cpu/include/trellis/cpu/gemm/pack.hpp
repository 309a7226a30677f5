#pragma once
// GEMM packing: copy A and B into the order the micro-kernel streams them.
//
// B is packed in micro-panels of NR columns, each holding the whole K: element (s, c) of
// micro-panel jr sits at jr·(steps·NR) + s·NR + c, where a step s is one k (fp32) or the k pair
// (2s, 2s + 1) of bf16 (even k in the low half: the vdpbf16ps operand order). Columns past N and
// the missing odd k are zero. The layout does not depend on the K or N blocking, so a packed_matrix
// and a per-call panel are the same.
//
// A is packed (only when it is not a row-major fp32 matrix) in panels of MR rows × kc steps:
// element (r, s) of panel p at p·(MR·kc) + s·MR + r.

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "trellis/core/bf16.hpp"
#include "trellis/core/tensor_view.hpp"
#include "trellis/cpu/gemm/micro_kernel.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// k-steps for K: K for fp32, ⌈K/2⌉ for bf16 pairs.
template <bool Pairs>
constexpr std::size_t gemm_steps(std::size_t k) noexcept {
  return Pairs ? (k + 1) / 2 : k;
}

/// The k-step element of a matrix at (row, step): value(row, k) is the element at k (or 0 past K).
template <bool Pairs, class Value>
gemm_element<Pairs> gemm_step_element(Value&& value, std::size_t k_count, std::size_t step) {
  if constexpr (Pairs) {
    const std::size_t k = 2 * step;
    const std::uint32_t lo = value(k).bits;
    const std::uint32_t hi = k + 1 < k_count ? value(k + 1).bits : 0u;
    return lo | (hi << 16);
  } else {
    return float(value(step));
  }
}

#if defined(__AVX512F__)
/// dst[j·dst_stride + i] = word j of rows[i] + offset, for a 16 × 16 block of 4-byte words
/// (unpack 32, unpack 64, then two 128-bit lane shuffles).
template <class Word>
inline void transpose_16x16_words(const unsigned char* const* rows, std::size_t offset, Word* dst,
                                  std::size_t dst_stride) {
  static_assert(sizeof(Word) == 4, "32-bit words");
  // The all-ones masked forms are the same instructions; gcc 12's unmasked ones read an
  // _mm512_undefined_*() that -Wuninitialized reports in every caller.
  constexpr __mmask16 all16 = 0xffff;
  constexpr __mmask8 all8 = 0xff;
  __m512i r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_si512(rows[i] + offset);
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_epi32(all16, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_epi32(all16, r[i], r[i + 1]);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + j]: column 4·lane + j of rows g..g+3, per 128-bit lane
    r[g + 0] = _mm512_maskz_unpacklo_epi64(all8, t[g], t[g + 2]);
    r[g + 1] = _mm512_maskz_unpackhi_epi64(all8, t[g], t[g + 2]);
    r[g + 2] = _mm512_maskz_unpacklo_epi64(all8, t[g + 1], t[g + 3]);
    r[g + 3] = _mm512_maskz_unpackhi_epi64(all8, t[g + 1], t[g + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_maskz_shuffle_i32x4(all16, r[j], r[4 + j], 0x88),
                  v1 = _mm512_maskz_shuffle_i32x4(all16, r[j], r[4 + j], 0xdd);
    const __m512i w0 = _mm512_maskz_shuffle_i32x4(all16, r[8 + j], r[12 + j], 0x88),
                  w1 = _mm512_maskz_shuffle_i32x4(all16, r[8 + j], r[12 + j], 0xdd);
    _mm512_storeu_si512(dst + (0 + j) * dst_stride,
                        _mm512_maskz_shuffle_i32x4(all16, v0, w0, 0x88));
    _mm512_storeu_si512(dst + (4 + j) * dst_stride,
                        _mm512_maskz_shuffle_i32x4(all16, v1, w1, 0x88));
    _mm512_storeu_si512(dst + (8 + j) * dst_stride,
                        _mm512_maskz_shuffle_i32x4(all16, v0, w0, 0xdd));
    _mm512_storeu_si512(dst + (12 + j) * dst_stride,
                        _mm512_maskz_shuffle_i32x4(all16, v1, w1, 0xdd));
  }
}
#endif

/// Packs micro-panel columns [j0, j0 + cols) (cols ≤ NR) of B [K, N] for all of K into dst (steps ×
/// NR).
template <class S, bool Pairs, class TB>
void pack_b_micro_panel(tensor_view<const TB, 2> b, std::size_t j0, std::size_t cols,
                        gemm_element<Pairs>* dst) {
  constexpr std::size_t NR = gemm_tile<S>::nr;
  const std::size_t k_count = b.extent(0), steps = gemm_steps<Pairs>(k_count);
  const std::size_t sk = b.stride(0), sn = b.stride(1);
  const TB* base = b.data() + j0 * sn;
  for (std::size_t s = 0; s < steps; ++s)
    std::fill(dst + s * NR + cols, dst + (s + 1) * NR, gemm_element<Pairs>{});
  if (sn == 1) {  // row-major B: each k is `cols` contiguous values (vectorisable loops)
    if constexpr (Pairs) {
      for (std::size_t s = 0; s < steps; ++s) {
        const TB* even = base + 2 * s * sk;
        const TB* odd = 2 * s + 1 < k_count ? even + sk : nullptr;
        for (std::size_t c = 0; c < cols; ++c)
          dst[s * NR + c] =
              std::uint32_t(even[c].bits) | (odd ? std::uint32_t(odd[c].bits) << 16 : 0u);
      }
    } else {
      for (std::size_t k = 0; k < k_count; ++k)
        for (std::size_t c = 0; c < cols; ++c) dst[k * NR + c] = float(base[k * sk + c]);
    }
    return;
  }
  // B given as [N, K] (transpose_b) or general strides: walk 16 steps at a time so the written
  // 16 × NR block stays in L1 while each column's run of k is read contiguously.
  constexpr std::size_t block = 16;
  constexpr bool step_is_one_word = Pairs || std::is_same_v<TB, float>;
  if constexpr (step_is_one_word) {
    if (sk == 1) {
      // k contiguous: a k-step (an fp32 value, or a bf16 pair) is one 4-byte word of the column, so
      // this is a plain 32-bit transpose; only an odd K's last pair needs its high half cleared.
      // 16 columns at a time over all of K: 16 sequential read streams the prefetcher follows, and
      // each step writes one contiguous 64-byte run of the panel.
      const std::size_t full_steps = Pairs ? k_count / 2 : k_count;
      for (std::size_t c0 = 0; c0 < cols; c0 += block) {
        const std::size_t c1 = std::min(cols, c0 + block);
        const unsigned char* column[block];
        for (std::size_t c = c0; c < c1; ++c)
          column[c - c0] = reinterpret_cast<const unsigned char*>(base + c * sn);
        std::size_t s = 0;
#if defined(__AVX512F__)
        if (c1 - c0 == block)
          for (; s + block <= full_steps; s += block)
            transpose_16x16_words(column, 4 * s, &dst[s * NR + c0], NR);
#endif
        for (; s < full_steps; ++s)
          for (std::size_t c = c0; c < c1; ++c)
            std::memcpy(&dst[s * NR + c], column[c - c0] + 4 * s, 4);
      }
      if constexpr (Pairs)
        if (full_steps < steps)
          for (std::size_t c = 0; c < cols; ++c)
            dst[full_steps * NR + c] = base[c * sn + 2 * full_steps].bits;
      return;
    }
  }
  for (std::size_t s0 = 0; s0 < steps; s0 += block) {
    const std::size_t s1 = std::min(steps, s0 + block);
    for (std::size_t c = 0; c < cols; ++c) {
      const TB* column = base + c * sn;
      const auto value = [&](std::size_t k) { return column[k * sk]; };
      for (std::size_t s = s0; s < s1; ++s)
        dst[s * NR + c] = gemm_step_element<Pairs>(value, k_count, s);
    }
  }
}

/// Packs rows [i0, i0 + mc) × steps [s0, s0 + kc) of A [M, K] into MR-row panels (dst holds
/// ⌈mc/MR⌉·MR·kc values; rows past mc are not written: the kernel for a short panel reads only its
/// own rows).
template <class S, bool Pairs, class TA>
void pack_a_block(tensor_view<const TA, 2> a, std::size_t i0, std::size_t mc, std::size_t s0,
                  std::size_t kc, gemm_element<Pairs>* dst) {
  constexpr std::size_t MR = gemm_tile<S>::mr;
  const std::size_t k_count = a.extent(1), sm = a.stride(0), sk = a.stride(1);
  for (std::size_t ip = 0; ip < mc; ip += MR) {
    const std::size_t rows = std::min(MR, mc - ip);
    gemm_element<Pairs>* panel = dst + ip * kc;
    for (std::size_t r = 0; r < rows; ++r) {
      const TA* row = a.data() + (i0 + ip + r) * sm;
      const auto value = [&](std::size_t k) { return row[k * sk]; };
      for (std::size_t s = 0; s < kc; ++s)
        panel[s * MR + r] = gemm_step_element<Pairs>(value, k_count, s0 + s);
    }
  }
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
