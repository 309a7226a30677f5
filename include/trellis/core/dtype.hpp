#pragma once
// Element types Trellis computes with, and any_view: a type-erased tensor for optional operands
// (bias, residual, γ, β) carried inside option structs.

#include <array>
#include <cstddef>
#include <string>
#include <type_traits>

#include "trellis/core/bf16.hpp"
#include "trellis/core/tensor_view.hpp"

namespace trellis {

enum class dtype { f32, bf16 };

constexpr const char* to_string(dtype t) noexcept { return t == dtype::f32 ? "f32" : "bf16"; }

template <class T>
inline constexpr bool is_element_type_v =
    std::is_same_v<std::remove_cv_t<T>, float> || std::is_same_v<std::remove_cv_t<T>, bf16>;

template <class T>
requires is_element_type_v<T>
inline constexpr dtype dtype_of =
    std::is_same_v<std::remove_cv_t<T>, float> ? dtype::f32 : dtype::bf16;

constexpr std::size_t size_of(dtype t) noexcept { return t == dtype::f32 ? 4 : 2; }

/// A type-erased tensor of any supported element type and rank ≤ 4, or nothing (the default).
/// Built implicitly from any tensor_view, so options read `.bias = my_bias_view`. any_view reads;
/// any_output_view (built only from mutable views) is for optional outputs such as a norm's x + r.
template <bool Mutable>
class basic_any_view {
 public:
  static constexpr std::size_t max_rank = 4;
  using pointer = std::conditional_t<Mutable, void*, const void*>;

  constexpr basic_any_view() noexcept = default;

  template <class T, std::size_t Rank>
  requires(
      is_element_type_v<T>&& Rank <= max_rank &&
      (!Mutable ||
       !std::is_const_v<T>)) constexpr basic_any_view(const tensor_view<T, Rank>&
                                                          v) noexcept  // NOLINT: implicit by design
      : data_(v.data()), type_(dtype_of<T>), rank_(Rank) {
    for (std::size_t a = 0; a < Rank; ++a) {
      shape_[a] = v.extent(a);
      strides_[a] = v.stride(a);
    }
  }

  /// True when an operand was supplied (a non-default view).
  constexpr bool present() const noexcept { return rank_ != 0; }
  constexpr explicit operator bool() const noexcept { return present(); }

  constexpr pointer data() const noexcept { return data_; }
  constexpr dtype type() const noexcept { return type_; }
  constexpr std::size_t rank() const noexcept { return rank_; }
  constexpr std::size_t extent(std::size_t axis) const noexcept { return shape_[axis]; }
  constexpr std::size_t stride(std::size_t axis) const noexcept { return strides_[axis]; }

  constexpr std::size_t size() const noexcept {
    std::size_t n = rank_ ? 1 : 0;
    for (std::size_t a = 0; a < rank_; ++a) n *= shape_[a];
    return n;
  }

  /// Back to a typed view; the caller has validated type() and rank().
  template <class T, std::size_t Rank>
  tensor_view<std::conditional_t<Mutable, T, const T>, Rank> as() const noexcept {
    std::array<std::size_t, Rank> shape{}, strides{};
    for (std::size_t a = 0; a < Rank; ++a) {
      shape[a] = shape_[a];
      strides[a] = strides_[a];
    }
    using element = std::conditional_t<Mutable, T, const T>;
    return {static_cast<element*>(data_), shape, strides};
  }

  /// The element at `offset` elements from data(), widened to float.
  float load(std::size_t offset) const noexcept {
    return type_ == dtype::f32 ? static_cast<const float*>(data_)[offset]
                               : float(static_cast<const bf16*>(data_)[offset]);
  }

 private:
  pointer data_ = nullptr;
  dtype type_ = dtype::f32;
  std::size_t rank_ = 0;
  std::array<std::size_t, max_rank> shape_{};
  std::array<std::size_t, max_rank> strides_{};
};

using any_view = basic_any_view<false>;
using any_output_view = basic_any_view<true>;

}  // namespace trellis
