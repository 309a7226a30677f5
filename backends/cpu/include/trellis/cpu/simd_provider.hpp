#pragma once
// The internal SIMD-provider interface every CPU kernel is written against, once.
//
// simd<Provider> is specialised by simd_hwy.hpp and simd_xsimd.hpp. Each specialisation provides:
//   vec, lanes                              one native float vector and its width
//   zero(), set(x)                          constants
//   load(p), store(p, v)                    unaligned full-vector access
//   load_n(p, n), store_n(p, v, n)          the first n < lanes elements (masked tail; rest 0 / untouched)
//   load_bf16(p), store_bf16(p, v)          bf16 <-> float, round-to-nearest-even, NaN kept
//   add, sub, mul, div, max, min, abs, fma  lane-wise (fma = a·b + c, one rounding)
//   exp(v)                                  e^x within 2 ulp where it is a normal float, 0 or a denormal
//                                           below, +inf on overflow, NaN kept (tests/cpu_simd_test.cpp)
//   select_negative(a, x, y)                a < 0 ? x : y per lane
//   reduce_add(v), reduce_max(v)            horizontal reductions
//   native_bf16_dot, bf16_pair_dot(acc, a, b)  acc + a₀b₀ + a₁b₁ per lane on bf16 pairs (AVX-512 BF16
//                                           only; elsewhere bf16 kernels widen to fp32 and use fma)
// Optional members (the helpers below fall back to the portable form when a provider lacks them):
//   lane_sums(const vec* v)                 the vector whose lane i is reduce_add(v[i]), i < lanes
//   stream(p, v), stream_fence()            non-temporal store to a lanes·4-byte-aligned p; the fence
//                                           orders the streamed stores before later stores
// The helpers below (bf16 tails, typed row loads/stores, activations) are written once on top of
// it.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "trellis/core/activation.hpp"
#include "trellis/core/bf16.hpp"
#include "trellis/core/config.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>  // avx512_lane_sums, shared by the providers' AVX-512 lane_sums
#endif

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

template <class Provider>
struct simd;  // specialised per provider

#if defined(__AVX512F__)
/// Lane i of the result = the sum of the 16 lanes of v[i]. Four levels of shuffles and adds: halves of
/// 512, 256 and 128 bits, then pairs; each level halves the number of vectors. The input is taken in a
/// permuted order so that the tree's output lands in lane order.
inline __m512 avx512_lane_sums(const __m512* v) {
  // slot f(k, p) = {0, 2, 1, 3}[p] + {0, 8, 4, 12}[k] of the tree ends in lane 4k + p.
  constexpr int slot_row[16] = {0, 2, 1, 3, 8, 10, 9, 11, 4, 6, 5, 7, 12, 14, 13, 15};  // row of slot s
  // The all-lanes masked forms: gcc 12's unmasked shuffles start from _mm512_undefined_ps() and trip
  // -Wuninitialized; with a full mask they compile to the same instructions.
  constexpr __mmask16 all = 0xFFFF;
  __m512 a[8];
  for (int i = 0; i < 8; ++i) {  // 512 → 256: low halves of slots i and i + 8 beside their high halves
    const __m512 x = v[slot_row[i]], y = v[slot_row[i + 8]];
    a[i] = _mm512_add_ps(_mm512_mask_shuffle_f32x4(x, all, x, y, 0x44), _mm512_mask_shuffle_f32x4(x, all, x, y, 0xEE));
  }
  __m512 b[4];
  for (int i = 0; i < 4; ++i)  // 256 → 128 per slot
    b[i] = _mm512_add_ps(_mm512_mask_shuffle_f32x4(a[i], all, a[i], a[i + 4], 0x88),
                         _mm512_mask_shuffle_f32x4(a[i], all, a[i], a[i + 4], 0xDD));
  __m512 c[2];
  for (int i = 0; i < 2; ++i)  // 128 → 64 (pairs interleaved)
    c[i] = _mm512_add_ps(_mm512_mask_unpacklo_ps(b[i], all, b[i], b[i + 2]),
                         _mm512_mask_unpackhi_ps(b[i], all, b[i], b[i + 2]));
  return _mm512_add_ps(_mm512_mask_shuffle_ps(c[0], all, c[0], c[1], 0x44),
                       _mm512_mask_shuffle_ps(c[0], all, c[0], c[1], 0xEE));
}

/// e^x per lane, within 2 ulp (tested against std::exp over the float range): 0 below −104 (where e^x
/// is below the smallest denormal), +inf from 89 (overflow), NaN kept. Cody–Waite reduction x = n·ln2 + r
/// with |r| ≤ ln2/2, Cephes' degree-7 minimax e^r = 1 + r + r²·P(r), and vscalefps for the 2^n (which
/// handles the exponent range without integer tricks): 15 instructions, about half of Highway 1.0.3's
/// contrib Exp, which matters in attention, where one exp per score costs ≈ 7 % of the prefill time.
inline __m512 avx512_exp(__m512 x) {
  // max/min return their second operand when either is NaN: x second keeps a NaN.
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln2 = 0.693359375 − 2.12194440e−4
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
  return _mm512_scalef_ps(_mm512_add_ps(p, _mm512_set1_ps(1.0f)), n);
}
#endif

/// The vector of the horizontal sums of v[0], …, v[lanes − 1] (lane i = Σ v[i]): a shuffle tree where
/// the provider has one, else lanes scalar reductions. Either way a fixed order, so results are
/// deterministic.
template <class S>
typename S::vec lane_sums(const typename S::vec* v) {
  if constexpr (requires { S::lane_sums(v); }) {
    return S::lane_sums(v);
  } else {
    alignas(64) float sums[S::lanes];
    for (std::size_t i = 0; i < S::lanes; ++i) sums[i] = S::reduce_add(v[i]);
    return S::load(sums);
  }
}

/// Keeps v in a register from here on: gcc otherwise folds a vector that feeds several FMAs back into each
/// of them as a memory operand (one load per use), which makes the small-row decode kernels load-bound.
/// A no-op where the vector type is not a plain register or the compiler is not gcc/clang.
template <class V>
inline void pin_register(V& v) {
#if defined(__GNUC__) && (defined(__AVX512F__) || defined(__AVX2__))
  if constexpr (requires { v.raw; }) {
    asm("" : "+v"(v.raw));
  } else if constexpr (requires { v.data; }) {
    asm("" : "+v"(v.data));
  }
#else
  (void)v;
#endif
}

/// Whether the provider has non-temporal stores (stream / stream_fence).
template <class S>
inline constexpr bool has_stream = requires(float* p, typename S::vec v) {
  S::stream(p, v);
  S::stream_fence();
};

/// Typed access on top of a provider: T is float or bf16, loads widen to float, stores narrow
/// (RNE).
template <class S>
struct simd_io {
  using vec = typename S::vec;
  static constexpr std::size_t lanes = S::lanes;

  static vec load(const float* p) { return S::load(p); }
  static vec load(const bf16* p) { return S::load_bf16(p); }
  static vec load_n(const float* p, std::size_t n) { return S::load_n(p, n); }
  static vec load_n(const bf16* p, std::size_t n) {
    bf16 tmp[lanes] = {};
    std::memcpy(tmp, p, n * sizeof(bf16));
    return S::load_bf16(tmp);
  }
  static void store(float* p, vec v) { S::store(p, v); }
  static void store(bf16* p, vec v) { S::store_bf16(p, v); }
  static void store_n(float* p, vec v, std::size_t n) { S::store_n(p, v, n); }
  static void store_n(bf16* p, vec v, std::size_t n) {
    bf16 tmp[lanes];
    S::store_bf16(tmp, v);
    std::memcpy(p, tmp, n * sizeof(bf16));
  }

  /// dst[0, n) = float(src[0, n)), src contiguous.
  template <class T>
  static void widen(const T* src, std::size_t n, float* dst) {
    std::size_t j = 0;
    for (; j + lanes <= n; j += lanes) S::store(dst + j, load(src + j));
    if (j < n) S::store_n(dst + j, load_n(src + j, n - j), n - j);
  }
  /// dst[0, n) = T(src[0, n)), dst contiguous.
  template <class T>
  static void narrow(const float* src, std::size_t n, T* dst) {
    std::size_t j = 0;
    for (; j + lanes <= n; j += lanes) store(dst + j, S::load(src + j));
    if (j < n) store_n(dst + j, S::load_n(src + j, n - j), n - j);
  }
};

/// The epilogue activations, vectorised from the scalar definitions in trellis/core/activation.hpp.
/// Both GELU forms are rewritten as x·(probability) so that no 1 + f(x) cancels for negative x:
///   gelu_tanh(x) = x·σ(2z), z = √(2/π)(x + 0.044715x³)   since ½(1 + tanh z) = σ(2z)
///   gelu_erf(x)  = x·Φ(x),  Φ(x) = ½·erfc(−x/√2)          with erfc from Numerical Recipes' erfcc
///                                                         (relative error < 1.2e-7 everywhere)
template <class S>
struct simd_activation {
  using vec = typename S::vec;

  /// σ(x) = 1 / (1 + e^(−x))
  static vec sigmoid(vec x) {
    return S::div(S::set(1.0f), S::add(S::set(1.0f), S::exp(S::sub(S::zero(), x))));
  }

  /// Φ(x), the standard normal CDF, for any x: ½·erfc(|x|/√2) reflected for positive x.
  static vec normal_cdf(vec x) {
    const vec z = S::mul(S::abs(x), S::set(0.70710678118654752f));  // |x|/√2
    const vec t = S::div(S::set(1.0f), S::fma(S::set(0.5f), z, S::set(1.0f)));
    vec p = S::set(0.17087277f);
    for (float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f, 0.09678418f,
                    0.37409196f, 1.00002368f, -1.26551223f})
      p = S::fma(p, t, S::set(c));
    const vec erfc = S::mul(t, S::exp(S::sub(p, S::mul(z, z))));  // erfc(|x|/√2)
    const vec half_erfc = S::mul(S::set(0.5f), erfc);             // Φ(−|x|)
    return S::select_negative(x, half_erfc, S::sub(S::set(1.0f), half_erfc));
  }

  static vec apply(activation a, vec x) {
    switch (a) {
      case activation::none:
        return x;
      case activation::silu:
        return S::mul(x, sigmoid(x));
      case activation::gelu_tanh: {
        const vec x3 = S::mul(S::mul(x, x), x);
        const vec z = S::mul(S::set(0.7978845608028654f), S::fma(S::set(0.044715f), x3, x));
        return S::mul(x, sigmoid(S::add(z, z)));
      }
      case activation::gelu_erf:
        return S::mul(x, normal_cdf(x));
    }
    return x;
  }
};

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
