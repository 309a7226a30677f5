#pragma once
// Reading and writing one strided row segment as contiguous fp32, whatever the element type and
// stride: contiguous rows use the vector loads/stores, strided ones fall back to element loops.

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "trellis/core/dtype.hpp"
#include "trellis/cpu/simd_provider.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// n values starting at p with element stride `stride`, as contiguous floats: p itself when it
/// already is contiguous fp32, otherwise converted into tmp.
template <class S, class T>
const float* row_as_f32(const T* p, std::size_t stride, std::size_t n, float* tmp) {
  if constexpr (std::is_same_v<T, float>)
    if (stride == 1 || n <= 1) return p;
  if (stride == 1 || n <= 1) {
    simd_io<S>::widen(p, n, tmp);
  } else {
    for (std::size_t j = 0; j < n; ++j) tmp[j] = float(p[j * stride]);
  }
  return tmp;
}

/// The same for a type-erased operand (its dtype is known only at run time).
template <class S>
const float* row_as_f32(const any_view& v, std::size_t offset, std::size_t stride, std::size_t n,
                        float* tmp) {
  if (v.type() == dtype::f32)
    return row_as_f32<S>(static_cast<const float*>(v.data()) + offset, stride, n, tmp);
  return row_as_f32<S>(static_cast<const bf16*>(v.data()) + offset, stride, n, tmp);
}

/// Writes n contiguous floats to p (element stride `stride`), rounding to T.
template <class S, class T>
void store_row(T* p, std::size_t stride, const float* src, std::size_t n) {
  if (stride == 1 || n <= 1) {
    if constexpr (std::is_same_v<T, float>)
      std::memcpy(p, src, n * sizeof(float));
    else
      simd_io<S>::narrow(src, n, p);
  } else {
    for (std::size_t j = 0; j < n; ++j) p[j * stride] = T(src[j]);
  }
}

template <class S>
void store_row(const any_output_view& v, std::size_t offset, const float* src, std::size_t n) {
  if (v.type() == dtype::f32)
    store_row<S>(static_cast<float*>(v.data()) + offset, 1, src, n);
  else
    store_row<S>(static_cast<bf16*>(v.data()) + offset, 1, src, n);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
