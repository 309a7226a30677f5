#pragma once
// GpSimd Engine instructions: iota (index arithmetic) and affine_select (masks such as causal attention's).
// GpSimd cannot region PSUM.

#include <algorithm>
#include <cstdint>
#include <source_location>
#include <vector>

#include "trellis/systolic/isa/checks.hpp"
#include "trellis/systolic/isa/options.hpp"

namespace trellis::systolic::isa {

/// dst[p, f] = base + channel_multiplier·p + step·f, computed exactly in integers, then rounded to dst's dtype.
inline void iota(core_state& nc, const region& dst, affine_expression expression,
                 std::source_location where = std::source_location::current()) {
  const detail::checker check{"iota", nc};
  const engine unit = engine::gpsimd;
  check.engine_operand("dst", dst, unit, true);
  if (nc.functional()) {
    std::vector<float> y(dst.elements());
    for (std::size_t p = 0; p < dst.rows; ++p)
      for (std::size_t f = 0; f < dst.cols; ++f) y[p * dst.cols + f] = static_cast<float>(expression.at(p, f));
    detail::scatter(dst, y.data());
  }
  instruction_record& rec = nc.begin_issue(unit, opcode::iota, where);
  nc.add_operand(operand_role::dst, dst, true);
  rec.attributes.value = static_cast<float>(expression.base);
  nc.finish_issue();
}

/// dst[p, f] = (expression(p, f) compare 0) ? src[p, f] : on_false. With base = row offset, channel_multiplier
/// = 1, step = −1 and is_ge this keeps key f ≤ query p: a causal mask.
inline void affine_select(core_state& nc, const region& dst, const region& src, affine_expression expression,
                          affine_select_options options = {},
                          std::source_location where = std::source_location::current()) {
  const detail::checker check{"affine_select", nc};
  const engine unit = engine::gpsimd;
  check.engine_operand("dst", dst, unit, true);
  check.engine_operand("src", src, unit, false);
  check.same_shape("dst", dst, "src", src);
  check.same_lanes("src", src, "dst", dst);
  if (options.compare < alu_op::is_equal)
    check.fail(std::string("alu op ") + to_string(options.compare) +
               " is not a comparison (is_equal, not_equal, is_ge, is_gt, is_le, is_lt)");
  if (nc.functional()) {
    std::vector<float> y = detail::gather(src);
    for (std::size_t p = 0; p < src.rows; ++p)
      for (std::size_t f = 0; f < src.cols; ++f) {
        // Only the sign matters, so clamping to [−1, 1] keeps the comparison exact for any integer.
        const float e = static_cast<float>(std::clamp<std::int64_t>(expression.at(p, f), -1, 1));
        if (apply(options.compare, e, 0.0f) == 0.0f) y[p * src.cols + f] = options.on_false;
      }
    detail::scatter(dst, y.data());
  }
  instruction_record& rec = nc.begin_issue(unit, opcode::affine_select, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  rec.attributes.op0 = options.compare;
  rec.attributes.value = static_cast<float>(expression.base);
  nc.finish_issue();
}

}  // namespace trellis::systolic::isa
