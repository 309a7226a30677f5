#pragma once
// The instruction cost table [trainium.md, "Instruction cost model"]: how many cycles of its own engine's
// clock an instruction occupies that engine (its initiation interval). N = free elements per partition;
// the cost does not depend on the partition count. Latencies (the ≈ 60-cycle access start, DMA) and the
// static overhead of tiny/serially dependent ops are added by the scheduler, which knows the context.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstring>

#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/records.hpp"

namespace trellis::systolic::timing {

/// Constants of the cost table that are not machine fields, each quoted from trainium.md.
inline constexpr double activation_reduce_readout_cycles = 64;  ///< "with reduce read-out + ≈ 64"
inline constexpr double gpsimd_fixed_cycles = 150;              ///< iota, affine_select: "≈ 150 + N"
inline constexpr double bn_aggr_cycles_per_element = 13.0 / 3.0;  ///< "max(64, 13·N/3)"
inline constexpr double reciprocal_cycles_per_element = 8;      ///< "max(64, 8N)"
inline constexpr double matmul_stationary_cap = 64;             ///< "max(min(64, N_stationary), N_moving)"

/// The clock (GHz) of the engine that runs an instruction.
inline double engine_ghz(const machine_spec& s, engine e) noexcept {
  switch (e) {
    case engine::tensor: return s.clocks.tensor_ghz;
    case engine::vector: return s.clocks.vector_ghz;
    case engine::scalar: return s.clocks.scalar_ghz;
    case engine::gpsimd: return s.clocks.gpsimd_ghz;
    case engine::dma: return 1.0;  // DMA time is in ns; "cycles" of a DMA are ns
  }
  return 1.0;
}

/// The first operand of `r` whose role is named `role`, or null (find_operand(r, operand_role) is faster).
inline const operand_record* find_operand(const instruction_record& r, const char* role) noexcept {
  for (const operand_record& o : r.operands)
    if (std::strcmp(o.role, role) == 0) return &o;
  return nullptr;
}

/// The cost of one instruction on its engine.
struct engine_cost {
  double cycles = 0;  ///< occupancy, in cycles of the engine's clock (≥ the minimum initiation interval)
  bool tiny = false;  ///< the N-dependent term fell below the minimum initiation interval
};

/// Cycles from the cost table. `dma_copy` has no engine cost here (dma_model.hpp times it).
inline engine_cost instruction_cost(const instruction_record& r, const machine_spec& s) {
  const double min_ii = s.access.min_initiation_cycles;
  const operand_record* dst = r.operands.empty() ? nullptr : &r.operands[0];
  // One pass over the operands: the first of each role, and the stride factor ("an innermost stride > 16
  // bytes halves the interface bandwidth": the N-dependent term doubles).
  std::array<const operand_record*, std::size_t(operand_role::other) + 1> first{};
  double stride_factor = 1;
  for (const operand_record& o : r.operands) {
    if (!first[std::size_t(o.slot)]) first[std::size_t(o.slot)] = &o;
    if (o.cols > 1 && o.col_stride_bytes > static_cast<std::ptrdiff_t>(s.access.fast_stride_max_bytes)) stride_factor = 2;
  }
  auto find = [&](operand_role role) { return first[std::size_t(role)]; };
  const operand_record* src = find(operand_role::src);
  if (!src) src = find(operand_role::in0);
  const double n = double(src ? src->cols : dst ? dst->cols : 0);
  const bool vector_unit = r.unit == engine::vector;
  auto floor_ii = [&](double term) {
    const double t = term * stride_factor;
    return engine_cost{std::max(min_ii, t), t < min_ii};
  };
  auto all_bf16_sbuf = [&](bool only_inputs) {
    for (const operand_record& o : r.operands)
      if ((!only_inputs || !o.written) && (o.type != dtype::bf16 || o.space != memory_space::sbuf)) return false;
    return true;
  };
  switch (r.op) {
    case opcode::dma_copy: return {};
    case opcode::nc_matmul: {
      const operand_record* st = find(operand_role::stationary);
      const operand_record* mv = find(operand_role::moving);
      double c = std::max(std::min(matmul_stationary_cap, double(st->cols)), double(mv->cols) * stride_factor);
      if (mv->type == dtype::f32) c *= double(s.matmul.fp32_rate_divisor);  // "×4 for fp32"
      if (mv->type == dtype::f8e4m3 || mv->type == dtype::f8e5m2) c /= double(s.matmul.fp8_rate_multiplier);
      return {std::max(min_ii, c), c < min_ii};
    }
    case opcode::nc_transpose: {
      if (r.unit == engine::tensor) {  // "Tensor: max(P, min(64, F))"
        double c = std::max(double(src->rows), std::min(matmul_stationary_cap, double(src->cols)));
        if (src->type == dtype::f32) c *= double(s.matmul.fp32_rate_divisor);
        return {std::max(min_ii, c), c < min_ii};
      }
      return floor_ii(n);  // "Vector: max(64, N)"
    }
    case opcode::activation: {
      engine_cost c = floor_ii(n);
      if (r.attributes.reduce) c.cycles += activation_reduce_readout_cycles;
      return c;
    }
    case opcode::tensor_copy:
    case opcode::tensor_scalar: {
      double k = 1;  // v3 perf modes: "4× for bf16 SBUF→SBUF contiguous, 2× otherwise" (Vector Engine)
      if (vector_unit && s.perf.vector_perf_modes) {
        bool fast = all_bf16_sbuf(false);
        for (const operand_record& o : r.operands) fast = fast && (o.cols <= 1 || o.run_bytes == o.cols * size_of(o.type));
        k = fast ? 0.25 : 0.5;
      }
      return floor_ii(n * k);
    }
    case opcode::bn_stats: return floor_ii(n);
    case opcode::tensor_tensor: {
      const operand_record* in1 = find(operand_role::in1);
      const bool psum_input = src->space == memory_space::psum || in1->space == memory_space::psum;
      const alu_op op = r.attributes.op0;
      const bool simple = op == alu_op::add || op == alu_op::multiply || op == alu_op::subtract;
      bool one_pass = psum_input || (all_bf16_sbuf(false) && simple);
      // v3: "tensor_tensor 2× when both inputs are bf16 in SBUF" — read as: such inputs never take the 2N path.
      if (vector_unit && s.perf.vector_perf_modes && all_bf16_sbuf(true)) one_pass = true;
      return floor_ii(one_pass ? n : 2 * n);
    }
    case opcode::tensor_reduce: {
      const alu_op op = r.attributes.op0;
      const bool half = src->type == dtype::bf16 && (op == alu_op::add || op == alu_op::max);
      return floor_ii(half ? n / 2 : n);  // "N/2 for bf16 add/max; else N" (the 64-cycle floor applies to any instruction)
    }
    case opcode::bn_aggr: return floor_ii(bn_aggr_cycles_per_element * n);
    case opcode::reciprocal: return floor_ii(reciprocal_cycles_per_element * n);
    case opcode::memset: {
      const bool half = (dst->type == dtype::bf16 || dst->type == dtype::f16) && r.attributes.value == 0.0f;
      return floor_ii(half ? n / 2 : n);
    }
    case opcode::iota:
    case opcode::affine_select: {
      const double c = gpsimd_fixed_cycles + n * stride_factor;
      return {std::max(min_ii, c), false};
    }
  }
  return {min_ii, true};
}

/// FLOPs of a Tensor Engine instruction: the model's (2·K·M·N of a matmul) and the hardware's (the whole
/// pe_rows × pe_columns array streams N columns, padding and transposes included).
struct flop_count {
  double model = 0;
  double hardware = 0;
  double mapped_pe = 0;  ///< K·M of a matmul (for the mapping efficiency), weighted later by N
};

inline flop_count instruction_flops(const instruction_record& r, const machine_spec& s) {
  const double array = double(s.matmul.pe_rows * s.matmul.pe_columns);
  if (r.op == opcode::nc_matmul) {
    const operand_record* st = find_operand(r, operand_role::stationary);
    const operand_record* mv = find_operand(r, operand_role::moving);
    const double k = double(st->rows), m = double(st->cols), n = double(mv->cols);
    return {2 * k * m * n, 2 * array * n, k * m};
  }
  if (r.op == opcode::nc_transpose && r.unit == engine::tensor) {  // identity matmul: N = P moving columns
    const operand_record* src = find_operand(r, operand_role::src);
    return {0, 2 * array * double(src->rows), 0};
  }
  return {};
}

}  // namespace trellis::systolic::timing
