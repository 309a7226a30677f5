#pragma once
// The Highway SIMD provider: one full native vector of float (16 lanes on AVX-512, 8 on AVX2).
// Everything the kernels need goes through this small interface (simd_provider.hpp lists it).

#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include <cstddef>
#include <cstring>
#include <cstdint>

#include "trellis/core/bf16.hpp"
#include "trellis/cpu/simd_provider.hpp"
#include "trellis/cpu/target.hpp"

#if defined(__AVX2__) && HWY_STATIC_TARGET > HWY_AVX2
#warning \
    "Trellis: Highway's static target is below AVX2 although __AVX2__ is set: Highway 1.0.3 also needs -maes -mpclmul (e.g. -march=haswell -maes). The hwy provider falls back to 4-lane SSE."
#endif

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

template <>
struct simd<hwy_provider> {
  using tag = hwy::HWY_NAMESPACE::ScalableTag<float>;
  using vec = hwy::HWY_NAMESPACE::Vec<tag>;
  static constexpr std::size_t lanes = HWY_LANES(float);

  static vec zero() { return hwy::HWY_NAMESPACE::Zero(tag()); }
  static vec set(float x) { return hwy::HWY_NAMESPACE::Set(tag(), x); }
  static vec load(const float* p) { return hwy::HWY_NAMESPACE::LoadU(tag(), p); }
  static void store(float* p, vec v) { hwy::HWY_NAMESPACE::StoreU(v, tag(), p); }
  /// The first n < lanes elements; the other lanes are 0 and their memory is not touched.
  static vec load_n(const float* p, std::size_t n) {
#if HWY_TARGET > HWY_AVX2
    // Below AVX2, Highway 1.0.3's MaskedLoad is an aligned full-vector Load: it faults on an unaligned
    // p and reads past the row. Copy the n elements instead.
    alignas(64) float part[lanes] = {};
    std::memcpy(part, p, n * sizeof(float));
    return hwy::HWY_NAMESPACE::Load(tag(), part);
#else
    return hwy::HWY_NAMESPACE::MaskedLoad(hwy::HWY_NAMESPACE::FirstN(tag(), n), tag(), p);
#endif
  }
  static void store_n(float* p, vec v, std::size_t n) {
    hwy::HWY_NAMESPACE::BlendedStore(v, hwy::HWY_NAMESPACE::FirstN(tag(), n), tag(), p);
  }

  static vec load_bf16(const bf16* p) {
    namespace hn = hwy::HWY_NAMESPACE;
    const hn::Rebind<std::uint16_t, tag> du16;
    const hn::RebindToSigned<tag> di32;
    const auto bits = hn::LoadU(du16, reinterpret_cast<const std::uint16_t*>(p));
    return hn::BitCast(tag(), hn::ShiftLeft<16>(hn::PromoteTo(di32, bits)));
  }
  /// Round-to-nearest-even to bf16, NaN kept quiet (the same rule as trellis::bf16).
  static void store_bf16(bf16* p, vec v) {
    namespace hn = hwy::HWY_NAMESPACE;
    const hn::RebindToUnsigned<tag> du32;
    const hn::RebindToSigned<tag> di32;
    const hn::Rebind<std::uint16_t, tag> du16;
    const auto u = hn::BitCast(du32, v);
    const auto lsb = hn::And(hn::ShiftRight<16>(u), hn::Set(du32, 1u));
    const auto rounded = hn::ShiftRight<16>(hn::Add(u, hn::Add(hn::Set(du32, 0x7fffu), lsb)));
    const auto quiet_nan = hn::Or(hn::ShiftRight<16>(u), hn::Set(du32, 0x40u));
    const auto bits = hn::IfThenElse(hn::RebindMask(du32, hn::IsNaN(v)), quiet_nan, rounded);
    hn::StoreU(hn::DemoteTo(du16, hn::BitCast(di32, bits)), du16,
               reinterpret_cast<std::uint16_t*>(p));
  }

  static vec add(vec a, vec b) { return hwy::HWY_NAMESPACE::Add(a, b); }
  static vec sub(vec a, vec b) { return hwy::HWY_NAMESPACE::Sub(a, b); }
  static vec mul(vec a, vec b) { return hwy::HWY_NAMESPACE::Mul(a, b); }
  static vec div(vec a, vec b) { return hwy::HWY_NAMESPACE::Div(a, b); }
  static vec max(vec a, vec b) { return hwy::HWY_NAMESPACE::Max(a, b); }
  static vec min(vec a, vec b) { return hwy::HWY_NAMESPACE::Min(a, b); }
  static vec abs(vec a) { return hwy::HWY_NAMESPACE::Abs(a); }
  /// a·b + c with one rounding.
  static vec fma(vec a, vec b, vec c) { return hwy::HWY_NAMESPACE::MulAdd(a, b, c); }
  /// e^x: on AVX-512 the shared avx512_exp (≤ 2 ulp); elsewhere Highway's contrib Exp (≤ 1 ulp), whose
  /// argument is clamped to [−104, 89] because Highway 1.0.3 returns garbage past x ≈ 128 (0 at 200,
  /// 2e27 at 1e4): 0 below, +inf above, as IEEE overflow gives (from x ≈ 88.38 on, tests/cpu_simd_test).
  static vec exp(vec x) {
#if HWY_TARGET <= HWY_AVX3
    return vec{avx512_exp(x.raw)};  // same contract, half the instructions (simd_provider.hpp)
#else
    namespace hn = hwy::HWY_NAMESPACE;
    // Exp maps NaN to 0 (its underflow test is false for NaN): a NaN must stay a NaN.
    const vec e = hn::Exp(tag(), hn::Min(hn::Max(x, hn::Set(tag(), -104.0f)), hn::Set(tag(), 89.0f)));
    return hn::IfThenElse(hn::IsNaN(x), x, e);
#endif
  }
  /// Per lane: a < 0 ? if_negative : otherwise.
  static vec select_negative(vec a, vec if_negative, vec otherwise) {
    namespace hn = hwy::HWY_NAMESPACE;
    return hn::IfThenElse(hn::Lt(a, hn::Zero(tag())), if_negative, otherwise);
  }

  /// acc + a₀b₀ + a₁b₁ per lane, where a and b hold bf16 pairs (vdpbf16ps). Only where the CPU has
  /// it: Highway 1.0.3's ReorderWidenMulAccumulate is emulated on every x86 target (cpu.md).
#if HWY_TARGET <= HWY_AVX3 && defined(__AVX512BF16__)
  static constexpr bool native_bf16_dot = true;
  static vec bf16_pair_dot(vec acc, vec a, vec b) {
    return vec{_mm512_dpbf16_ps(acc.raw, (__m512bh)_mm512_castps_si512(a.raw),
                                (__m512bh)_mm512_castps_si512(b.raw))};
  }
#else
  static constexpr bool native_bf16_dot = false;
#endif

  static float reduce_add(vec v) {
    return hwy::HWY_NAMESPACE::GetLane(hwy::HWY_NAMESPACE::SumOfLanes(tag(), v));
  }

#if HWY_TARGET <= HWY_AVX3
  /// Lane i = Σ v[i] for 16 vectors at once: a 4-level shuffle tree (15 adds instead of 16 reductions).
  static vec lane_sums(const vec* v) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i) r[i] = v[i].raw;
    return vec{avx512_lane_sums(r)};
  }
  /// Non-temporal store; p must be 64-byte aligned.
  static void stream(float* p, vec v) { _mm512_stream_ps(p, v.raw); }
  static void stream_fence() { _mm_sfence(); }
#endif
  static float reduce_max(vec v) {
    return hwy::HWY_NAMESPACE::GetLane(hwy::HWY_NAMESPACE::MaxOfLanes(tag(), v));
  }
};

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
