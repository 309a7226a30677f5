#pragma once
// footprint_index: which recorded footprints may overlap a given one, at a cost that does not grow with
// the number of footprints recorded. It answers a superset (the access tracker applies footprint's exact
// tests to it), so the index only has to never miss an overlap.
//
// Footprints are grouped by memory space and, in HBM, by row stride. Within a group a footprint is a
// rectangle of (row, byte-in-row) coordinates — on chip partitions × bytes; in HBM with stride R > 0 the
// byte x lies at (x / R, x mod R); single-segment HBM footprints (R = 0) are one row of absolute bytes —
// and is registered in the grid cells its rectangle touches. Two footprints of one group that share a
// byte share a cell, so a query visits only the cells its own rectangle touches. A footprint touching
// more than max_cells cells (a whole tensor at once, a negative stride) is "wide": it sits on one list
// of its group that every query of the group visits, and a wide query visits every footprint of the group.
// Footprints of different HBM groups overlap when their byte envelopes do (footprint::overlaps); each
// group keeps the union of its envelopes, and a query visits the footprints of every other group whose
// union meets its envelope — kernels usually access a tensor with one row stride, so this is rare.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "trellis/systolic/timing/cell_map.hpp"
#include "trellis/systolic/timing/footprint.hpp"

namespace trellis::systolic::timing {

class footprint_index {
 public:
  /// A footprint covering more cells than this is wide (see above).
  static constexpr std::uint64_t max_cells = 64;

  void insert(std::uint32_t id, const footprint& f) {
    std::uint32_t g = find_group(f);
    if (g == no_group) g = add_group(f);
    group& gr = groups_[g];
    if (id >= placed_.size()) {
      placed_.resize(id + 1);
      stamp_.resize(id + 1, 0);
    }
    placement& p = placed_[id];
    p.group = g;
    p.cells = rect_of(gr, f);
    p.live_pos = std::uint32_t(gr.live.size());
    gr.live.push_back(id);
    if (p.cells.wide) {
      p.wide_pos = std::uint32_t(gr.wide.size());
      gr.wide.push_back(id);
    } else {
      for_each_cell(g, p.cells, [&](std::uint64_t key) { cells_.at(key).push_back(id); });
    }
    if (f.space == memory_space::hbm) {
      gr.lo = f.b0 < gr.lo ? f.b0 : gr.lo;
      gr.hi = f.b1 > gr.hi ? f.b1 : gr.hi;
    }
  }

  void erase(std::uint32_t id) {
    const placement& p = placed_[id];
    group& gr = groups_[p.group];
    remove_at(gr.live, p.live_pos, [&](std::uint32_t moved, std::uint32_t pos) { placed_[moved].live_pos = pos; });
    if (p.cells.wide) {
      remove_at(gr.wide, p.wide_pos, [&](std::uint32_t moved, std::uint32_t pos) { placed_[moved].wide_pos = pos; });
      return;
    }
    for_each_cell(p.group, p.cells, [&](std::uint64_t key) {
      cell_map::list& l = cells_.at(key);
      for (std::size_t i = 0; i < l.size(); ++i)
        if (l[i] == id) {
          l[i] = l.back();  // order within a cell does not matter: the tracker orders by sequence number
          l.pop_back();
          break;
        }
    });
  }

  /// Calls visit(id) once for every footprint that may overlap f (and for some that do not).
  template <class Visit>
  void candidates(const footprint& f, Visit&& visit) {
    if (++epoch_ == 0) {  // the stamps wrapped: forget them all
      std::fill(stamp_.begin(), stamp_.end(), 0);
      epoch_ = 1;
    }
    auto once = [&](std::uint32_t id) {
      if (stamp_[id] == epoch_) return;
      stamp_[id] = epoch_;
      visit(id);
    };
    const std::uint32_t g = find_group(f);
    if (g != no_group) {
      const group& gr = groups_[g];
      const rect r = rect_of(gr, f);
      if (r.wide) {
        for (std::uint32_t id : gr.live) once(id);
      } else {
        for_each_cell(g, r, [&](std::uint64_t key) {
          if (const cell_map::list* l = cells_.find(key))
            for (std::uint32_t id : *l) once(id);
        });
        for (std::uint32_t id : gr.wide) once(id);
      }
    }
    if (f.space != memory_space::hbm) return;
    for (std::uint32_t o = 0; o < groups_.size(); ++o) {
      const group& gr = groups_[o];
      if (o == g || gr.space != memory_space::hbm || !(gr.lo < f.b1 && f.b0 < gr.hi)) continue;
      for (std::uint32_t id : gr.live) once(id);
    }
  }

 private:
  static constexpr std::uint32_t no_group = ~std::uint32_t{0};

  /// Inclusive row and column block ranges in a group's grid; wide: on the group's wide list instead.
  struct rect {
    std::uint64_t rb0 = 0, rb1 = 0, cb0 = 0, cb1 = 0;
    bool wide = true;
  };
  struct group {
    memory_space space;
    std::int64_t stride;       ///< HBM row stride (0: single segments); 0 on chip
    unsigned row_shift, col_shift;  ///< cell = 2^row_shift rows × 2^col_shift bytes
    std::uint64_t lo = ~std::uint64_t{0}, hi = 0;  ///< HBM: union of the envelopes ever inserted
    std::vector<std::uint32_t> live, wide;
  };
  struct placement {
    std::uint32_t group = 0, live_pos = 0, wide_pos = 0;
    rect cells;
  };

  static std::int64_t stride_key(const footprint& f) noexcept { return f.space == memory_space::hbm ? f.row_stride : 0; }

  std::uint32_t find_group(const footprint& f) const noexcept {
    const std::int64_t s = stride_key(f);
    for (std::uint32_t g = 0; g < groups_.size(); ++g)
      if (groups_[g].space == f.space && groups_[g].stride == s) return g;
    return no_group;
  }

  static unsigned floor_log2(std::uint64_t v) noexcept {
    unsigned l = 0;
    while (v > 1) v >>= 1, ++l;
    return l;
  }
  static unsigned clamp(unsigned v, unsigned lo, unsigned hi) noexcept { return v < lo ? lo : v > hi ? hi : v; }

  /// Cells sized after the group's first footprint (kernels move same-shaped tiles through a tensor), so
  /// that a tile touches about four cells; clamped so that a first whole-tensor access cannot make cells
  /// hold many tiles. On chip: all 128 partitions × 512 bytes, about the smallest tile row kernels use.
  std::uint32_t add_group(const footprint& f) {
    group gr{f.space, stride_key(f), 7, 9, ~std::uint64_t{0}, 0, {}, {}};
    if (f.space == memory_space::hbm) {
      const std::uint64_t span = f.span > 0 ? std::uint64_t(f.span) : 1;
      gr.row_shift = gr.stride > 0 ? clamp(floor_log2(std::uint64_t(f.rows > 0 ? f.rows : 1)), 0, 7) : 0;
      gr.col_shift = clamp(floor_log2(gr.stride > 0 && span > std::uint64_t(gr.stride) ? std::uint64_t(gr.stride) : span), 6, 12);
    }
    groups_.push_back(std::move(gr));
    return std::uint32_t(groups_.size() - 1);
  }

  /// The cells of f in its group's grid: every byte of f lies in one of them.
  static rect rect_of(const group& gr, const footprint& f) noexcept {
    std::uint64_t r0 = 0, r1 = 1, c0 = f.b0, c1 = f.b1;
    if (f.space != memory_space::hbm) {
      r0 = f.p0;
      r1 = f.p1;
    } else if (gr.stride > 0) {
      if (f.span <= 0 || f.rows <= 0) return {};
      const auto stride = std::uint64_t(gr.stride), span = std::uint64_t(f.span), a = std::uint64_t(f.address);
      r0 = a / stride;
      const std::uint64_t c = a % stride;
      if (c + span <= stride) {  // every row is one run of columns [c, c + span)
        r1 = r0 + std::uint64_t(f.rows);
        c0 = c;
        c1 = c + span;
      } else {  // rows wrap past the stride: take whole grid rows from the first byte's to the last's
        r1 = (a + std::uint64_t(f.rows - 1) * stride + span - 1) / stride + 1;
        c0 = 0;
        c1 = stride;
      }
    } else if (gr.stride < 0) {
      return {};
    }
    if (r0 >= r1 || c0 >= c1) return {};
    rect r{r0 >> gr.row_shift, (r1 - 1) >> gr.row_shift, c0 >> gr.col_shift, (c1 - 1) >> gr.col_shift, false};
    const std::uint64_t rows = r.rb1 - r.rb0 + 1, cols = r.cb1 - r.cb0 + 1;
    if (rows > max_cells || cols > max_cells || rows * cols > max_cells) r.wide = true;
    return r;
  }

  template <class F>
  static void for_each_cell(std::uint32_t g, const rect& r, F&& f) {
    for (std::uint64_t rb = r.rb0; rb <= r.rb1; ++rb)
      for (std::uint64_t cb = r.cb0; cb <= r.cb1; ++cb)  // any mix will do: equal keys only merge cells
        f((rb * 0x9e3779b97f4a7c15ull) ^ (cb + (std::uint64_t(g) << 56)));
  }

  template <class Moved>
  static void remove_at(std::vector<std::uint32_t>& v, std::uint32_t pos, Moved&& moved) {
    v[pos] = v.back();
    v.pop_back();
    if (pos < v.size()) moved(v[pos], pos);
  }

  std::vector<group> groups_;
  std::vector<placement> placed_;  ///< by id
  std::vector<std::uint32_t> stamp_;  ///< by id: the query that last visited it
  std::uint32_t epoch_ = 0;
  cell_map cells_;
};

}  // namespace trellis::systolic::timing
