#pragma once
// region: what an instruction reads or writes — a 2-D block [rows, cols] of HBM, SBUF or PSUM.
//
// On chip, rows are partitions (one engine lane each) and cols are elements along the free axis of
// each partition (every row uses the same byte range of its own partition). In HBM, rows and cols are the
// axes of a strided 2-D view. The region is type-erased (its dtype is a value) so that every
// instruction is a plain function validated at run time with messages that name the rule.

#include <cstddef>
#include <cstdint>
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

  constexpr bool present() const noexcept { return space != memory_space::none; }
  constexpr bool on_chip() const noexcept { return space == memory_space::sbuf || space == memory_space::psum; }
  constexpr std::size_t partitions() const noexcept { return rows; }
  constexpr std::size_t free_size() const noexcept { return cols; }
  constexpr std::size_t element_bytes() const noexcept { return size_of(type); }
  constexpr std::size_t elements() const noexcept { return rows * cols; }
  /// Bytes the region spans within one partition (on chip) or one row (HBM): first to last element.
  constexpr std::size_t row_span_bytes() const noexcept {
    return cols == 0 ? 0 : (cols - 1) * static_cast<std::size_t>(col_stride_bytes) + element_bytes();
  }
  /// True when each row is one contiguous run of bytes.
  constexpr bool rows_contiguous() const noexcept {
    return cols <= 1 || col_stride_bytes == static_cast<std::ptrdiff_t>(element_bytes());
  }

  std::byte* element(std::size_t row, std::size_t col) const noexcept {
    return origin + static_cast<std::ptrdiff_t>(row) * row_stride_bytes + static_cast<std::ptrdiff_t>(col) * col_stride_bytes;
  }

  /// Rows [row0, row0 + nrows) and columns col0, col0 + step, ... (ncols of them). Checked.
  region sub(std::size_t row0, std::size_t nrows, std::size_t col0, std::size_t ncols, std::size_t step = 1) const {
    const char* axis = on_chip() ? "partitions" : "rows";
    if (row0 + nrows > rows || nrows == 0)
      raise_error("region.sub: " + std::string(axis) + " [" + std::to_string(row0) + ", " + std::to_string(row0 + nrows) +
                  ") are not a non-empty part of the region's " + std::to_string(rows));
    if (step == 0 || ncols == 0 || col0 + (ncols - 1) * step >= cols)
      raise_error("region.sub: columns " + std::to_string(col0) + " + " + std::to_string(ncols) + " × step " +
                  std::to_string(step) + " are not a non-empty part of the region's " + std::to_string(cols) + " columns");
    region a = *this;
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
