#pragma once
// The xsimd provider: xsimd::batch<float> of the compile-time default architecture.
//
// xsimd 8.1 lacks a few things the kernels need, so this provider fills them with intrinsics behind
// feature checks (cpu.md, "Library pitfalls"): its AVX-512 fma is a plain x*y+z (not fused under
// clang), it has no masked loads/stores and no bf16 widening/narrowing.

#include <xsimd/xsimd.hpp>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>  // the gaps below are filled for exactly these two ISAs
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "trellis/core/bf16.hpp"
#include "trellis/cpu/simd_provider.hpp"
#include "trellis/cpu/target.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

template <>
struct simd<xsimd_provider> {
  using vec = xsimd::batch<float, xsimd::default_arch>;
  static constexpr std::size_t lanes = vec::size;

  static vec zero() { return vec(0.0f); }
  static vec set(float x) { return vec(x); }
  static vec load(const float* p) { return vec::load_unaligned(p); }
  static void store(float* p, vec v) { v.store_unaligned(p); }

  static vec load_n(const float* p, std::size_t n) {
#if defined(__AVX512F__)
    return vec(_mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p));
#else
    alignas(64) float tmp[lanes] = {};
    std::memcpy(tmp, p, n * sizeof(float));
    return vec::load_aligned(tmp);
#endif
  }
  static void store_n(float* p, vec v, std::size_t n) {
#if defined(__AVX512F__)
    _mm512_mask_storeu_ps(p, static_cast<__mmask16>((1u << n) - 1u), v);
#else
    alignas(64) float tmp[lanes];
    v.store_aligned(tmp);
    std::memcpy(p, tmp, n * sizeof(float));
#endif
  }

  static vec load_bf16(const bf16* p) {
#if defined(__AVX512F__)
    const __m512i wide =
        _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return vec(_mm512_castsi512_ps(_mm512_slli_epi32(wide, 16)));
#elif defined(__AVX2__)
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return vec(_mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
#else
    alignas(64) float tmp[lanes];
    for (std::size_t i = 0; i < lanes; ++i) tmp[i] = float(p[i]);
    return vec::load_aligned(tmp);
#endif
  }

  /// Round-to-nearest-even to bf16, NaN kept quiet (the same rule as trellis::bf16), with xsimd
  /// integer ops.
  static void store_bf16(bf16* p, vec v) {
    using ivec = xsimd::batch<std::uint32_t, xsimd::default_arch>;
    const ivec u = xsimd::bitwise_cast<ivec>(v);
    const ivec lsb = (u >> 16) & ivec(1u);
    const ivec rounded = (u + ivec(0x7fffu) + lsb) >> 16;
    const ivec quiet_nan = (u >> 16) | ivec(0x40u);
    const auto is_nan =
        xsimd::bitwise_cast<ivec>(vec(xsimd::select(v != v, vec(-1.0f), vec(0.0f))));
    const ivec bits = xsimd::select(is_nan != ivec(0u), quiet_nan, rounded);
    alignas(64) std::uint32_t wide[lanes];
    bits.store_aligned(wide);
    for (std::size_t i = 0; i < lanes; ++i)
      p[i] = bf16::from_bits(static_cast<std::uint16_t>(wide[i]));
  }

  static vec add(vec a, vec b) { return a + b; }
  static vec sub(vec a, vec b) { return a - b; }
  static vec mul(vec a, vec b) { return a * b; }
  static vec div(vec a, vec b) { return a / b; }
  static vec max(vec a, vec b) { return xsimd::max(a, b); }
  static vec min(vec a, vec b) { return xsimd::min(a, b); }
  static vec abs(vec a) { return xsimd::abs(a); }
  static vec fma(vec a, vec b, vec c) {
#if defined(__AVX512F__)
    return vec(_mm512_fmadd_ps(a, b, c));
#elif defined(__AVX2__) && defined(__FMA__)
    return vec(_mm256_fmadd_ps(a, b, c));
#else
    return xsimd::fma(a, b, c);
#endif
  }
  static vec exp(vec x) {
#if defined(__AVX512F__)
    return vec(avx512_exp(x));  // the shared AVX-512 form (simd_provider.hpp)
#else
    return xsimd::exp(x);
#endif
  }
  static vec select_negative(vec a, vec if_negative, vec otherwise) {
    return xsimd::select(a < vec(0.0f), if_negative, otherwise);
  }

  /// acc + a₀b₀ + a₁b₁ per lane, where a and b hold bf16 pairs (vdpbf16ps; xsimd has no bf16 at
  /// all).
#if defined(__AVX512F__) && defined(__AVX512BF16__)
  static constexpr bool native_bf16_dot = true;
  static vec bf16_pair_dot(vec acc, vec a, vec b) {
    return vec(
        _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b)));
  }
#else
  static constexpr bool native_bf16_dot = false;
#endif

  static float reduce_add(vec v) { return xsimd::hadd(v); }

#if defined(__AVX512F__)
  /// Lane i = Σ v[i] for 16 vectors at once (the shuffle tree of simd_provider.hpp).
  static vec lane_sums(const vec* v) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = v[i];
    return vec(avx512_lane_sums(r));
  }
  /// Non-temporal store; p must be 64-byte aligned.
  static void stream(float* p, vec v) { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
#endif
  static float reduce_max(vec v) {
    alignas(64) float tmp[lanes];
    v.store_aligned(tmp);
    return *std::max_element(tmp, tmp + lanes);
  }
};

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
