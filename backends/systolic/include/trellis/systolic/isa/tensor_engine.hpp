#pragma once
// The Tensor Engine: nc_matmul (stationaryᵀ · moving into PSUM, accumulation groups) and nc_transpose.
//
// Numerics (DESIGN.md §4.5): the operands are already stored in their dtype (rounded to nearest even when
// they were written), their products are exact in fp32 (bf16·bf16, fp16·fp16 and fp8·fp8 fit fp32's 24-bit
// significand), and sums accumulate in fp32 in an unspecified order: the math is the plain fp32
// loop below, which the compiler vectorises over N. (Calling the CPU target's fp32 GEMM here instead makes
// gcc 12 report a false -Wuninitialized inside the AVX-512 intrinsics of its 16 × 16 transpose packing
// (backends/cpu/.../gemm/pack.hpp) in these translation units; see the report. An M × K × N ≤ 128 × 128 × 512
// instruction is ≈ 8 M FMAs either way.) An accumulating matmul adds onto the fp32 PSUM values.

#include <source_location>
#include <vector>

#include "trellis/systolic/isa/checks.hpp"
#include "trellis/systolic/isa/options.hpp"

namespace trellis::systolic::isa {

/// dst[M, N] (PSUM) = stationary[K, M]ᵀ · moving[K, N], or += with accumulate. K lies on partitions.
inline void nc_matmul(core_state& nc, const region& dst, const region& stationary, const region& moving,
                      nc_matmul_options options = {}, std::source_location where = std::source_location::current()) {
  const detail::checker check{"nc_matmul", nc};
  const machine_spec& spec = nc.spec();
  check.operand("dst", dst, engine::tensor, true);
  check.operand("stationary", stationary, engine::tensor, false);
  check.operand("moving", moving, engine::tensor, false);
  if (stationary.space != memory_space::sbuf)
    check.fail("stationary is in " + std::string(to_string(stationary.space)) + "; the Tensor Engine reads SBUF only" + check.on());
  if (moving.space != memory_space::sbuf)
    check.fail("moving is in " + std::string(to_string(moving.space)) + "; the Tensor Engine reads SBUF only" + check.on());
  if (dst.space != memory_space::psum)
    check.fail("dst is in " + std::string(to_string(dst.space)) + "; the Tensor Engine writes PSUM only" + check.on());
  check.partition_start("stationary", stationary);
  check.partition_start("moving", moving);
  check.partition_start("dst", dst);
  const std::size_t k = stationary.rows, m = stationary.cols, n = moving.cols;
  if (moving.rows != k)
    check.fail("stationary has K = " + std::to_string(k) + " partitions but moving has " + std::to_string(moving.rows) +
               " (the contraction axis lies on partitions)");
  if (moving.partition_start != stationary.partition_start)
    check.fail("stationary uses partitions " + detail::checker::partition_range(stationary) + " but moving uses " +
               detail::checker::partition_range(moving) + check.on() +
               " (both feed the same PE rows: the contraction partitions must line up)");
  if (k > spec.matmul.pe_rows)
    check.fail("contraction K = " + std::to_string(k) + " exceeds " + std::to_string(spec.matmul.pe_rows) + check.on() +
               " (PE array rows)");
  if (m > spec.matmul.pe_columns)
    check.fail("stationary free size " + std::to_string(m) + " exceeds " + std::to_string(spec.matmul.pe_columns) +
               check.on() + " (PE array columns)");
  const bool bf16_out = dst.type == dtype::bf16 && spec.matmul.moving_free_max_bf16_out > 0;
  if (dst.type != dtype::f32 && !bf16_out)
    check.fail(std::string("dst is ") + to_string(dst.type) + ", expected fp32" +
               (spec.matmul.moving_free_max_bf16_out > 0 ? " or bf16" : "") + check.on() + " (matmuls accumulate in PSUM)");
  const std::size_t n_max = bf16_out ? spec.matmul.moving_free_max_bf16_out : spec.matmul.moving_free_max_fp32_out;
  if (n > n_max) {
    const bool one_bank = n_max * size_of(dst.type) == spec.memory.psum_bank_bytes;
    check.fail("moving free size " + std::to_string(n) + " exceeds " + std::to_string(n_max) + check.on() +
               (one_bank ? std::string(" (one PSUM bank of ") + to_string(dst.type) + ")"
                         : std::string(" (") + to_string(dst.type) + " PSUM output)"));
  }
  if (dst.rows != m || dst.cols != n)
    check.fail("dst shape " + detail::shape_string(dst.rows, dst.cols) + " is not [M, N] = " +
               detail::shape_string(m, n));
  if (stationary.type != moving.type && !(detail::is_fp8(stationary.type) && detail::is_fp8(moving.type)))
    check.fail(std::string("stationary is ") + to_string(stationary.type) + " but moving is " + to_string(moving.type) +
               " (operands share a dtype; only the two fp8 formats may mix)");

  if (nc.functional()) {
    const std::vector<float> a = detail::gather(stationary);  // [K, M]
    const std::vector<float> b = detail::gather(moving);      // [K, N]
    std::vector<float> c = options.accumulate ? detail::gather(dst) : std::vector<float>(m * n, 0.0f);  // [M, N]
    for (std::size_t i = 0; i < m; ++i) {
      float* c_row = &c[i * n];
      for (std::size_t p = 0; p < k; ++p) {
        const float a_pi = a[p * m + i];
        const float* b_row = &b[p * n];
        for (std::size_t j = 0; j < n; ++j) c_row[j] += a_pi * b_row[j];  // vectorised over N
      }
    }
    detail::scatter(dst, c.data());
  }
  instruction_record& rec = nc.begin_issue(engine::tensor, opcode::nc_matmul, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::stationary, stationary, false);
  nc.add_operand(operand_role::moving, moving, false);
  if (options.accumulate) nc.add_operand(operand_role::dst, dst, false);  // an accumulation also reads PSUM
  rec.attributes.accumulate = options.accumulate;
  nc.finish_issue();
}

/// dst[F, P] = src[P, F]ᵀ. Tensor Engine: SBUF → PSUM, up to pe_rows × pe_columns; dst keeps src's dtype on
/// machines with a bit-exact transpose mode (v3+), and is fp32 otherwise (an identity matmul on v2).
/// Vector Engine: blocks up to 32 × 32, SBUF or PSUM on either side, any dtype.
inline void nc_transpose(core_state& nc, const region& dst, const region& src, nc_transpose_options options = {},
                         std::source_location where = std::source_location::current()) {
  const detail::checker check{"nc_transpose", nc};
  const machine_spec& spec = nc.spec();
  check.engine_allowed(options.unit, {engine::tensor, engine::vector});
  check.operand("dst", dst, options.unit, true);
  check.operand("src", src, options.unit, false);
  check.partition_start("dst", dst);
  check.partition_start("src", src);
  if (dst.rows != src.cols || dst.cols != src.rows)
    check.fail("dst shape " + detail::shape_string(dst.rows, dst.cols) + " is not the transpose of src shape " +
               detail::shape_string(src.rows, src.cols));
  if (options.unit == engine::tensor) {
    if (src.space != memory_space::sbuf)
      check.fail("src is in " + std::string(to_string(src.space)) + "; the Tensor Engine reads SBUF only" + check.on());
    if (dst.space != memory_space::psum)
      check.fail("dst is in " + std::string(to_string(dst.space)) + "; the Tensor Engine writes PSUM only" + check.on());
    if (src.cols > spec.matmul.pe_columns)
      check.fail("src free size " + std::to_string(src.cols) + " exceeds " + std::to_string(spec.matmul.pe_columns) +
                 check.on() + " (PE array columns)");
    if (dst.type != dtype::f32 && !(spec.matmul.bit_exact_transpose && dst.type == src.type))
      check.fail(std::string("dst is ") + to_string(dst.type) + ", expected " +
                 (spec.matmul.bit_exact_transpose ? std::string("fp32 or ") + to_string(src.type) : std::string("fp32")) +
                 check.on() +
                 (spec.matmul.bit_exact_transpose ? " (the bit-exact transpose keeps the dtype)"
                                                  : " (this generation transposes with an identity matmul into fp32 PSUM)"));
  } else {
    const std::size_t limit = spec.access.vector_transpose_max;
    if (src.rows > limit || src.cols > limit)
      check.fail("src shape " + detail::shape_string(src.rows, src.cols) + " exceeds " + std::to_string(limit) +
                 " × " + std::to_string(limit) + check.on() + " (Vector Engine transpose block)");
    check.engine_free_limit("src", src);
    check.engine_free_limit("dst", dst);
  }
  if (nc.functional()) {
    const std::vector<float> in = detail::gather(src);  // [P, F]
    std::vector<float> out(in.size());                            // [F, P]
    for (std::size_t p = 0; p < src.rows; ++p)
      for (std::size_t f = 0; f < src.cols; ++f) out[f * src.rows + p] = in[p * src.cols + f];
    detail::scatter(dst, out.data());
  }
  nc.begin_issue(options.unit, opcode::nc_transpose, where);
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  nc.finish_issue();
}

}  // namespace trellis::systolic::isa
