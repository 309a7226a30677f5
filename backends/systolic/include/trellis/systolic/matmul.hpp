#pragma once
// matmul on the NeuronCore model: matmul(nc, a, b, c, opts) with the CPU target's views and options.
// The host views are the device's HBM (host_views.hpp); the tuned `default` kernel
// (kernels/matmul.hpp) runs on the core, which records and times every instruction (nc.report()).
//
// Layouts: the Tensor Engine wants both operands with K on partitions. An A stored K-major (a
// transpose_a view of a [K, M] array: the tutorial's lhsT) is loaded as it is; a row-major A [M, K] is
// transposed on the way in (DMA transpose on v3+ for 2-byte data, else the Tensor Engine), and that
// time is part of the report. Likewise B: [K, N] as it is, [N, K] weights (transpose_b) transposed.
// Every option is implemented: α, β, bias, GELU (tanh and erf), SiLU, residual, fp32 or bf16 C.
// fp32 inputs run fp32 matmuls (¼ rate), bf16 inputs bf16 matmuls; both accumulate in fp32 PSUM.

#include "trellis/ops/matmul.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/host_views.hpp"
#include "trellis/systolic/kernels/matmul.hpp"

namespace trellis {

template <systolic::machine Machine>
struct op_impl<matmul_fn, systolic::core<Machine>> {
  /// a is [M, K], b is [K, N] (transposes already applied by the front door as stride swaps).
  template <class TA, class TB, class TC>
  static void run(systolic::core<Machine>& nc, tensor_view<const TA, 2> a, tensor_view<const TB, 2> b,
                  tensor_view<TC, 2> c, const matmul_options& opts) {
    using systolic::kernels::operand_layout;
    systolic::kernels::matmul_problem p;
    // K-major storage is what the tutorial calls lhsT / rhs; anything else is transposed on chip.
    const bool a_k_major = a.stride(0) == 1 && a.stride(1) != 1;
    const bool b_k_minor = b.stride(0) == 1 && b.stride(1) != 1;
    p.a = a_k_major ? systolic::hbm<const TA>(a.transposed()) : systolic::hbm<const TA>(a);
    p.a_layout = a_k_major ? operand_layout::k_major : operand_layout::k_minor;
    p.b = b_k_minor ? systolic::hbm<const TB>(b.transposed()) : systolic::hbm<const TB>(b);
    p.b_layout = b_k_minor ? operand_layout::k_minor : operand_layout::k_major;
    p.c = systolic::hbm<TC>(c);
    p.epilogue = {.alpha = opts.alpha,
                  .beta = opts.beta,
                  .act = opts.epilogue.act,
                  .bias = systolic::hbm_region(opts.epilogue.bias),
                  .residual = systolic::hbm_region(opts.epilogue.residual)};
    systolic::kernels::matmul(nc, p);
  }
};

}  // namespace trellis
