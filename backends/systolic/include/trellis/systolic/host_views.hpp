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

/// An HBM region over a read-only any_view of rank 1 ([n] → [1, n]) or rank 2 ([r, c]); absent views give
/// an absent region. Front doors validate ranks and shapes before they call this.
inline region hbm_region(const any_view& v) noexcept {
  region r;
  if (!v.present()) return r;
  r.space = memory_space::hbm;
  r.type = to_model_dtype(v.type());
  r.writable = false;
  const std::size_t elem = trellis::size_of(v.type());
  const bool row = v.rank() == 1;
  r.rows = row ? 1 : v.extent(0);
  r.cols = row ? v.extent(0) : v.extent(1);
  r.row_stride_bytes = row ? static_cast<std::ptrdiff_t>(r.cols * elem) : static_cast<std::ptrdiff_t>(v.stride(0) * elem);
  r.col_stride_bytes = static_cast<std::ptrdiff_t>((row ? v.stride(0) : v.stride(1)) * elem);
  r.origin = reinterpret_cast<std::byte*>(const_cast<void*>(v.data()));
  r.address = reinterpret_cast<std::uintptr_t>(v.data());
  return r;
}

}  // namespace trellis::systolic
