#pragma once
// hbm<T, Rank>: a tensor in device HBM. In functional runs it is a view of host memory (the model
// reads and writes it in place); for timing-only runs it can be shape-only, with no memory behind it.
//
//   std::vector<bf16> host(K * M);
//   hbm<const bf16> lhsT{{host.data(), {K, M}}};        // [K, M]
//   dma_copy(nc, a, lhsT.tile(k, m, 128, 128));          // DMA reads a [128, 128] block
//   auto big = hbm<bf16>::shape_only({1 << 16, 8192});   // timing-only: no memory

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>

#include "trellis/core/error.hpp"
#include "trellis/core/tensor_view.hpp"
#include "trellis/systolic/region.hpp"
#include "trellis/systolic/dtype.hpp"

namespace trellis::systolic {

namespace detail {
/// Distinct, never-dereferenced addresses for shape-only tensors (above any real user-space address), so
/// that a scheduler can tell their byte ranges apart.
inline std::uintptr_t synthetic_hbm_address(std::size_t bytes) {
  static std::atomic<std::uintptr_t> next{std::uintptr_t{1} << 62};
  const std::uintptr_t page = 4096;
  return next.fetch_add((bytes + page - 1) / page * page + page);
}
}  // namespace detail

template <class T, std::size_t Rank = 2>
class hbm {
  static_assert(is_element_type_v<std::remove_const_t<T>>,
                "hbm<T>: T must be float, bf16, f16, f8e4m3 or f8e5m2 (optionally const)");

 public:
  using element_type = T;
  using value_type = std::remove_const_t<T>;
  using shape_type = std::array<std::size_t, Rank>;

  hbm() = default;
  /// A view of host memory seen as device HBM.
  hbm(tensor_view<T, Rank> view) noexcept  // NOLINT: implicit, like std::span from a container
      : view_(view), address_(reinterpret_cast<std::uintptr_t>(view.data())) {}

  /// A tensor with a shape and no memory: only a timing-only core accepts it.
  static hbm shape_only(const shape_type& shape) {
    hbm h;
    h.view_ = tensor_view<T, Rank>{nullptr, shape};
    h.address_ = detail::synthetic_hbm_address(h.view_.size() * sizeof(T));
    return h;
  }

  /// hbm<T> converts to hbm<const T>.
  template <class U>
    requires(std::is_same_v<const U, T> && !std::is_same_v<U, T>)
  hbm(const hbm<U, Rank>& other) noexcept  // NOLINT
      : view_(other.view()), address_(other.address()) {}

  const tensor_view<T, Rank>& view() const noexcept { return view_; }
  const shape_type& shape() const noexcept { return view_.shape(); }
  std::size_t extent(std::size_t axis) const noexcept { return view_.extent(axis); }
  bool has_memory() const noexcept { return view_.data() != nullptr; }
  /// Address of element 0 (real, or synthetic for shape-only tensors).
  std::uintptr_t address() const noexcept { return address_; }

  /// Rows [row0, row0 + rows) and columns [col0, col0 + cols) of a 2-D tensor. Checked.
  hbm tile(std::size_t row0, std::size_t col0, std::size_t rows, std::size_t cols) const
    requires(Rank == 2)
  {
    if (row0 + rows > view_.extent(0) || col0 + cols > view_.extent(1))
      raise_error("hbm.tile: [" + std::to_string(row0) + ":" + std::to_string(row0 + rows) + ", " +
                  std::to_string(col0) + ":" + std::to_string(col0 + cols) + "] is outside the tensor's shape " +
                  detail::shape_string(view_.extent(0), view_.extent(1)));
    const std::size_t offset = row0 * view_.stride(0) + col0 * view_.stride(1);
    hbm h;
    h.view_ = tensor_view<T, Rank>{has_memory() ? view_.data() + offset : nullptr, {rows, cols}, view_.strides()};
    h.address_ = address_ + offset * sizeof(T);
    return h;
  }

  /// The region an instruction sees (a 2-D tensor only).
  operator region() const noexcept  // NOLINT: instructions take any region
    requires(Rank == 2)
  {
    region a;
    a.space = memory_space::hbm;
    a.type = dtype_of<value_type>;
    a.writable = !std::is_const_v<T>;
    a.rows = view_.extent(0);
    a.cols = view_.extent(1);
    a.origin = has_memory() ? reinterpret_cast<std::byte*>(const_cast<value_type*>(view_.data())) : nullptr;
    a.row_stride_bytes = static_cast<std::ptrdiff_t>(view_.stride(0) * sizeof(T));
    a.col_stride_bytes = static_cast<std::ptrdiff_t>(view_.stride(1) * sizeof(T));
    a.address = address_;
    return a;
  }

 private:
  tensor_view<T, Rank> view_{};
  std::uintptr_t address_ = 0;
};

}  // namespace trellis::systolic
