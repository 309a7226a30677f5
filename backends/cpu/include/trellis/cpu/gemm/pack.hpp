#pragma once
// GEMM packing (GotoBLAS/BLIS): copy a block of A or B into the order the micro-kernel streams it,
// widened to fp32 and zero-padded to whole register tiles so the kernel never needs a tail case.

#include <algorithm>
#include <cstddef>

#include "trellis/core/tensor_view.hpp"
#include "trellis/cpu/simd_provider.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// Packs rows [i0, i0 + mc) × columns [p0, p0 + kc) of A [M, K] into panels of MR rows:
/// panel ip holds, for each k, the MR values A[i0 + ip·MR + r, p0 + k] (rows past mc are 0).
template <std::size_t MR, class TA>
void pack_a(tensor_view<const TA, 2> a, std::size_t i0, std::size_t mc, std::size_t p0, std::size_t kc, float* dst) {
  const std::size_t sm = a.stride(0), sk = a.stride(1);
  for (std::size_t ip = 0; ip < mc; ip += MR) {
    const std::size_t rows = std::min(MR, mc - ip);
    float* panel = dst + ip * kc;
    const TA* src = a.data() + (i0 + ip) * sm + p0 * sk;
    if (rows < MR)
      for (std::size_t k = 0; k < kc; ++k)
        for (std::size_t r = rows; r < MR; ++r) panel[k * MR + r] = 0.0f;
    if (sm == 1 && rows == MR) {  // A transposed in memory: each k is MR contiguous values
      for (std::size_t k = 0; k < kc; ++k)
        for (std::size_t r = 0; r < MR; ++r) panel[k * MR + r] = float(src[k * sk + r]);
    } else {
      for (std::size_t r = 0; r < rows; ++r)
        for (std::size_t k = 0; k < kc; ++k) panel[k * MR + r] = float(src[r * sm + k * sk]);
    }
  }
}

/// Packs rows [p0, p0 + kc) × columns [j0, j0 + nc) of B [K, N] into panels of NR columns:
/// panel jp holds, for each k, the NR values B[p0 + k, j0 + jp·NR + c] (columns past nc are 0).
template <class S, std::size_t NR, class TB>
void pack_b(tensor_view<const TB, 2> b, std::size_t p0, std::size_t kc, std::size_t j0, std::size_t nc, float* dst) {
  using io = simd_io<S>;
  const std::size_t sk = b.stride(0), sn = b.stride(1);
  for (std::size_t jp = 0; jp < nc; jp += NR) {
    const std::size_t cols = std::min(NR, nc - jp);
    float* panel = dst + jp * kc;
    const TB* src = b.data() + p0 * sk + (j0 + jp) * sn;
    if (sn == 1) {  // row-major B: each k is `cols` contiguous values
      for (std::size_t k = 0; k < kc; ++k) {
        io::widen(src + k * sk, cols, panel + k * NR);
        std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.0f);
      }
    } else {  // B given as [N, K] (transpose_b) or general strides
      for (std::size_t k = 0; k < kc; ++k) std::fill(panel + k * NR + cols, panel + (k + 1) * NR, 0.0f);
      for (std::size_t c = 0; c < cols; ++c)
        for (std::size_t k = 0; k < kc; ++k) panel[k * NR + c] = float(src[c * sn + k * sk]);
    }
  }
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
