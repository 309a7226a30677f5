#pragma once
// The element types a NeuronCore stores (fp32, bf16, fp16, fp8 e4m3, fp8 e5m2) and their conversions.
//
// Every conversion from fp32 rounds to nearest, ties to even (DESIGN.md §4.5). Overflow and special
// values (AWS publishes no conversion table, so these are the IEEE 754 / OCP FP8 rules):
//   fp32, bf16, fp16, fp8 e5m2  IEEE-like: a finite value that rounds past the largest finite value becomes
//                               ±Inf; ±Inf stays ±Inf; NaN stays NaN.
//   fp8 e4m3 (OCP "FN")         no Inf: finite overflow and ±Inf saturate to ±448 (the OCP spec's
//                               saturating mode, the one ML frameworks use for casts); NaN stays NaN.
// Each value of every format is exactly representable in fp32, so widening is exact.

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "trellis/core/bf16.hpp"

namespace trellis::systolic {

enum class dtype : std::uint8_t { f32, bf16, f16, f8e4m3, f8e5m2 };

constexpr const char* to_string(dtype t) noexcept {
  switch (t) {
    case dtype::f32: return "fp32";
    case dtype::bf16: return "bf16";
    case dtype::f16: return "fp16";
    case dtype::f8e4m3: return "fp8_e4m3";
    case dtype::f8e5m2: return "fp8_e5m2";
  }
  return "?";
}

constexpr std::size_t size_of(dtype t) noexcept {
  switch (t) {
    case dtype::f32: return 4;
    case dtype::bf16:
    case dtype::f16: return 2;
    case dtype::f8e4m3:
    case dtype::f8e5m2: return 1;
  }
  return 0;
}

/// A binary floating-point format narrower than fp32: exponent and mantissa widths and overflow rule.
struct minifloat_format {
  int exponent_bits;
  int mantissa_bits;
  bool has_inf;  ///< false: the all-ones exponent holds finite values and overflow saturates (e4m3)
  double max_finite;
  std::uint32_t nan_bits;  ///< positive quiet NaN
  constexpr int bias() const noexcept { return (1 << (exponent_bits - 1)) - 1; }
};

// IEEE 754 binary16: largest finite 65504 = (2 − 2^-10)·2^15.
inline constexpr minifloat_format f16_format{5, 10, true, 65504.0, 0x7e00u};
// OCP 8-bit FP (2023) E4M3: bias 7, S.1111.111 is the only NaN, largest finite 448 = 1.75·2^8.
inline constexpr minifloat_format f8e4m3_format{4, 3, false, 448.0, 0x7fu};
// OCP 8-bit FP (2023) E5M2: IEEE-like, largest finite 57344 = 1.75·2^15.
inline constexpr minifloat_format f8e5m2_format{5, 2, true, 57344.0, 0x7eu};

namespace detail {

/// fp32 → format bits, round to nearest even. Values are scaled by powers of two in double, so the
/// only rounding is std::nearbyint's (ties to even in the default rounding mode).
inline std::uint32_t encode_minifloat(const minifloat_format& f, float value) noexcept {
  const std::uint32_t sign = std::signbit(value) ? 1u << (f.exponent_bits + f.mantissa_bits) : 0u;
  if (std::isnan(value)) return f.nan_bits | sign;
  const std::uint32_t max_bits = f.has_inf ? ((1u << f.exponent_bits) - 2u) << f.mantissa_bits | ((1u << f.mantissa_bits) - 1u)
                                           : ((1u << f.exponent_bits) - 1u) << f.mantissa_bits | ((1u << f.mantissa_bits) - 2u);
  const std::uint32_t inf_bits = ((1u << f.exponent_bits) - 1u) << f.mantissa_bits;
  const double a = std::fabs(double(value));
  if (std::isinf(a)) return (f.has_inf ? inf_bits : max_bits) | sign;
  const int min_exponent = 1 - f.bias();  // of the smallest normal
  int e = 0;
  std::frexp(a, &e);  // a = m·2^e, m ∈ [0.5, 1): floor(log2 a) = e − 1
  const int quantum_exponent = std::max(e - 1, min_exponent) - f.mantissa_bits;
  const double rounded = std::ldexp(std::nearbyint(std::ldexp(a, -quantum_exponent)), quantum_exponent);
  if (rounded > f.max_finite) return (f.has_inf ? inf_bits : max_bits) | sign;
  if (rounded == 0.0) return sign;
  std::frexp(rounded, &e);
  const int exponent = e - 1;
  if (exponent < min_exponent)  // subnormal: exponent field 0
    return sign | static_cast<std::uint32_t>(std::ldexp(rounded, f.mantissa_bits - min_exponent));
  const auto mantissa = static_cast<std::uint32_t>(std::ldexp(rounded, f.mantissa_bits - exponent)) - (1u << f.mantissa_bits);
  return sign | static_cast<std::uint32_t>(exponent + f.bias()) << f.mantissa_bits | mantissa;
}

inline float decode_minifloat(const minifloat_format& f, std::uint32_t bits) noexcept {
  const std::uint32_t mantissa_mask = (1u << f.mantissa_bits) - 1u, exponent_mask = (1u << f.exponent_bits) - 1u;
  const bool negative = (bits >> (f.exponent_bits + f.mantissa_bits)) & 1u;
  const std::uint32_t exponent = (bits >> f.mantissa_bits) & exponent_mask, mantissa = bits & mantissa_mask;
  double v = 0.0;
  if (exponent == exponent_mask && f.has_inf)
    v = mantissa ? std::numeric_limits<double>::quiet_NaN() : std::numeric_limits<double>::infinity();
  else if (exponent == exponent_mask && mantissa == mantissa_mask)  // e4m3: S.1111.111
    v = std::numeric_limits<double>::quiet_NaN();
  else if (exponent == 0)
    v = std::ldexp(double(mantissa), 1 - f.bias() - f.mantissa_bits);
  else
    v = std::ldexp(double(mantissa | (1u << f.mantissa_bits)), int(exponent) - f.bias() - f.mantissa_bits);
  return float(negative ? -v : v);
}

}  // namespace detail

/// A storage type of `Bits` bits in format `Format`: explicit conversions both ways, like trellis::bf16.
template <const minifloat_format& Format, class Storage>
struct basic_minifloat {
  Storage bits = 0;
  basic_minifloat() noexcept = default;
  explicit basic_minifloat(float value) noexcept : bits(static_cast<Storage>(detail::encode_minifloat(Format, value))) {}
  explicit operator float() const noexcept { return detail::decode_minifloat(Format, bits); }
  static basic_minifloat from_bits(Storage raw) noexcept {
    basic_minifloat m;
    m.bits = raw;
    return m;
  }
};

using f16 = basic_minifloat<f16_format, std::uint16_t>;
using f8e4m3 = basic_minifloat<f8e4m3_format, std::uint8_t>;
using f8e5m2 = basic_minifloat<f8e5m2_format, std::uint8_t>;

template <class T>
inline constexpr bool is_element_type_v =
    std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16> || std::is_same_v<T, f8e4m3> ||
    std::is_same_v<T, f8e5m2>;

template <class T>
  requires is_element_type_v<std::remove_const_t<T>>
inline constexpr dtype dtype_of = [] {
  using U = std::remove_const_t<T>;
  if constexpr (std::is_same_v<U, float>) return dtype::f32;
  else if constexpr (std::is_same_v<U, bf16>) return dtype::bf16;
  else if constexpr (std::is_same_v<U, f16>) return dtype::f16;
  else if constexpr (std::is_same_v<U, f8e4m3>) return dtype::f8e4m3;
  else return dtype::f8e5m2;
}();

/// The value `value` keeps when stored as `t` (round to nearest even, then widened back exactly).
inline float round_to(dtype t, float value) noexcept {
  switch (t) {
    case dtype::f32: return value;
    case dtype::bf16: return float(bf16(value));
    case dtype::f16: return float(f16(value));
    case dtype::f8e4m3: return float(f8e4m3(value));
    case dtype::f8e5m2: return float(f8e5m2(value));
  }
  return value;
}

/// Reads one element of type `t` at `p` (any alignment; memcpy keeps the bytes' type out of aliasing rules).
inline float load_element(dtype t, const std::byte* p) noexcept {
  switch (t) {
    case dtype::f32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case dtype::bf16:
    case dtype::f16: {
      std::uint16_t b;
      std::memcpy(&b, p, 2);
      return t == dtype::bf16 ? float(bf16::from_bits(b)) : float(f16::from_bits(b));
    }
    case dtype::f8e4m3: return float(f8e4m3::from_bits(std::to_integer<std::uint8_t>(*p)));
    case dtype::f8e5m2: return float(f8e5m2::from_bits(std::to_integer<std::uint8_t>(*p)));
  }
  return 0.0f;
}

/// Writes `value` rounded to nearest even in type `t` at `p`.
inline void store_element(dtype t, std::byte* p, float value) noexcept {
  switch (t) {
    case dtype::f32: std::memcpy(p, &value, 4); return;
    case dtype::bf16: {
      const std::uint16_t b = bf16(value).bits;
      std::memcpy(p, &b, 2);
      return;
    }
    case dtype::f16: {
      const std::uint16_t b = f16(value).bits;
      std::memcpy(p, &b, 2);
      return;
    }
    case dtype::f8e4m3: *p = std::byte{f8e4m3(value).bits}; return;
    case dtype::f8e5m2: *p = std::byte{f8e5m2(value).bits}; return;
  }
}

/// The bytes of the NaN sentinel fresh tiles are filled with, one element of type `t` (a quiet NaN
/// with a recognisable payload where the format has room for one).
inline void store_nan_sentinel(dtype t, std::byte* p) noexcept {
  switch (t) {
    case dtype::f32: {
      const std::uint32_t b = 0x7fc0dead;
      std::memcpy(p, &b, 4);
      return;
    }
    case dtype::bf16: {
      const std::uint16_t b = 0x7fde;
      std::memcpy(p, &b, 2);
      return;
    }
    case dtype::f16: {
      const std::uint16_t b = 0x7ede;
      std::memcpy(p, &b, 2);
      return;
    }
    case dtype::f8e4m3: *p = std::byte{0x7f}; return;
    case dtype::f8e5m2: *p = std::byte{0x7f}; return;
  }
}

}  // namespace trellis::systolic
