#pragma once
// The front doors' bridge from host views to the model's HBM: host memory is seen as device HBM, so a
// tensor_view becomes an hbm tensor in place (hbm.hpp), and a type-erased any_view (the optional
// operands of the options: bias, residual, γ, β, ...) becomes an HBM region of its dtype.

#include <cstddef>
#include <cstdint>

#include "trellis/core/dtype.hpp"
#include "trellis/systolic/dtype.hpp"
#include "trellis/systolic/region.hpp"

namespace trellis::systolic {

/// The model's dtype for a library element type.
constexpr dtype to_model_dtype(trellis::dtype t) noexcept { return t == trellis::dtype::f32 ? dtype::f32 : dtype::bf16; }

/// The HBM region [rows, cols] of a read-only any_view whose element [0, 0] lies `offset` elements past
/// v.data(), rows `row_stride` and columns `col_stride` elements apart (one head's slice of a 4-D mask, say);
/// an absent view gives an absent region.
inline region hbm_region(const any_view& v, std::size_t offset, std::size_t rows, std::size_t cols,
                         std::size_t row_stride, std::size_t col_stride) noexcept {
  region r;
  if (!v.present()) return r;
  r.space = memory_space::hbm;
  r.type = to_model_dtype(v.type());
  r.writable = false;
  const std::size_t elem = trellis::size_of(v.type());
  r.rows = rows;
  r.cols = cols;
  r.row_stride_bytes = static_cast<std::ptrdiff_t>(row_stride * elem);
  r.col_stride_bytes = static_cast<std::ptrdiff_t>(col_stride * elem);
  r.origin = reinterpret_cast<std::byte*>(const_cast<void*>(v.data())) + offset * elem;
  r.address = reinterpret_cast<std::uintptr_t>(v.data()) + offset * elem;
  return r;
}

/// An HBM region over a read-only any_view of rank 1 ([n] → [1, n]) or rank 2 ([r, c]); absent views give
/// an absent region. Front doors validate ranks and shapes before they call this.
inline region hbm_region(const any_view& v) noexcept {
  if (v.rank() == 1) return hbm_region(v, 0, 1, v.extent(0), v.extent(0), v.stride(0));
  return hbm_region(v, 0, v.extent(0), v.extent(1), v.stride(0), v.stride(1));
}

}  // namespace trellis::systolic
