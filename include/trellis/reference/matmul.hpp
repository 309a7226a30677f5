#pragma once
// Reference matmul: one fp64 dot product per output element, then the epilogue in fp64.

#include "trellis/core/activation.hpp"
#include "trellis/ops/matmul.hpp"
#include "trellis/reference/target.hpp"

namespace trellis {

template <>
struct op_impl<matmul_fn, reference> {
  /// a is [M, K], b is [K, N] (transposes already applied by the front door).
  template <class TA, class TB, class TC>
  static void run(const reference&, tensor_view<const TA, 2> a, tensor_view<const TB, 2> b,
                  tensor_view<TC, 2> c, const matmul_options& opts) {
    const std::size_t m = c.extent(0), n = c.extent(1), k = a.extent(1);
    const epilogue& ep = opts.epilogue;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double dot = 0.0;
        for (std::size_t p = 0; p < k; ++p) dot += double(float(a(i, p))) * double(float(b(p, j)));
        double value = double(opts.alpha) * dot;
        if (ep.bias) value += ep.bias.load(j * ep.bias.stride(0));
        value = apply_activation(ep.act, value);
        if (ep.residual)
          value += ep.residual.load(i * ep.residual.stride(0) + j * ep.residual.stride(1));
        if (opts.beta != 0.0f) value += double(opts.beta) * double(float(c(i, j)));
        c(i, j) = TC(float(value));
      }
  }
};

}  // namespace trellis
