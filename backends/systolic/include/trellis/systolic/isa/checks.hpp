#pragma once
// Operand checks shared by the instructions, and the host-side gather/scatter of regions.
// Every failure raises one trellis::error "<instruction>: <operand> <what is wrong> on <machine> (<rule>)".

#include <cstddef>
#include <initializer_list>
#include <source_location>
#include <string>
#include <string_view>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/systolic/region.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/records.hpp"

namespace trellis::systolic::detail {

/// Which memories an engine can reach [trainium.md, Engines / Memories and tile rules]: the Tensor Engine
/// reads SBUF and writes PSUM (checked per operand by its instructions); Vector and Scalar use both;
/// GpSimd cannot region PSUM; DMA moves HBM and SBUF (the NKI samples always evict PSUM through SBUF).
constexpr bool engine_reaches(engine e, memory_space s) noexcept {
  switch (e) {
    case engine::tensor: return s == memory_space::sbuf || s == memory_space::psum;
    case engine::vector:
    case engine::scalar: return s == memory_space::sbuf || s == memory_space::psum;
    case engine::gpsimd: return s == memory_space::sbuf;
    case engine::dma: return s == memory_space::hbm || s == memory_space::sbuf;
  }
  return false;
}

inline const char* engine_title(engine e) noexcept {
  switch (e) {
    case engine::tensor: return "Tensor";
    case engine::vector: return "Vector";
    case engine::scalar: return "Scalar";
    case engine::gpsimd: return "GpSimd";
    case engine::dma: return "DMA";
  }
  return "?";
}

/// The instruction being checked: its name and the core it runs on.
struct checker {
  std::string_view instruction;
  const core_state& nc;

  std::string on() const { return std::string(" on ") + nc.spec().name; }

  [[noreturn]] void fail(const std::string& message) const { raise_error(std::string(instruction) + ": " + message); }

  void engine_allowed(engine e, std::initializer_list<engine> allowed) const {
    for (engine a : allowed)
      if (a == e) return;
    std::string list;
    for (engine a : allowed) list += (list.empty() ? "" : ", ") + std::string(to_string(a));
    fail(std::string("the ") + engine_title(e) + " engine cannot run it" + on() + " (engines: " + list + ")");
  }

  /// Present, on a memory `e` can reach, writable if written, with storage when the core computes.
  /// (Every check runs on every instruction: the tests are inline, the messages in a cold function.)
  void operand(const char* role, const region& a, engine e, bool written) const {
    const bool ok = a.present() && engine_reaches(e, a.space) && (!written || a.writable) && a.rows != 0 && a.cols != 0 &&
                    (!nc.functional() || a.origin) &&
                    (!a.on_chip() || ((a.memory == &nc.sbuf || a.memory == &nc.psum) && a.rows <= nc.spec().memory.partitions));
    if (!ok) [[unlikely]] operand_failure(role, a, e, written);
  }
  [[gnu::cold, gnu::noinline]] void operand_failure(const char* role, const region& a, engine e, bool written) const {
    if (!a.present()) fail(std::string(role) + " is missing");
    if (!engine_reaches(e, a.space))
      fail(std::string(role) + " is in " + to_string(a.space) + ", which the " + engine_title(e) +
           " engine cannot region" + on());
    if (written && !a.writable) fail(std::string(role) + " is a read-only (const) tensor");
    if (a.rows == 0 || a.cols == 0) fail(std::string(role) + " is empty " + shape_string(a.rows, a.cols));
    if (nc.functional() && !a.origin)
      fail(std::string(role) + " has no memory (a shape-only HBM tensor needs a timing-only core)");
    if (a.on_chip()) {
      if (a.memory != &nc.sbuf && a.memory != &nc.psum) fail(std::string(role) + " belongs to another core");
      if (a.rows > nc.spec().memory.partitions)
        fail(std::string(role) + " partition count " + std::to_string(a.rows) + " exceeds " +
             std::to_string(nc.spec().memory.partitions) + on());
    }
  }

  /// The partition-start rule, for engine (non-DMA) accesses.
  void partition_start(const char* role, const region& a) const {
    if (!partition_start_allowed(a.partition_start, a.rows, nc.spec().memory.partitions)) [[unlikely]]
      partition_start_failure(role, a);
  }
  [[gnu::cold, gnu::noinline, noreturn]] void partition_start_failure(const char* role, const region& a) const {
    fail(std::string(role) + " starts at partition " + std::to_string(a.partition_start) + " with " +
         std::to_string(a.rows) + " partitions, which is not allowed" + on() + " (" + partition_start_rule + ")");
  }

  /// Vector/Scalar/GpSimd free-size limits per memory.
  void engine_free_limit(const char* role, const region& a) const {
    const bool psum = a.space == memory_space::psum;
    const std::size_t limit = psum ? nc.spec().access.engine_free_max_psum : nc.spec().access.engine_free_max_sbuf;
    if (a.cols > limit)
      fail(std::string(role) + " free size " + std::to_string(a.cols) + " exceeds " + std::to_string(limit) + on() +
           " (engine access to " + to_string(a.space) + ")");
  }

  /// An operand of a Vector/Scalar/GpSimd instruction: all of the above.
  void engine_operand(const char* role, const region& a, engine e, bool written) const {
    operand(role, a, e, written);
    partition_start(role, a);
    engine_free_limit(role, a);
  }

  /// A [P, 1] operand: one value per partition.
  void per_partition(const char* role, const region& a, engine e, bool written, std::size_t partitions) const {
    engine_operand(role, a, e, written);
    if (a.rows != partitions || a.cols != 1)
      fail(std::string(role) + " shape " + shape_string(a.rows, a.cols) + " is not [P, 1] = " +
           shape_string(partitions, 1) + " (one value per partition)");
  }

  void same_partitions(const char* role, const region& a, const char* other, const region& b) const {
    if (a.rows != b.rows)
      fail(std::string(role) + " has " + std::to_string(a.rows) + " partitions but " + other + " has " +
           std::to_string(b.rows) + " (engines work lane by lane)");
  }

  /// Vector/Scalar/GpSimd work lane by lane: partition p of every operand goes through lane p, so the
  /// operands of one instruction use the same partitions (same start, same count) [trainium.md, Engines:
  /// "128 lanes, one per partition"]. DMA moves data between any partitions and is exempt.
  void same_lanes(const char* role, const region& a, const char* other, const region& b) const {
    if (!b.present() || !a.present()) return;
    if (a.partition_start != b.partition_start || a.rows != b.rows)
      fail(std::string(role) + " uses partitions " + partition_range(a) + " but " + other + " uses " + partition_range(b) +
           on() + " (engines work lane by lane: every operand must use the same partitions)");
  }

  static std::string partition_range(const region& a) {
    std::string s(1, '[');  // appended piecewise: gcc 12 misreports "[" + std::string as -Wrestrict
    s += std::to_string(a.partition_start);
    s += ", ";
    s += std::to_string(a.partition_start + a.rows);
    s += ')';
    return s;
  }

  void same_shape(const char* role, const region& a, const char* other, const region& b) const {
    if (a.rows != b.rows || a.cols != b.cols) [[unlikely]] same_shape_failure(role, a, other, b);
  }
  [[gnu::cold, gnu::noinline, noreturn]] void same_shape_failure(const char* role, const region& a, const char* other,
                                                                   const region& b) const {
    fail(std::string(role) + " shape " + shape_string(a.rows, a.cols) + " differs from " + other + " shape " +
         shape_string(b.rows, b.cols));
  }

  void free_size(const char* role, const region& a, std::size_t expected, const char* why) const {
    if (a.cols != expected)
      fail(std::string(role) + " free size " + std::to_string(a.cols) + " is not " + std::to_string(expected) + " (" +
           why + ")");
  }

  void type(const char* role, const region& a, dtype expected, const char* why) const {
    if (a.type != expected)
      fail(std::string(role) + " is " + to_string(a.type) + ", expected " + to_string(expected) + " (" + why + ")");
  }
};

constexpr bool is_fp8(dtype t) noexcept { return t == dtype::f8e4m3 || t == dtype::f8e5m2; }

inline instruction_record record(engine unit, opcode op, std::source_location where) {
  instruction_record r;
  r.unit = unit;
  r.op = op;
  r.where = where;
  return r;
}

/// The region's elements widened to fp32, row-major [rows, cols].
inline std::vector<float> gather(const region& a) {
  std::vector<float> v(a.rows * a.cols);
  for (std::size_t r = 0; r < a.rows; ++r)
    for (std::size_t c = 0; c < a.cols; ++c) v[r * a.cols + c] = load_element(a.type, a.element(r, c));
  return v;
}

/// Writes row-major [rows, cols] fp32 values into the region, rounding to its dtype.
inline void scatter(const region& a, const float* values) {
  for (std::size_t r = 0; r < a.rows; ++r)
    for (std::size_t c = 0; c < a.cols; ++c) store_element(a.type, a.element(r, c), values[r * a.cols + c]);
}

/// A per-partition scalar operand: an immediate or a [P, 1] region.
inline std::vector<float> per_partition(const region& a, float immediate, std::size_t partitions) {
  if (!a.present()) return std::vector<float>(partitions, immediate);
  return gather(a);
}

}  // namespace trellis::systolic::detail
