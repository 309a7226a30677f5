#pragma once
// Row addressing for ops that work along the last axis (norms): row r of a rank-R view is the
// row-major r-th index tuple over axes 0..R-2.

#include <cstddef>

#include "trellis/core/config.hpp"
#include "trellis/core/dtype.hpp"
#include "trellis/core/tensor_view.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace detail {

/// Element offset of the first element of row `row`, given extents and strides of the leading axes.
template <class Extents, class Strides>
constexpr std::size_t row_offset(std::size_t rank, const Extents& shape, const Strides& strides,
                                 std::size_t row) noexcept {
  std::size_t offset = 0;
  for (std::size_t a = rank - 1; a-- > 0;) {
    offset += (row % shape[a]) * strides[a];
    row /= shape[a];
  }
  return offset;
}

template <class T, std::size_t Rank>
constexpr T* row_pointer(const tensor_view<T, Rank>& v, std::size_t row) noexcept {
  return v.data() + row_offset(Rank, v.shape(), v.strides(), row);
}

template <bool Mutable>
constexpr std::size_t row_offset(const basic_any_view<Mutable>& v, std::size_t row) noexcept {
  std::size_t shape[basic_any_view<Mutable>::max_rank], strides[basic_any_view<Mutable>::max_rank];
  for (std::size_t a = 0; a < v.rank(); ++a) {
    shape[a] = v.extent(a);
    strides[a] = v.stride(a);
  }
  return row_offset(v.rank(), shape, strides, row);
}

}  // namespace detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
