#pragma once
// matmul on the CPU target: the blocked SIMD GEMM of gemm/gemm.hpp behind the front door.

#include "trellis/cpu/gemm/gemm.hpp"
#include "trellis/cpu/simd_hwy.hpp"
#include "trellis/cpu/simd_xsimd.hpp"
#include "trellis/cpu/target.hpp"
#include "trellis/ops/matmul.hpp"

namespace trellis {

template <class Provider>
struct op_impl<matmul_fn, basic_cpu<Provider>> {
  /// a is [M, K], b is [K, N] (transposes already applied by the front door).
  template <class TA, class TB, class TC>
  static void run(const basic_cpu<Provider>& target, tensor_view<const TA, 2> a, tensor_view<const TB, 2> b,
                  tensor_view<TC, 2> c, const matmul_options& opts) {
    cpu_detail::gemm<cpu_detail::simd<Provider>>(target.threads, a, b, c, opts);
  }
};

}  // namespace trellis
