#pragma once
// Operand helpers and option structs of the ISA, used with designated initialisers:
//   nc_matmul(nc, acc, a, b, {.accumulate = k > 0});
//   activation(nc, y, x, activation_function::exp, {.scale = -1.0f, .bias = neg_max, .reduce_out = row_sum});

#include <cmath>
#include <cstdint>

#include "trellis/systolic/region.hpp"
#include "trellis/systolic/engine_math.hpp"
#include "trellis/systolic/on_chip_memory.hpp"
#include "trellis/systolic/records.hpp"

namespace trellis::systolic::isa {

/// A per-partition scalar: an immediate, or a [P, 1] region holding one value per partition.
class scalar_operand {
 public:
  scalar_operand(float value) noexcept : value_(value) {}               // NOLINT: implicit by design
  scalar_operand(const region& per_partition) noexcept : vector_(per_partition) {}  // NOLINT
  template <class T>
  scalar_operand(const tile<T>& per_partition) noexcept : vector_(per_partition.view()) {}  // NOLINT
  bool is_vector() const noexcept { return vector_.present(); }
  float value() const noexcept { return value_; }
  const region& vector() const noexcept { return vector_; }

 private:
  float value_ = 0.0f;
  region vector_{};
};

struct dma_options {
  int queue = -1;          ///< DMA queue 0..queues-1; -1: round-robin
  bool transpose = false;  ///< dst[F, P] = src[P, F]ᵀ during an HBM → SBUF transfer of 2-byte data (v3+)
};

struct nc_matmul_options {
  bool accumulate = false;  ///< false: overwrite the PSUM region (first matmul of a group); true: add to it
};

struct nc_transpose_options {
  engine unit = engine::tensor;  ///< tensor (SBUF → PSUM, up to 128 × 128) or vector (32 × 32 blocks)
};

struct activation_options {
  scalar_operand scale = 1.0f;  ///< immediate or per-partition [P, 1]
  region bias{};                ///< optional per-partition [P, 1]
  region reduce_out{};          ///< optional [P, 1]: Σ of the results along the free axis
};

struct engine_options {
  engine unit = engine::vector;
};

struct tensor_scalar_options {
  alu_op op1 = alu_op::bypass;  ///< second stage (bypass: none)
  scalar_operand operand1 = 0.0f;
  engine unit = engine::vector;
};

struct tensor_reduce_options {
  bool negate = false;  ///< write −reduction (a common softmax idiom: −max)
  engine unit = engine::vector;
};

/// The affine expression of iota and affine_select: base + channel_multiplier·partition + step·free_index.
struct affine_expression {
  std::int64_t base = 0;
  std::int64_t channel_multiplier = 0;
  std::int64_t step = 1;
  std::int64_t at(std::size_t partition, std::size_t index) const noexcept {
    return base + channel_multiplier * static_cast<std::int64_t>(partition) + step * static_cast<std::int64_t>(index);
  }
};

struct affine_select_options {
  alu_op compare = alu_op::is_ge;  ///< keep src where (expression compare 0)
  float on_false = -INFINITY;      ///< written where the predicate is false
};

}  // namespace trellis::systolic::isa
