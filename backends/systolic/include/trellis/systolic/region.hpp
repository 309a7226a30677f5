#pragma once
// region: what an instruction reads or writes — a 2-D block [rows, cols] of HBM, SBUF or PSUM.
//
// On chip, rows are partitions (one engine lane each) and cols are elements along the free axis of
// each partition (every row uses the same byte range of its own partition). In HBM, rows and cols are the
// axes of a strided 2-D view. The region is type-erased (its dtype is a value) so that every
// instruction is a plain function validated at run time with messages that name the rule.
//
// Free-axis access patterns: the cols of a region are, by default, one strided run (1-D). free_pattern()
// turns them into an up-to-4-D pattern, as NKI's access patterns do [trainium.md: "Free-axis access
// patterns up to 4-D"]: column c of the result is the multi-index (i0, .., in) of c in row-major order,
// and addresses column Σ i_d·step_d of the original region. A pattern deeper than the machine's
// free_pattern_dims (or than 4, the most the model stores) is a rule error; a patterned region may be
// sliced by rows (partitions) only.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "trellis/core/error.hpp"
#include "trellis/systolic/dtype.hpp"

namespace trellis::systolic {

enum class memory_space : std::uint8_t { none, hbm, sbuf, psum };

constexpr const char* to_string(memory_space s) noexcept {
  switch (s) {
    case memory_space::none: return "none";
    case memory_space::hbm: return "HBM";
    case memory_space::sbuf: return "SBUF";
    case memory_space::psum: return "PSUM";
  }
  return "?";
}

class on_chip_memory;
std::size_t free_pattern_dims_of(const on_chip_memory* memory) noexcept;  // on_chip_memory.hpp
const char* machine_name_of(const on_chip_memory* memory) noexcept;

/// One dimension of a free-axis access pattern: `extent` indices, `step` columns of the base region apart.
struct pattern_dim {
  std::size_t extent;
  std::size_t step;
};

inline constexpr std::size_t max_free_pattern_dims = 4;

struct region {
  memory_space space = memory_space::none;  ///< none: an absent optional operand
  dtype type = dtype::f32;
  bool writable = true;                     ///< false for views of const HBM tensors
  std::size_t rows = 0;                     ///< partitions on chip
  std::size_t cols = 0;                     ///< free-axis elements per partition on chip
  std::byte* origin = nullptr;              ///< element [0, 0]; null when nothing is stored (timing-only, shape-only HBM)
  std::ptrdiff_t row_stride_bytes = 0;
  std::ptrdiff_t col_stride_bytes = 0;
  // On chip only:
  const on_chip_memory* memory = nullptr;
  std::uint64_t allocation = 0;             ///< id of the tile the region lies in
  std::size_t partition_start = 0;
  std::size_t byte_offset = 0;              ///< of element [., 0] within each partition
  // HBM only: the address of element [0, 0] (real, or synthetic for shape-only tensors).
  std::uintptr_t address = 0;
  // Free-axis pattern (free_rank > 1 only): the outer dimensions, outermost first; the innermost has
  // inner_extent elements col_stride_bytes apart, and cols = inner_extent · Π outer_extent.
  std::size_t free_rank = 1;
  std::size_t inner_extent = 0;
  std::array<std::size_t, max_free_pattern_dims - 1> outer_extent{};
  std::array<std::ptrdiff_t, max_free_pattern_dims - 1> outer_stride_bytes{};

  constexpr bool present() const noexcept { return space != memory_space::none; }
  constexpr bool on_chip() const noexcept { return space == memory_space::sbuf || space == memory_space::psum; }
  constexpr std::size_t partitions() const noexcept { return rows; }
  constexpr std::size_t free_size() const noexcept { return cols; }
  constexpr std::size_t element_bytes() const noexcept { return size_of(type); }
  constexpr std::size_t elements() const noexcept { return rows * cols; }
  /// Bytes the region spans within one partition (on chip) or one row (HBM): first to last element.
  constexpr std::size_t row_span_bytes() const noexcept {
    if (cols == 0) return 0;
    if (free_rank == 1) return (cols - 1) * static_cast<std::size_t>(col_stride_bytes) + element_bytes();
    std::size_t span = (inner_extent - 1) * static_cast<std::size_t>(col_stride_bytes) + element_bytes();
    for (std::size_t d = 0; d + 1 < free_rank; ++d) span += (outer_extent[d] - 1) * static_cast<std::size_t>(outer_stride_bytes[d]);
    return span;
  }
  /// Elements per contiguous run of bytes within a row (a DMA packet or an engine access burst).
  constexpr std::size_t run_elements() const noexcept {
    if (cols <= 1) return cols;
    if (col_stride_bytes != static_cast<std::ptrdiff_t>(element_bytes())) return 1;
    if (free_rank == 1) return cols;
    std::size_t run = inner_extent;  // grows while each outer dimension continues the run seamlessly
    for (std::size_t d = free_rank - 1; d-- > 0;) {
      if (outer_stride_bytes[d] != static_cast<std::ptrdiff_t>(run * element_bytes())) break;
      run *= outer_extent[d];
    }
    return run;
  }
  /// True when each row is one contiguous run of bytes.
  constexpr bool rows_contiguous() const noexcept { return run_elements() == cols; }

  std::byte* element(std::size_t row, std::size_t col) const noexcept {
    std::byte* p = origin + static_cast<std::ptrdiff_t>(row) * row_stride_bytes;
    if (free_rank == 1) return p + static_cast<std::ptrdiff_t>(col) * col_stride_bytes;
    p += static_cast<std::ptrdiff_t>(col % inner_extent) * col_stride_bytes;
    col /= inner_extent;
    for (std::size_t d = free_rank - 1; d-- > 0;) {
      p += static_cast<std::ptrdiff_t>(col % outer_extent[d]) * outer_stride_bytes[d];
      col /= outer_extent[d];
    }
    return p;
  }

  /// A multi-dimensional free-axis access pattern over this (1-D free) region: `dims`, outermost first;
  /// index (i0, .., in) addresses column Σ i_d·step_d. Checked against the region and the machine.
  region free_pattern(std::initializer_list<pattern_dim> dims) const {
    const std::size_t limit = on_chip() ? free_pattern_dims_of(memory) : max_free_pattern_dims;
    const std::string on = on_chip() ? std::string(" on ") + machine_name_of(memory) : std::string();
    if (free_rank != 1) raise_error("region.free_pattern: the region already has a " + std::to_string(free_rank) + "-D pattern");
    if (dims.size() == 0) raise_error("region.free_pattern: no dimensions");
    if (dims.size() > limit || dims.size() > max_free_pattern_dims)
      raise_error("region.free_pattern: " + std::to_string(dims.size()) + " free-axis dimensions exceed " +
                  std::to_string(std::min(limit, max_free_pattern_dims)) + on +
                  " (free-axis access patterns up to " + std::to_string(std::min(limit, max_free_pattern_dims)) + "-D)");
    std::size_t total = 1, last = 0;
    for (const pattern_dim& d : dims) {
      if (d.extent == 0) raise_error("region.free_pattern: a dimension has extent 0");
      total *= d.extent;
      last += (d.extent - 1) * d.step;
    }
    if (last >= cols)
      raise_error("region.free_pattern: the pattern reaches column " + std::to_string(last) + " of a region with " +
                  std::to_string(cols) + " columns");
    region a = *this;
    a.cols = total;
    a.free_rank = dims.size();
    const pattern_dim* d = dims.begin();
    for (std::size_t i = 0; i + 1 < dims.size(); ++i) {
      a.outer_extent[i] = d[i].extent;
      a.outer_stride_bytes[i] = col_stride_bytes * static_cast<std::ptrdiff_t>(d[i].step);
    }
    a.inner_extent = d[dims.size() - 1].extent;
    a.col_stride_bytes = col_stride_bytes * static_cast<std::ptrdiff_t>(d[dims.size() - 1].step);
    if (a.free_rank == 1) a.inner_extent = 0;
    return a;
  }

  /// Rows [row0, row0 + nrows) and columns col0, col0 + step, ... (ncols of them). Checked.
  region sub(std::size_t row0, std::size_t nrows, std::size_t col0, std::size_t ncols, std::size_t step = 1) const {
    if ((free_rank > 1 && (col0 != 0 || ncols != cols || step != 1)) || row0 + nrows > rows || nrows == 0 || step == 0 ||
        ncols == 0 || col0 + (ncols - 1) * step >= cols) [[unlikely]]
      sub_failure(row0, nrows, col0, ncols, step);
    region a = copy_fields();
    a.rows = nrows;
    a.cols = ncols;
    a.col_stride_bytes = col_stride_bytes * static_cast<std::ptrdiff_t>(step);
    const std::ptrdiff_t shift = static_cast<std::ptrdiff_t>(row0) * row_stride_bytes + static_cast<std::ptrdiff_t>(col0) * col_stride_bytes;
    if (origin) a.origin = origin + shift;
    if (on_chip()) {
      a.partition_start += row0;
      a.byte_offset += col0 * static_cast<std::size_t>(col_stride_bytes);
    } else {
      a.address = static_cast<std::uintptr_t>(static_cast<std::ptrdiff_t>(address) + shift);
    }
    return a;
  }
  /// A copy made field by field: a region is usually built field by field just before (tile::view()),
  /// and copying it whole with wide loads would wait on those stores (store forwarding fails).
  region copy_fields() const noexcept {
    region a;
    a.space = space;
    a.type = type;
    a.writable = writable;
    a.rows = rows;
    a.cols = cols;
    a.origin = origin;
    a.row_stride_bytes = row_stride_bytes;
    a.col_stride_bytes = col_stride_bytes;
    a.memory = memory;
    a.allocation = allocation;
    a.partition_start = partition_start;
    a.byte_offset = byte_offset;
    a.address = address;
    a.free_rank = free_rank;
    if (free_rank > 1) {
      a.inner_extent = inner_extent;
      a.outer_extent = outer_extent;
      a.outer_stride_bytes = outer_stride_bytes;
    }
    return a;
  }
  /// Raises sub()'s error for arguments it rejected (out of line: sub runs for every tile a kernel takes).
  [[gnu::cold, gnu::noinline, noreturn]] void sub_failure(std::size_t row0, std::size_t nrows, std::size_t col0, std::size_t ncols,
                                                          std::size_t step) const {
    const char* axis = on_chip() ? "partitions" : "rows";
    if (free_rank > 1 && (col0 != 0 || ncols != cols || step != 1))
      raise_error("region.sub: the columns of a " + std::to_string(free_rank) +
                  "-D free pattern cannot be sliced (slice the region before free_pattern)");
    if (row0 + nrows > rows || nrows == 0)
      raise_error("region.sub: " + std::string(axis) + " [" + std::to_string(row0) + ", " + std::to_string(row0 + nrows) +
                  ") are not a non-empty part of the region's " + std::to_string(rows));
    raise_error("region.sub: columns " + std::to_string(col0) + " + " + std::to_string(ncols) + " × step " +
                std::to_string(step) + " are not a non-empty part of the region's " + std::to_string(cols) + " columns");
  }
  /// Partitions (rows) [row0, row0 + nrows), all columns.
  region rows_range(std::size_t row0, std::size_t nrows) const { return sub(row0, nrows, 0, cols); }
  /// Columns [col0, col0 + ncols) of every row.
  region cols_range(std::size_t col0, std::size_t ncols) const { return sub(0, rows, col0, ncols); }
};

namespace detail {

/// The partition-start rule of SBUF/PSUM tiles and engine accesses [trainium.md, Memories and tile rules]:
/// start 0 when P > 64; 0 or 64 when 32 < P ≤ 64; 0, 32, 64 or 96 when P ≤ 32 (quadrants of 32 lanes).
constexpr bool partition_start_allowed(std::size_t start, std::size_t count, std::size_t partitions = 128) noexcept {
  if (count == 0 || start + count > partitions) return false;
  if (count > 64) return start == 0;
  if (count > 32) return start % 64 == 0;
  return start % 32 == 0;
}

inline constexpr const char* partition_start_rule =
    "start 0 when P > 64; 0 or 64 when 32 < P <= 64; 0, 32, 64 or 96 when P <= 32";

inline std::string shape_string(std::size_t rows, std::size_t cols) {
  std::string s(1, '[');  // appended piecewise: gcc 12 misreports "[" + std::string as -Wrestrict
  s += std::to_string(rows);
  s += ", ";
  s += std::to_string(cols);
  s += ']';
  return s;
}

}  // namespace detail
}  // namespace trellis::systolic
