#pragma once
// tensor_view<T, Rank>: a non-owning view of a strided tensor (pointer + shape + strides, in
// elements).
//
// Row-major strides are the default; explicit strides allow padded leading dimensions and
// transposed views. Like std::span, constness lives in T: tensor_view<const float, 2> reads,
// tensor_view<float, 2> writes, and a mutable view converts implicitly to a const one.

#include <array>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace trellis {

template <class T, std::size_t Rank>
class tensor_view {
  static_assert(Rank >= 1, "tensor_view: Rank must be at least 1");

 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;
  using shape_type = std::array<std::size_t, Rank>;
  static constexpr std::size_t rank = Rank;

  /// An empty view (null data, all extents 0): what an absent optional tensor looks like.
  constexpr tensor_view() noexcept = default;

  /// A row-major view: the last axis is contiguous.
  constexpr tensor_view(T* data, const shape_type& shape) noexcept
      : data_(data), shape_(shape), strides_(row_major_strides(shape)) {}

  /// A view with explicit strides, counted in elements.
  constexpr tensor_view(T* data, const shape_type& shape, const shape_type& strides) noexcept
      : data_(data), shape_(shape), strides_(strides) {}

  /// A mutable view converts to a const one.
  template <class U>
  requires(std::is_same_v<const U, T> &&
           !std::is_same_v<U, T>) constexpr tensor_view(const tensor_view<U, Rank>& other) noexcept
      : data_(other.data()), shape_(other.shape()), strides_(other.strides()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr const shape_type& shape() const noexcept { return shape_; }
  constexpr const shape_type& strides() const noexcept { return strides_; }
  constexpr std::size_t extent(std::size_t axis) const noexcept { return shape_[axis]; }
  constexpr std::size_t stride(std::size_t axis) const noexcept { return strides_[axis]; }

  /// Number of elements (product of the extents).
  constexpr std::size_t size() const noexcept {
    std::size_t n = 1;
    for (std::size_t e : shape_) n *= e;
    return n;
  }
  constexpr bool empty() const noexcept { return size() == 0; }

  template <class... Index>
  requires(sizeof...(Index) == Rank &&
           (std::is_convertible_v<Index, std::size_t> && ...)) constexpr T&
  operator()(Index... index) const noexcept {
    const std::array<std::size_t, Rank> i{static_cast<std::size_t>(index)...};
    std::size_t offset = 0;
    for (std::size_t a = 0; a < Rank; ++a) offset += i[a] * strides_[a];
    return data_[offset];
  }

  /// The same memory with two axes swapped (no data moves): e.g. a [K, N] view of an [N, K] matrix.
  constexpr tensor_view transposed(std::size_t axis0 = Rank - 2,
                                   std::size_t axis1 = Rank - 1) const noexcept
      requires(Rank >= 2) {
    tensor_view t = *this;
    std::swap(t.shape_[axis0], t.shape_[axis1]);
    std::swap(t.strides_[axis0], t.strides_[axis1]);
    return t;
  }

  static constexpr shape_type row_major_strides(const shape_type& shape) noexcept {
    shape_type s{};
    std::size_t step = 1;
    for (std::size_t a = Rank; a-- > 0;) {
      s[a] = step;
      step *= shape[a];
    }
    return s;
  }

 private:
  T* data_ = nullptr;
  shape_type shape_{};
  shape_type strides_{};
};

template <class T>
inline constexpr bool is_tensor_view_v = false;
template <class T, std::size_t Rank>
inline constexpr bool is_tensor_view_v<tensor_view<T, Rank>> = true;

/// A tensor_view of the given rank (any element type, const or not).
template <class V, std::size_t Rank>
concept tensor_view_of_rank =
    is_tensor_view_v<std::remove_cvref_t<V>> && std::remove_cvref_t<V>::rank == Rank;

/// The read-only view of V's element type.
template <class V>
using const_view_t =
    tensor_view<const typename std::remove_cvref_t<V>::value_type, std::remove_cvref_t<V>::rank>;

}  // namespace trellis
