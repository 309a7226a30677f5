#pragma once
// The instruction record: everything a scheduler needs to time an instruction, captured when the kernel
// issues it — engine, opcode, every operand region (memory space, tile, partition range, byte range,
// shape, strides, dtype), the op's parameters and the kernel's source line. The functional model only
// logs records; the timing model (next part) consumes the same records, so kernels never change.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <source_location>
#include <utility>

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

/// What an operand is to its instruction. The cost model and scheduler look operands up by role; the
/// role's name (operand_record::role) is what reports and traces print.
enum class operand_role : std::uint8_t {
  dst, src, stationary, moving, in0, in1, scale, bias, reduce_out, operand0, operand1, other
};

inline constexpr const char* operand_role_names[] = {"dst",   "src",  "stationary", "moving",   "in0",      "in1",
                                                      "scale", "bias", "reduce_out", "operand0", "operand1", "other"};

constexpr const char* to_string(operand_role r) noexcept { return operand_role_names[std::size_t(r)]; }

/// The role named `name` (other when it is none of the known ones).
inline operand_role operand_role_of(const char* name) noexcept {
  for (std::size_t i = 0; i < std::size_t(operand_role::other); ++i)
    if (std::strcmp(name, operand_role_names[i]) == 0) return operand_role(i);
  return operand_role::other;
}

/// One operand region, with the pointers stripped: only what identifies and sizes it.
struct operand_record {
  const char* role = "";             ///< "dst", "src", "stationary", "moving", "bias", ...
  std::size_t rows = 0, cols = 0;    ///< [partitions, free elements] on chip; [rows, cols] in HBM
  std::ptrdiff_t row_stride_bytes = 0, col_stride_bytes = 0;
  std::size_t run_bytes = 0;         ///< bytes per contiguous run within a row (partition)
  // On chip: the tile and the rectangle (partitions × bytes within each partition) the region touches.
  std::uint64_t allocation = 0;
  // HBM: address of element [0, 0] (real or synthetic).
  std::uintptr_t address = 0;
  std::uint32_t partition_start = 0;
  std::uint32_t byte_begin = 0, byte_end = 0;
  std::uint32_t free_rank = 1;       ///< dimensions of the free-axis access pattern
  bool written = false;              ///< false: read
  memory_space space = memory_space::none;
  dtype type = dtype::f32;
  operand_role slot = operand_role::other;  ///< `role` as an enum: what the timing model looks up

  std::size_t bytes() const noexcept { return rows * cols * size_of(type); }
};

/// Writes the description of operand `a` into r (every field).
inline void describe_into(operand_record& r, operand_role role, const char* name, const region& a, bool written) noexcept {
  r.role = name;
  r.slot = role;
  r.written = written;
  r.space = a.space;
  r.type = a.type;
  r.rows = a.rows;
  r.cols = a.cols;
  r.row_stride_bytes = a.row_stride_bytes;
  r.col_stride_bytes = a.col_stride_bytes;
  r.run_bytes = a.run_elements() * a.element_bytes();
  r.free_rank = std::uint32_t(a.free_rank);
  r.allocation = a.allocation;
  r.partition_start = std::uint32_t(a.partition_start);
  r.byte_begin = std::uint32_t(a.byte_offset);
  r.byte_end = a.on_chip() ? std::uint32_t(a.byte_offset + a.row_span_bytes()) : 0;
  r.address = a.address;
}

inline operand_record describe(operand_role role, const char* name, const region& a, bool written) noexcept {
  operand_record r;
  describe_into(r, role, name, a, written);
  return r;
}

/// An operand in a known role (the instructions use this).
inline operand_record describe(operand_role role, const region& a, bool written) noexcept {
  return describe(role, to_string(role), a, written);
}

/// An operand whose role is given by name.
inline operand_record describe(const char* role, const region& a, bool written) noexcept {
  return describe(operand_role_of(role), role, a, written);
}

/// The operands of an instruction. A record built by hand owns its operands (on the heap); the records a
/// core keeps (core_state::records()) view operands stored by the core in large blocks, so that recording an
/// instruction allocates nothing. A copy always owns its operands; a move keeps what it moves.
class operand_list {
 public:
  using value_type = operand_record;
  using iterator = operand_record*;
  using const_iterator = const operand_record*;

  operand_list() noexcept = default;
  operand_list(std::initializer_list<operand_record> list) { assign(list.begin(), list.size()); }
  operand_list(const operand_list& other) { assign(other.data_, other.size_); }
  operand_list(operand_list&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)),
        capacity_(std::exchange(other.capacity_, 0)) {}
  operand_list& operator=(const operand_list& other) {
    if (this != &other) {
      operand_list copy(other);
      swap(copy);
    }
    return *this;
  }
  operand_list& operator=(operand_list&& other) noexcept {
    operand_list moved(std::move(other));
    swap(moved);
    return *this;
  }
  operand_list& operator=(std::initializer_list<operand_record> list) {
    operand_list copy(list);
    swap(copy);
    return *this;
  }
  ~operand_list() { release(); }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  operand_record& operator[](std::size_t i) noexcept { return data_[i]; }
  const operand_record& operator[](std::size_t i) const noexcept { return data_[i]; }
  operand_record* data() noexcept { return data_; }
  const operand_record* data() const noexcept { return data_; }
  iterator begin() noexcept { return data_; }
  iterator end() noexcept { return data_ + size_; }
  const_iterator begin() const noexcept { return data_; }
  const_iterator end() const noexcept { return data_ + size_; }
  operand_record& front() noexcept { return data_[0]; }
  const operand_record& front() const noexcept { return data_[0]; }
  operand_record& back() noexcept { return data_[size_ - 1]; }
  const operand_record& back() const noexcept { return data_[size_ - 1]; }

  void push_back(const operand_record& o) {
    if (size_ == capacity_) {  // full, or a view: move to owned storage twice as large
      operand_list grown;
      grown.reserve_owned(size_ < 4 ? 4 : 2 * std::size_t(size_));
      for (std::uint32_t i = 0; i < size_; ++i) grown.data_[i] = data_[i];
      grown.size_ = size_;
      const operand_record copy = o;  // o may lie in the storage released below
      swap(grown);
      data_[size_++] = copy;
      return;
    }
    data_[size_++] = o;
  }
  void clear() noexcept { size_ = 0; }
  void swap(operand_list& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(capacity_, other.capacity_);
  }

  /// A list viewing `size` operands stored elsewhere (a core's operand blocks), for the core.
  static operand_list view(operand_record* data, std::size_t size) noexcept {
    operand_list l;
    l.data_ = data;
    l.size_ = std::uint32_t(size);
    return l;
  }
  /// Appends to a view whose storage has room after it (the core's current block).
  void append_in_place(const operand_record& o) noexcept { data_[size_++] = o; }
  /// The same, returning the new (unwritten) operand for the caller to fill in.
  operand_record& append_in_place() noexcept { return data_[size_++]; }

 private:
  void reserve_owned(std::size_t n) {
    data_ = new operand_record[n];
    capacity_ = std::uint32_t(n);
  }
  void assign(const operand_record* from, std::size_t n) {
    if (n == 0) return;
    reserve_owned(n);
    for (std::size_t i = 0; i < n; ++i) data_[i] = from[i];
    size_ = std::uint32_t(n);
  }
  void release() noexcept {
    if (capacity_ != 0) delete[] data_;
    data_ = nullptr;
    size_ = capacity_ = 0;
  }

  operand_record* data_ = nullptr;
  std::uint32_t size_ = 0;
  std::uint32_t capacity_ = 0;  ///< 0: a view (or empty); otherwise owned storage of this many
};

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
  std::source_location where;
  engine unit = engine::vector;
  opcode op = opcode::tensor_copy;
  int dma_queue = -1;       ///< dma_copy only
  instruction_attributes attributes;
  operand_list operands;
};

/// The first operand of `r` in `role`, or null.
inline const operand_record* find_operand(const instruction_record& r, operand_role role) noexcept {
  for (const operand_record& o : r.operands)
    if (o.slot == role) return &o;
  return nullptr;
}

}  // namespace trellis::systolic
