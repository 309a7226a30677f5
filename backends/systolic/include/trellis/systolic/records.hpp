#pragma once
// The instruction record: everything a scheduler needs to time an instruction, captured when the kernel
// issues it — engine, opcode, every operand region (memory space, tile, partition range, byte range,
// shape, strides, dtype), the op's parameters and the kernel's source line. The functional model only
// logs records; the timing model (next part) consumes the same records, so kernels never change.

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <vector>

#include "trellis/systolic/region.hpp"
#include "trellis/systolic/engine_math.hpp"

namespace trellis::systolic {

/// The engines with an instruction stream of their own, plus the DMA queues.
enum class engine : std::uint8_t { tensor, vector, scalar, gpsimd, dma };

constexpr const char* to_string(engine e) noexcept {
  switch (e) {
    case engine::tensor: return "tensor";
    case engine::vector: return "vector";
    case engine::scalar: return "scalar";
    case engine::gpsimd: return "gpsimd";
    case engine::dma: return "dma";
  }
  return "?";
}

enum class opcode : std::uint8_t {
  dma_copy,
  nc_matmul,
  nc_transpose,
  activation,
  tensor_tensor,
  tensor_scalar,
  tensor_reduce,
  tensor_copy,
  bn_stats,
  bn_aggr,
  iota,
  affine_select,
  memset,
  reciprocal,
};

constexpr const char* to_string(opcode op) noexcept {
  switch (op) {
    case opcode::dma_copy: return "dma_copy";
    case opcode::nc_matmul: return "nc_matmul";
    case opcode::nc_transpose: return "nc_transpose";
    case opcode::activation: return "activation";
    case opcode::tensor_tensor: return "tensor_tensor";
    case opcode::tensor_scalar: return "tensor_scalar";
    case opcode::tensor_reduce: return "tensor_reduce";
    case opcode::tensor_copy: return "tensor_copy";
    case opcode::bn_stats: return "bn_stats";
    case opcode::bn_aggr: return "bn_aggr";
    case opcode::iota: return "iota";
    case opcode::affine_select: return "affine_select";
    case opcode::memset: return "memset";
    case opcode::reciprocal: return "reciprocal";
  }
  return "?";
}

/// One operand region, with the pointers stripped: only what identifies and sizes it.
struct operand_record {
  const char* role = "";             ///< "dst", "src", "stationary", "moving", "bias", ...
  bool written = false;              ///< false: read
  memory_space space = memory_space::none;
  dtype type = dtype::f32;
  std::size_t rows = 0, cols = 0;    ///< [partitions, free elements] on chip; [rows, cols] in HBM
  std::ptrdiff_t row_stride_bytes = 0, col_stride_bytes = 0;
  std::size_t run_bytes = 0;         ///< bytes per contiguous run within a row (partition)
  std::size_t free_rank = 1;         ///< dimensions of the free-axis access pattern
  // On chip: the tile and the rectangle (partitions × bytes within each partition) the region touches.
  std::uint64_t allocation = 0;
  std::size_t partition_start = 0;
  std::size_t byte_begin = 0, byte_end = 0;
  // HBM: address of element [0, 0] (real or synthetic).
  std::uintptr_t address = 0;

  std::size_t bytes() const noexcept { return rows * cols * size_of(type); }
};

inline operand_record describe(const char* role, const region& a, bool written) noexcept {
  operand_record r;
  r.role = role;
  r.written = written;
  r.space = a.space;
  r.type = a.type;
  r.rows = a.rows;
  r.cols = a.cols;
  r.row_stride_bytes = a.row_stride_bytes;
  r.col_stride_bytes = a.col_stride_bytes;
  r.run_bytes = a.run_elements() * a.element_bytes();
  r.free_rank = a.free_rank;
  r.allocation = a.allocation;
  r.partition_start = a.partition_start;
  r.byte_begin = a.byte_offset;
  r.byte_end = a.on_chip() ? a.byte_offset + a.row_span_bytes() : 0;
  r.address = a.address;
  return r;
}

/// The parameters of an instruction that change its cost or meaning beyond its operands.
struct instruction_attributes {
  alu_op op0 = alu_op::bypass, op1 = alu_op::bypass;
  activation_function func = activation_function::identity;
  bool accumulate = false;  ///< nc_matmul adds to PSUM (not the first of its accumulation group)
  bool reduce = false;      ///< activation also writes an add-reduction
  float value = 0.0f;       ///< memset value, iota/affine_select base
  bool transpose = false;   ///< dma_copy transposes 2-byte data on the way (HBM → SBUF, v3+)
};

struct instruction_record {
  std::uint64_t index = 0;  ///< issue order on this core
  engine unit = engine::vector;
  opcode op = opcode::tensor_copy;
  int dma_queue = -1;       ///< dma_copy only
  std::vector<operand_record> operands;
  instruction_attributes attributes;
  std::source_location where;
};

}  // namespace trellis::systolic
