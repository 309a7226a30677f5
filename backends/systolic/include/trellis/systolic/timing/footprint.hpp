#pragma once
// footprint: the bytes an operand covers, and the exact overlap/coverage tests the access tracker uses.
//
// On chip, a rectangle of partitions × bytes per partition (strided or patterned columns take their byte
// envelope); in HBM, `rows` segments of `span` bytes, `row_stride` apart, from `address`. Two HBM
// footprints with the same row stride overlap exactly when some pair of their rows does; this is decided
// from the difference of their addresses only, so timing-only runs (synthetic addresses) and functional
// runs (host addresses) see the same dependencies. Other HBM pairs compare byte envelopes.

#include <cstddef>
#include <cstdint>

#include "trellis/systolic/records.hpp"

namespace trellis::systolic::timing {

/// The span an operand covers, in the terms above.
struct footprint {
  memory_space space = memory_space::none;
  std::uint64_t p0 = 0, p1 = 0;       ///< on chip: partitions [p0, p1)
  std::uint64_t b0 = 0, b1 = 0;       ///< on chip: bytes [b0, b1) of each; HBM: byte envelope [b0, b1)
  std::int64_t address = 0, row_stride = 0, span = 0, rows = 0;  ///< HBM rows (row_stride 0: one segment)

  static footprint of(const operand_record& o) noexcept {
    footprint f;
    f.space = o.space;
    if (o.space == memory_space::hbm) {
      const std::size_t elem = size_of(o.type);
      const std::int64_t span = o.cols == 0 ? 0 : std::int64_t((o.cols - 1) * std::size_t(o.col_stride_bytes) + elem);
      f.address = std::int64_t(o.address);
      f.rows = std::int64_t(o.rows);
      f.row_stride = o.rows > 1 ? o.row_stride_bytes : 0;
      f.span = span;
      f.b0 = o.address;
      f.b1 = o.address + std::uint64_t((f.rows - 1) * f.row_stride + span);
      if (f.row_stride == 0) f.rows = 1;
    } else {
      f.p0 = o.partition_start;
      f.p1 = o.partition_start + o.rows;
      f.b0 = o.byte_begin;
      f.b1 = o.byte_end;
    }
    return f;
  }

  friend bool operator==(const footprint&, const footprint&) = default;

  /// The same bytes, described the same way (so the same cells in footprint_index).
  [[gnu::always_inline]] bool same_as(const footprint& o) const noexcept {
    if (space != o.space) return false;
    if (space != memory_space::hbm) return p0 == o.p0 && p1 == o.p1 && b0 == o.b0 && b1 == o.b1;
    return address == o.address && row_stride == o.row_stride && span == o.span && rows == o.rows;
  }

  bool overlaps(const footprint& o) const noexcept {
    if (space != o.space) return false;
    if (space != memory_space::hbm) return p0 < o.p1 && o.p0 < p1 && b0 < o.b1 && o.b0 < b1;
    if (!(b0 < o.b1 && o.b0 < b1)) return false;
    if (row_stride == 0 || row_stride != o.row_stride) return true;  // envelopes overlap
    // Row i of this [address + i·R, + span) and row j of o [o.address + j·R, + o.span) overlap iff
    // −o.span < d + k·R < span with d = o.address − address and k = j − i ∈ [−(rows − 1), o.rows − 1].
    const std::int64_t d = std::int64_t(std::uint64_t(o.address) - std::uint64_t(address)), r = row_stride;
    std::int64_t k_lo = floor_div(-o.span - d, r) + 1, k_hi = ceil_div(span - d, r) - 1;
    k_lo = k_lo > -(rows - 1) ? k_lo : -(rows - 1);
    k_hi = k_hi < o.rows - 1 ? k_hi : o.rows - 1;
    return k_lo <= k_hi;
  }

  /// True when every byte of o is inside this footprint (conservatively: false when unsure).
  bool covers(const footprint& o) const noexcept {
    if (space != o.space) return false;
    if (space != memory_space::hbm) return p0 <= o.p0 && o.p1 <= p1 && b0 <= o.b0 && o.b1 <= b1;
    if (row_stride == o.row_stride && address == o.address && rows >= o.rows && span >= o.span) return true;
    return rows == 1 && b0 <= o.b0 && o.b1 <= b1;
  }

 private:
  static std::int64_t floor_div(std::int64_t a, std::int64_t b) noexcept {
    const std::int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
  }
  static std::int64_t ceil_div(std::int64_t a, std::int64_t b) noexcept { return -floor_div(-a, b); }
};

}  // namespace trellis::systolic::timing
