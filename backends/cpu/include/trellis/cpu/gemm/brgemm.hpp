#pragma once
// brgemm_tile: the batch-reduce GEMM tile entry, an internal building block (attention's QKᵀ and
// P·V run on it):
//
//   C[m, n] += Σ_{i < batch} A_i[m, k] · B_i[k, n]        C fp32, row stride ldc
//
// or, with `overwrite`, C = Σ … (C's old values are never read: no zero-fill needed before the call).
//
// A_i are row-major fp32 (row stride lda), read in place. B_i are either row-major fp32 [k, n] (row
// stride ldb, read in place) or a packed_b panel set in the pack.hpp layout (`packed` true: B_i
// points at the micro-panel of column 0 and each micro-panel holds `k` steps). Column tails go
// through an NR-wide zero-padded copy, row tails through the exact-height kernels. The sum runs
// over i, then k, in order.

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "trellis/cpu/gemm/micro_kernel.hpp"
#include "trellis/cpu/scratch.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

struct brgemm_b {
  const float* const* b;  ///< batch pointers
  std::size_t ldb;        ///< row stride of a row-major B_i (ignored when packed)
  bool packed;            ///< B_i in micro-panels of k steps × NR
};

template <class S>
void brgemm_tile(std::size_t batch, const float* const* a, std::size_t lda, const brgemm_b& b,
                 std::size_t m, std::size_t n, std::size_t k, float* c, std::size_t ldc, bool overwrite = false) {
  constexpr std::size_t MR = gemm_tile<S>::mr, NR = gemm_tile<S>::nr;
  for (std::size_t jp = 0; jp < n; jp += NR) {
    const std::size_t cols = std::min(NR, n - jp);
    const bool full = cols == NR;
    float* tail_b = nullptr;
    float* tail_c = nullptr;
    if (!full) {
      tail_b =
          thread_scratch(scratch_slot::gemm_b).get(batch * k * NR);  // [batch][k][NR], zero-padded
      tail_c = thread_scratch(scratch_slot::gemm_acc).get(MR * NR);
      for (std::size_t i = 0; i < batch; ++i)
        for (std::size_t kk = 0; kk < k; ++kk) {
          float* dst = tail_b + (i * k + kk) * NR;
          const float* src = b.packed ? b.b[i] + jp * k + kk * NR : b.b[i] + kk * b.ldb + jp;
          std::memcpy(dst, src, cols * sizeof(float));
          std::fill(dst + cols, dst + NR, 0.0f);
        }
    }
    for (std::size_t ip = 0; ip < m; ip += MR) {
      const std::size_t rows = std::min(MR, m - ip);
      const auto kernel = kernel_for_rows<S, false>(rows);
      float* target = c + ip * ldc + jp;
      std::size_t ld = ldc;
      if (!full) {  // accumulate into an NR-wide copy of the tile's rows
        for (std::size_t r = 0; r < rows && !overwrite; ++r) {
          std::memcpy(tail_c + r * NR, target + r * ldc, cols * sizeof(float));
          std::fill(tail_c + r * NR + cols, tail_c + (r + 1) * NR, 0.0f);
        }
        target = tail_c;
        ld = NR;
      }
      for (std::size_t i = 0; i < batch; ++i) {
        const float* bi = !full ? tail_b + i * k * NR : b.packed ? b.b[i] + jp * k : b.b[i] + jp;
        const std::size_t b_stride = !full || b.packed ? NR : b.ldb;
        kernel(k, a[i] + ip * lda, lda, 1, bi, b_stride, target, ld, overwrite && i == 0);
      }
      if (!full)
        for (std::size_t r = 0; r < rows; ++r)
          std::memcpy(c + (ip + r) * ldc + jp, tail_c + r * NR, cols * sizeof(float));
    }
  }
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
