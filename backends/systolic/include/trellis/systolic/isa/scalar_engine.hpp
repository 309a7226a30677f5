#pragma once
// The Scalar Engine's activation: dst = func(src·scale + bias), with an optional add-reduction of the
// results along the free axis written to a [P, 1] region at no extra instruction.

#include <source_location>
#include <vector>

#include "trellis/systolic/isa/checks.hpp"
#include "trellis/systolic/isa/options.hpp"

namespace trellis::systolic::isa {

/// dst = func(src·scale + bias) in fp32, rounded to dst's dtype. scale: immediate or [P, 1]; bias: [P, 1]
/// (the hardware takes the bias as a per-partition vector only). reduce_out[p] = Σ_f of the fp32 results.
inline void activation(core_state& nc, const region& dst, const region& src, activation_function func,
                       activation_options options = {}, std::source_location where = std::source_location::current()) {
  const detail::checker check{"activation", nc};
  const engine unit = engine::scalar;
  check.engine_operand("dst", dst, unit, true);
  check.engine_operand("src", src, unit, false);
  check.same_shape("dst", dst, "src", src);
  const std::size_t p_count = src.rows, f_count = src.cols;
  if (options.scale.is_vector()) check.per_partition("scale", options.scale.vector(), unit, false, p_count);
  if (options.bias.present()) check.per_partition("bias", options.bias, unit, false, p_count);
  if (options.reduce_out.present()) check.per_partition("reduce_out", options.reduce_out, unit, true, p_count);
  check.same_lanes("src", src, "dst", dst);
  if (options.scale.is_vector()) check.same_lanes("scale", options.scale.vector(), "dst", dst);
  check.same_lanes("bias", options.bias, "dst", dst);
  check.same_lanes("reduce_out", options.reduce_out, "dst", dst);

  if (nc.functional()) {
    const std::vector<float> x = detail::gather(src);
    const std::vector<float> scale = detail::per_partition(options.scale.vector(), options.scale.value(), p_count);
    const std::vector<float> bias = detail::per_partition(options.bias, 0.0f, p_count);
    std::vector<float> y(x.size()), sums(p_count, 0.0f);
    for (std::size_t p = 0; p < p_count; ++p)
      for (std::size_t f = 0; f < f_count; ++f) {
        const float v = apply(func, x[p * f_count + f] * scale[p] + bias[p]);
        y[p * f_count + f] = v;
        sums[p] += v;
      }
    detail::scatter(dst, y.data());
    if (options.reduce_out.present()) detail::scatter(options.reduce_out, sums.data());
  }
  instruction_record& rec = nc.begin_issue(unit, opcode::activation, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  if (options.scale.is_vector()) nc.add_operand(operand_role::scale, options.scale.vector(), false);
  if (options.bias.present()) nc.add_operand(operand_role::bias, options.bias, false);
  if (options.reduce_out.present()) nc.add_operand(operand_role::reduce_out, options.reduce_out, true);
  rec.attributes.func = func;
  rec.attributes.reduce = options.reduce_out.present();
  rec.attributes.value = options.scale.value();
  nc.finish_issue();
}

}  // namespace trellis::systolic::isa
