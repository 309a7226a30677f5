#pragma once
// Vector Engine instructions (several may also run on the Scalar or GpSimd engine, chosen with
// `.unit`): tensor_tensor, tensor_scalar, tensor_reduce, tensor_copy, bn_stats, bn_aggr, memset,
// reciprocal. Math in fp32, operands widened exactly on read, results rounded to nearest even on write.

#include <cmath>
#include <source_location>
#include <vector>

#include "trellis/systolic/isa/checks.hpp"
#include "trellis/systolic/isa/options.hpp"

namespace trellis::systolic::isa {

/// dst = in0 op in1, element-wise; all three regions have one shape.
inline void tensor_tensor(core_state& nc, const region& dst, const region& in0, const region& in1, alu_op op,
                          engine_options options = {}, std::source_location where = std::source_location::current()) {
  const detail::checker check{"tensor_tensor", nc};
  check.engine_allowed(options.unit, {engine::vector, engine::gpsimd});
  check.engine_operand("dst", dst, options.unit, true);
  check.engine_operand("in0", in0, options.unit, false);
  check.engine_operand("in1", in1, options.unit, false);
  check.same_shape("dst", dst, "in0", in0);
  check.same_shape("in1", in1, "in0", in0);
  check.same_lanes("in0", in0, "dst", dst);
  check.same_lanes("in1", in1, "dst", dst);
  if (nc.functional()) {
    const std::vector<float> a = detail::gather(in0), b = detail::gather(in1);
    std::vector<float> y(a.size());
    for (std::size_t i = 0; i < y.size(); ++i) y[i] = apply(op, a[i], b[i]);
    detail::scatter(dst, y.data());
  }
  instruction_record& rec = nc.begin_issue(options.unit, opcode::tensor_tensor, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::in0, in0, false);
  nc.add_operand(operand_role::in1, in1, false);
  rec.attributes.op0 = op;
  nc.finish_issue();
}

/// dst = (src op0 operand0) op1 operand1: two chained ops with per-partition scalars or immediates.
inline void tensor_scalar(core_state& nc, const region& dst, const region& src, alu_op op0, scalar_operand operand0,
                          tensor_scalar_options options = {},
                          std::source_location where = std::source_location::current()) {
  const detail::checker check{"tensor_scalar", nc};
  check.engine_allowed(options.unit, {engine::vector, engine::scalar, engine::gpsimd});
  check.engine_operand("dst", dst, options.unit, true);
  check.engine_operand("src", src, options.unit, false);
  check.same_shape("dst", dst, "src", src);
  const std::size_t p_count = src.rows, f_count = src.cols;
  if (operand0.is_vector()) check.per_partition("operand0", operand0.vector(), options.unit, false, p_count);
  if (options.operand1.is_vector()) check.per_partition("operand1", options.operand1.vector(), options.unit, false, p_count);
  check.same_lanes("src", src, "dst", dst);
  if (operand0.is_vector()) check.same_lanes("operand0", operand0.vector(), "dst", dst);
  if (options.operand1.is_vector()) check.same_lanes("operand1", options.operand1.vector(), "dst", dst);
  if (nc.functional()) {
    std::vector<float> y = detail::gather(src);
    const std::vector<float> s0 = detail::per_partition(operand0.vector(), operand0.value(), p_count);
    const std::vector<float> s1 = detail::per_partition(options.operand1.vector(), options.operand1.value(), p_count);
    for (std::size_t p = 0; p < p_count; ++p)
      for (std::size_t f = 0; f < f_count; ++f) {
        float& v = y[p * f_count + f];
        v = apply(options.op1, apply(op0, v, s0[p]), s1[p]);
      }
    detail::scatter(dst, y.data());
  }
  instruction_record& rec = nc.begin_issue(options.unit, opcode::tensor_scalar, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  if (operand0.is_vector()) nc.add_operand(operand_role::operand0, operand0.vector(), false);
  if (options.operand1.is_vector()) nc.add_operand(operand_role::operand1, options.operand1.vector(), false);
  rec.attributes.op0 = op0;
  rec.attributes.op1 = options.op1;
  nc.finish_issue();
}

/// dst[p, 0] = reduction of src[p, :] along the free axis (fp32, in order), optionally negated.
inline void tensor_reduce(core_state& nc, const region& dst, const region& src, alu_op op,
                          tensor_reduce_options options = {}, std::source_location where = std::source_location::current()) {
  const detail::checker check{"tensor_reduce", nc};
  check.engine_allowed(options.unit, {engine::vector, engine::gpsimd});
  check.engine_operand("src", src, options.unit, false);
  check.per_partition("dst", dst, options.unit, true, src.rows);
  if (!is_reduction(op))
    check.fail(std::string("alu op ") + to_string(op) + " is not a reduction (add, multiply, max, min, abs_max)");
  check.same_lanes("src", src, "dst", dst);
  if (nc.functional()) {
    const std::vector<float> x = detail::gather(src);
    std::vector<float> y(src.rows);
    for (std::size_t p = 0; p < src.rows; ++p) {
      float acc = reduction_identity(op);
      for (std::size_t f = 0; f < src.cols; ++f) acc = apply(op, acc, x[p * src.cols + f]);
      y[p] = options.negate ? -acc : acc;
    }
    detail::scatter(dst, y.data());
  }
  instruction_record& rec = nc.begin_issue(options.unit, opcode::tensor_reduce, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  rec.attributes.op0 = op;
  nc.finish_issue();
}

/// dst = src, casting to dst's dtype (PSUM eviction, dtype conversion).
inline void tensor_copy(core_state& nc, const region& dst, const region& src, engine_options options = {},
                        std::source_location where = std::source_location::current()) {
  const detail::checker check{"tensor_copy", nc};
  check.engine_allowed(options.unit, {engine::vector, engine::scalar, engine::gpsimd});
  check.engine_operand("dst", dst, options.unit, true);
  check.engine_operand("src", src, options.unit, false);
  check.same_shape("dst", dst, "src", src);
  check.same_lanes("src", src, "dst", dst);
  if (nc.functional()) {
    const std::vector<float> x = detail::gather(src);
    detail::scatter(dst, x.data());
  }
  nc.begin_issue(options.unit, opcode::tensor_copy, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  nc.finish_issue();
}

/// The six values bn_stats writes per partition. AWS does not publish the hardware's layout; the model
/// stores (count, mean, M2 = Σ(x − mean)²) of the even-indexed and of the odd-indexed elements. Only
/// bn_aggr should read them.
inline constexpr std::size_t bn_stats_width = 6;

/// dst[P, 6] = the statistics of src[P, F] (F ≤ bn_stats_free_max), for bn_aggr.
inline void bn_stats(core_state& nc, const region& dst, const region& src,
                     std::source_location where = std::source_location::current()) {
  const detail::checker check{"bn_stats", nc};
  const engine unit = engine::vector;
  check.engine_operand("dst", dst, unit, true);
  check.engine_operand("src", src, unit, false);
  check.same_partitions("dst", dst, "src", src);
  check.same_lanes("src", src, "dst", dst);
  check.free_size("dst", dst, bn_stats_width, "bn_stats writes 6 statistics per partition");
  check.type("dst", dst, dtype::f32, "statistics stay fp32 so bn_aggr can combine them");
  const std::size_t limit = nc.spec().access.bn_stats_free_max;
  if (src.cols > limit)
    check.fail("src free size " + std::to_string(src.cols) + " exceeds " + std::to_string(limit) + check.on() +
               " (split the row into chunks and combine them with bn_aggr)");
  if (nc.functional()) {
    const std::vector<float> x = detail::gather(src);
    std::vector<float> y(src.rows * bn_stats_width, 0.0f);
    for (std::size_t p = 0; p < src.rows; ++p)
      for (std::size_t half = 0; half < 2; ++half) {
        float count = 0.0f, sum = 0.0f;
        for (std::size_t f = half; f < src.cols; f += 2, count += 1.0f) sum += x[p * src.cols + f];
        const float mean = count > 0.0f ? sum / count : 0.0f;
        float m2 = 0.0f;
        for (std::size_t f = half; f < src.cols; f += 2) {
          const float d = x[p * src.cols + f] - mean;
          m2 += d * d;
        }
        float* out = &y[p * bn_stats_width + half * 3];
        out[0] = count;
        out[1] = mean;
        out[2] = m2;
      }
    detail::scatter(dst, y.data());
  }
  nc.begin_issue(unit, opcode::bn_stats, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  nc.finish_issue();
}

/// dst[P, 2] = (mean, population variance) of all elements summarised by src[P, 6·chunks] (bn_stats outputs
/// side by side), combined with Chan et al.'s parallel formula in fp32.
inline void bn_aggr(core_state& nc, const region& dst, const region& src,
                    std::source_location where = std::source_location::current()) {
  const detail::checker check{"bn_aggr", nc};
  const engine unit = engine::vector;
  check.engine_operand("dst", dst, unit, true);
  check.engine_operand("src", src, unit, false);
  check.same_partitions("dst", dst, "src", src);
  check.same_lanes("src", src, "dst", dst);
  check.free_size("dst", dst, 2, "bn_aggr writes mean and variance");
  check.type("src", src, dtype::f32, "bn_stats statistics are fp32");
  if (src.cols % bn_stats_width != 0)
    check.fail("src free size " + std::to_string(src.cols) + " is not a multiple of " + std::to_string(bn_stats_width) +
               " (bn_stats outputs side by side)");
  if (nc.functional()) {
    const std::vector<float> x = detail::gather(src);
    std::vector<float> y(src.rows * 2);
    for (std::size_t p = 0; p < src.rows; ++p) {
      float n = 0.0f, mean = 0.0f, m2 = 0.0f;
      for (std::size_t g = 0; g < src.cols / 3; ++g) {
        const float* s = &x[p * src.cols + g * 3];
        if (s[0] == 0.0f) continue;
        const float total = n + s[0], delta = s[1] - mean;
        mean += delta * (s[0] / total);
        m2 += s[2] + delta * delta * (n * s[0] / total);
        n = total;
      }
      y[p * 2] = mean;
      y[p * 2 + 1] = n > 0.0f ? m2 / n : 0.0f;
    }
    detail::scatter(dst, y.data());
  }
  nc.begin_issue(unit, opcode::bn_aggr, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  nc.finish_issue();
}

/// dst = value (rounded to dst's dtype).
inline void memset(core_state& nc, const region& dst, float value, engine_options options = {},
                   std::source_location where = std::source_location::current()) {
  const detail::checker check{"memset", nc};
  check.engine_allowed(options.unit, {engine::vector, engine::gpsimd});
  check.engine_operand("dst", dst, options.unit, true);
  if (nc.functional()) {
    const std::vector<float> y(dst.elements(), value);
    detail::scatter(dst, y.data());
  }
  instruction_record& rec = nc.begin_issue(options.unit, opcode::memset, where);
  nc.add_operand(operand_role::dst, dst, true);
  rec.attributes.value = value;
  nc.finish_issue();
}

/// dst = 1 / src, element-wise, on the Vector Engine.
inline void reciprocal(core_state& nc, const region& dst, const region& src,
                       std::source_location where = std::source_location::current()) {
  const detail::checker check{"reciprocal", nc};
  const engine unit = engine::vector;
  check.engine_operand("dst", dst, unit, true);
  check.engine_operand("src", src, unit, false);
  check.same_shape("dst", dst, "src", src);
  check.same_lanes("src", src, "dst", dst);
  if (nc.functional()) {
    std::vector<float> y = detail::gather(src);
    for (float& v : y) v = 1.0f / v;
    detail::scatter(dst, y.data());
  }
  nc.begin_issue(unit, opcode::reciprocal, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  nc.finish_issue();
}

}  // namespace trellis::systolic::isa
