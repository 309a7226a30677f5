#pragma once
// The small-M path (decode, M ≤ small_m_rows) for weights stored as [N, K] (transpose_b), the
// layout inference engines use: each C element is a dot product of an A row and a weight row, both
// contiguous in k. Nothing is packed; the weights stream from memory once, so the path is
// bandwidth-bound on B.
//
// A tile of up to 4 A rows × 6 weight rows keeps 24 vector accumulators over k; each lane sums its
// own residue class of k and the lanes are added at the end, always in the same order. bf16 on
// AVX-512 BF16 multiplies k pairs with vdpbf16ps; elsewhere bf16 is widened to fp32.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <utility>

#include "trellis/cpu/gemm/epilogue.hpp"
#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/cpu/simd_provider.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

struct small_m_tile {
  static constexpr std::size_t rows = 4;    // A rows per tile
  static constexpr std::size_t cols = 6;    // weight rows (C columns) per tile
  static constexpr std::size_t block = 48;  // C columns per task (8 tiles)
};

/// out[r·ld + c] = Σ_k a[r·lda + k] · w[c·ldw + k] for r < Rows, c < cols::cols (k contiguous in
/// both).
template <class S, std::size_t Rows, class T>
void dot_tile(std::size_t k, const T* a, std::size_t lda, const T* w, std::size_t ldw, float* out,
              std::size_t ld) {
  using vec = typename S::vec;
  constexpr std::size_t C = small_m_tile::cols, L = S::lanes;
  constexpr bool pairs = std::is_same_v<T, bf16> && S::native_bf16_dot;
  constexpr std::size_t step = pairs ? 2 * L : L;  // k per vector
  vec acc[Rows][C];
#pragma GCC unroll 4
  for (std::size_t r = 0; r < Rows; ++r)
#pragma GCC unroll 6
    for (std::size_t c = 0; c < C; ++c) acc[r][c] = S::zero();
  const auto accumulate = [&](auto load_a, auto load_w) {
    vec wv[C];
#pragma GCC unroll 6
    for (std::size_t c = 0; c < C; ++c) wv[c] = load_w(c);
#pragma GCC unroll 4
    for (std::size_t r = 0; r < Rows; ++r) {
      const vec av = load_a(r);
#pragma GCC unroll 6
      for (std::size_t c = 0; c < C; ++c) {
        if constexpr (pairs)
          acc[r][c] = S::bf16_pair_dot(acc[r][c], av, wv[c]);
        else
          acc[r][c] = S::fma(av, wv[c], acc[r][c]);
      }
    }
  };
  const auto load_full = [](const T* p) {
    if constexpr (pairs)
      return S::load(reinterpret_cast<const float*>(p));
    else
      return simd_io<S>::load(p);
  };
  std::size_t kk = 0;
  for (; kk + step <= k; kk += step)
    accumulate([&](std::size_t r) { return load_full(a + r * lda + kk); },
               [&](std::size_t c) { return load_full(w + c * ldw + kk); });
  if (kk < k) {  // tail: zero-extended copies, so no lane reads past the row
    const std::size_t rest = k - kk;
    T a_tail[Rows][step] = {}, w_tail[C][step] = {};
    for (std::size_t r = 0; r < Rows; ++r)
      std::memcpy(a_tail[r], a + r * lda + kk, rest * sizeof(T));
    for (std::size_t c = 0; c < C; ++c) std::memcpy(w_tail[c], w + c * ldw + kk, rest * sizeof(T));
    accumulate([&](std::size_t r) { return load_full(a_tail[r]); },
               [&](std::size_t c) { return load_full(w_tail[c]); });
  }
  for (std::size_t r = 0; r < Rows; ++r)
    for (std::size_t c = 0; c < C; ++c) out[r * ld + c] = S::reduce_add(acc[r][c]);
}

template <class S, class T>
using dot_tile_fn = void (*)(std::size_t, const T*, std::size_t, const T*, std::size_t, float*,
                             std::size_t);

template <class S, class T>
dot_tile_fn<S, T> dot_tile_for_rows(std::size_t rows) {
  static constexpr auto table = []<std::size_t... R>(std::index_sequence<R...>) {
    return std::array<dot_tile_fn<S, T>, small_m_tile::rows>{&dot_tile<S, R + 1, T>...};
  }
  (std::make_index_sequence<small_m_tile::rows>{});
  return table[rows - 1];
}

/// The small-M path applies when A rows and B columns are contiguous in k.
template <class TA, class TB>
bool small_m_applies(tensor_view<const TA, 2> a, tensor_view<const TB, 2> b, std::size_t max_rows) {
  return a.extent(0) <= max_rows && (a.stride(1) == 1 || a.extent(1) <= 1) &&
         (b.stride(0) == 1 || b.extent(0) <= 1);
}

/// C ← epilogue(A·B) with a [M, K] and b [K, N] both contiguous in k (b is a view of [N, K]
/// weights).
template <class S, class T, class TC>
void gemm_small_m(int threads, tensor_view<const T, 2> a, tensor_view<const T, 2> b,
                  tensor_view<TC, 2> c, const matmul_options& opts) {
  constexpr std::size_t R = small_m_tile::rows, C = small_m_tile::cols, NB = small_m_tile::block;
  const std::size_t m = c.extent(0), n = c.extent(1), k = a.extent(1);
  if (m == 0 || n == 0) return;
  const float* bias = widened_bias<S>(opts, n);
  const std::size_t lda = a.stride(0), ldw = b.stride(1);
  parallel_for(threads, (n + NB - 1) / NB, [&](std::size_t task) {
    const std::size_t j0 = task * NB, nb = std::min(NB, n - j0);
    float* out = thread_scratch(scratch_slot::gemm_acc).get(m * NB);  // [m, NB]
    for (std::size_t jt = 0; jt < nb; jt += C) {
      // A short last tile re-reads its last weight row for the missing columns and drops those
      // results.
      const std::size_t cols = std::min(C, nb - jt);
      const T* w = b.data() + (j0 + jt) * ldw;
      float tile[R * C];
      for (std::size_t i0 = 0; i0 < m; i0 += R) {
        const std::size_t rows = std::min(R, m - i0);
        if (cols == C) {
          dot_tile_for_rows<S, T>(rows)(k, a.data() + i0 * lda, lda, w, ldw, tile, C);
        } else {
          const T* last = w + (cols - 1) * ldw;
          const T* rows_of_w[C];
          for (std::size_t cc = 0; cc < C; ++cc) rows_of_w[cc] = cc < cols ? w + cc * ldw : last;
          // Contiguous copy of the short tile's weight rows keeps the kernel's single-stride
          // interface.
          T* packed = reinterpret_cast<T*>(
              thread_scratch(scratch_slot::gemm_b).get((C * k * sizeof(T) + 3) / 4));
          if (k != 0)
            for (std::size_t cc = 0; cc < C; ++cc)
              std::memcpy(packed + cc * k, rows_of_w[cc], k * sizeof(T));
          dot_tile_for_rows<S, T>(rows)(k, a.data() + i0 * lda, lda, packed, k, tile, C);
        }
        for (std::size_t r = 0; r < rows; ++r)
          for (std::size_t cc = 0; cc < cols; ++cc) out[(i0 + r) * NB + jt + cc] = tile[r * C + cc];
      }
    }
    float* tmp = thread_scratch(scratch_slot::row).get(nb);
    for (std::size_t i = 0; i < m; ++i)
      gemm_store_row<S>(out + i * NB, nb, i, j0, c, opts, bias, tmp);
  });
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
