#pragma once
// trellis::bf16: the bfloat16 storage type (1 sign, 8 exponent, 7 mantissa bits).
//
// Conversions are explicit both ways. float -> bf16 rounds to nearest, ties to even; NaN stays NaN
// (quiet, sign kept) and ±Inf stays ±Inf; overflow past the largest finite bf16 rounds to Inf as
// IEEE does.

#include <bit>
#include <cstdint>

namespace trellis {

struct bf16 {
  std::uint16_t bits = 0;

  constexpr bf16() noexcept = default;
  constexpr explicit bf16(float value) noexcept : bits(round_to_bits(value)) {}

  constexpr explicit operator float() const noexcept {
    return std::bit_cast<float>(static_cast<std::uint32_t>(bits) << 16);
  }

  static constexpr bf16 from_bits(std::uint16_t raw) noexcept {
    bf16 b;
    b.bits = raw;
    return b;
  }

  /// Round-to-nearest-even of an fp32 value to the upper 16 bits; NaN is quieted, never turned into
  /// Inf.
  static constexpr std::uint16_t round_to_bits(float value) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(value);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<std::uint16_t>((u >> 16) | 0x0040u);
    const std::uint32_t lsb = (u >> 16) & 1u;
    return static_cast<std::uint16_t>((u + 0x7fffu + lsb) >> 16);
  }

  friend constexpr bool operator==(bf16 a, bf16 b) noexcept { return float(a) == float(b); }
};

static_assert(sizeof(bf16) == 2, "bf16 must be a 2-byte storage type");

/// Rounds a float to the nearest bf16 and back: the value a bf16 store would keep.
constexpr float round_to_bf16(float value) noexcept { return float(bf16(value)); }

}  // namespace trellis
