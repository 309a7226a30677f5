#pragma once
// Helpers shared by the test suites: guarded tensors (canaries around and between the elements of a
// strided view, optional misalignment), deterministic fills, and float/bf16 comparisons.

#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <trellis/core/aligned_allocator.hpp>
#include <trellis/core/bf16.hpp>
#include <trellis/core/tensor_view.hpp>
#include <type_traits>
#include <vector>

namespace trellis_test {

using trellis::bf16;

template <class T>
T canary_value() {
  if constexpr (std::is_same_v<T, float>)
    return std::bit_cast<float>(0xc2f6e979u);  // -123.456f
  else
    return bf16::from_bits(0xc2f7);  // ≈ -123.5
}

template <class T>
std::uint32_t bits_of(T v) {
  if constexpr (std::is_same_v<T, float>)
    return std::bit_cast<std::uint32_t>(v);
  else
    return v.bits;
}

inline float to_float(float v) { return v; }
inline float to_float(bf16 v) { return float(v); }

/// A tensor whose storage is filled with canaries: `guard` bytes before and after, padding between
/// rows (`pad_last` extra elements per step of axis Rank-2), and an optional misalignment of the
/// first element by `misalign` elements. Elements are addressed with the same strides the view
/// uses.
template <class T, std::size_t Rank>
class guarded {
 public:
  using shape_type = std::array<std::size_t, Rank>;

  explicit guarded(const shape_type& shape, std::size_t pad_last = 0, std::size_t misalign = 0)
      : shape_(shape) {
    std::size_t step = 1;
    for (std::size_t a = Rank; a-- > 0;) {
      strides_[a] = step;
      step *= shape[a] + (a == Rank - 1 ? pad_last : 0);
    }
    std::size_t span = 1;
    for (std::size_t a = 0; a < Rank; ++a) span += (shape[a] ? shape[a] - 1 : 0) * strides_[a];
    const std::size_t guard = 64 / sizeof(T);
    offset_ = guard + misalign;
    storage_.assign(offset_ + span + guard, canary_value<T>());
    used_.assign(storage_.size(), false);
    if (size() != 0) for_each([&](const shape_type& i) { used_[offset_ + linear(i)] = true; });
  }

  T* data() { return storage_.data() + offset_; }
  const T* data() const { return storage_.data() + offset_; }
  const shape_type& shape() const { return shape_; }
  const shape_type& strides() const { return strides_; }
  std::size_t size() const {
    std::size_t n = 1;
    for (auto e : shape_) n *= e;
    return n;
  }

  trellis::tensor_view<T, Rank> view() { return {data(), shape_, strides_}; }
  trellis::tensor_view<const T, Rank> cview() const { return {data(), shape_, strides_}; }

  std::size_t linear(const shape_type& i) const {
    std::size_t o = 0;
    for (std::size_t a = 0; a < Rank; ++a) o += i[a] * strides_[a];
    return o;
  }
  T& at(const shape_type& i) { return data()[linear(i)]; }
  const T& at(const shape_type& i) const { return data()[linear(i)]; }
  float get(const shape_type& i) const { return to_float(at(i)); }

  /// Calls f(index) for every index tuple in row-major order.
  template <class F>
  void for_each(F&& f) const {
    if (size() == 0) return;
    shape_type i{};
    for (;;) {
      f(static_cast<const shape_type&>(i));
      std::size_t a = Rank;
      while (a-- > 0) {
        if (++i[a] < shape_[a]) break;
        i[a] = 0;
        if (a == 0) return;
      }
    }
  }

  /// Sets every element (not the canaries) from f(index) -> float.
  template <class F>
  void fill(F&& f) {
    for_each([&](const shape_type& i) { at(i) = T(static_cast<float>(f(i))); });
  }
  void fill_value(float v) {
    fill([&](const shape_type&) { return v; });
  }

  /// Number of storage slots outside the view whose bits are no longer the canary's.
  std::size_t damaged_canaries() const {
    std::size_t n = 0;
    const std::uint32_t c = bits_of(canary_value<T>());
    for (std::size_t s = 0; s < storage_.size(); ++s)
      if (!used_[s] && bits_of(storage_[s]) != c) ++n;
    return n;
  }

  /// A bitwise snapshot of the whole storage (elements and canaries).
  std::vector<std::uint32_t> snapshot() const {
    std::vector<std::uint32_t> s(storage_.size());
    for (std::size_t k = 0; k < storage_.size(); ++k) s[k] = bits_of(storage_[k]);
    return s;
  }

 private:
  shape_type shape_{};
  shape_type strides_{};
  std::size_t offset_ = 0;
  // 64-byte aligned, so that "aligned" really means cache-line aligned and an offset of one element
  // really is unaligned for every vector width.
  trellis::aligned_vector<T> storage_;
  std::vector<bool> used_;
};

/// Small integers in [lo, hi]: every fp32 sum of their products stays exact.
struct int_fill {
  std::mt19937& rng;
  int lo, hi;
  template <class I>
  float operator()(const I&) const {
    return float(std::uniform_int_distribution<int>(lo, hi)(rng));
  }
};

struct uniform_fill {
  std::mt19937& rng;
  float lo = -1.0f, hi = 1.0f;
  template <class I>
  float operator()(const I&) const {
    return std::uniform_real_distribution<float>(lo, hi)(rng);
  }
};

/// The spacing of bf16 values at |x| (one unit in the last place).
inline float bf16_ulp(float x) {
  x = std::fabs(x);
  if (x < 1.1754944e-38f) return std::ldexp(1.0f, -133);
  int e = 0;
  std::frexp(x, &e);  // x = m·2^e, m ∈ [0.5, 1)
  return std::ldexp(1.0f, e - 8);
}

/// True when a and b have exactly the same bits (NaNs compare by payload, -0 ≠ +0).
template <class T>
bool same_bits(const T& a, const T& b) {
  return bits_of(a) == bits_of(b);
}

}  // namespace trellis_test
