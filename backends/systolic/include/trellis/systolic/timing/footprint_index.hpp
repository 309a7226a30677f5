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
#include <array>
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
  /// Cells an access remembers by index; an access over more cells looks them up again when it needs them.
  static constexpr std::uint32_t cached_cells = 8;

  /// Where a footprint lies in the index: its group, its cells and, for up to cached_cells cells, their
  /// indices in the cell map. Computed once per access (prepare) and used by its query and its update.
  struct location {
    std::uint32_t group = 0;
    std::uint32_t cell_count = 0;  ///< cells of the rectangle (0 when wide)
    std::uint64_t rb0 = 0, rb1 = 0, cb0 = 0, cb1 = 0;  ///< inclusive row and column block ranges
    bool wide = true;
    bool cached = false;  ///< cells holds the indices of all cell_count cells
    std::array<std::uint32_t, cached_cells> cells{};

    bool same_cells(const location& o) const noexcept {
      return group == o.group && wide == o.wide && rb0 == o.rb0 && rb1 == o.rb1 && cb0 == o.cb0 && cb1 == o.cb1;
    }
  };

  /// The location of f, creating its group and cells if they are new (f is about to be recorded).
  location prepare(const footprint& f) {
    location l;
    std::uint32_t g = find_group(f);
    if (g == no_group) g = add_group(f);
    l.group = g;
    set_rect(groups_[g], f, l);
    if (!l.wide && l.cell_count <= cached_cells) {
      std::uint32_t k = 0;
      for_each_key(g, l, [&](std::uint64_t key) { l.cells[k++] = cells_.index(key); });
      l.cached = true;
    }
    return l;
  }

  void insert(std::uint32_t id, const footprint& f) { insert(id, f, prepare(f)); }

  void insert(std::uint32_t id, const footprint& f, const location& l) {
    group& gr = groups_[l.group];
    if (id >= placed_.size()) {
      placed_.resize(id + 1);
      stamp_.resize(id + 1, 0);
    }
    placement& p = placed_[id];
    p.where = l;
    p.live_pos = std::uint32_t(gr.live.size());
    gr.live.push_back(id);
    if (l.wide) {
      p.wide_pos = std::uint32_t(gr.wide.size());
      gr.wide.push_back(id);
    } else if (l.cached) {
      for (std::uint32_t k = 0; k < l.cell_count; ++k) cells_[l.cells[k]].push_back(id);
    } else {
      for_each_key(l.group, l, [&](std::uint64_t key) { cells_.at(key).push_back(id); });
    }
    widen(gr, f);
  }

  /// Entry `id` now holds f, whose location is l (the same cells as before): nothing moves.
  void replace(std::uint32_t id, const footprint& f, const location& l) noexcept {
    (void)id;
    widen(groups_[l.group], f);
  }

  /// The location entry `id` was inserted with.
  const location& location_of(std::uint32_t id) const noexcept { return placed_[id].where; }

  void erase(std::uint32_t id) {
    const placement& p = placed_[id];
    group& gr = groups_[p.where.group];
    remove_at(gr.live, p.live_pos, [&](std::uint32_t moved, std::uint32_t pos) { placed_[moved].live_pos = pos; });
    if (p.where.wide) {
      remove_at(gr.wide, p.wide_pos, [&](std::uint32_t moved, std::uint32_t pos) { placed_[moved].wide_pos = pos; });
      return;
    }
    for_each_cell(p.where, [&](cell_map::list& list) { list.remove(id); });
  }

  /// Calls visit(id) once for every footprint that may overlap f (and for some that do not).
  template <class Visit>
  void candidates(const footprint& f, Visit&& visit) {
    const std::uint32_t g = find_group(f);
    if (g == no_group) {
      candidates_elsewhere(f, g, next_epoch(), visit);
      return;
    }
    location l;
    l.group = g;
    set_rect(groups_[g], f, l);
    if (!l.wide && l.cell_count <= cached_cells) {
      std::uint32_t k = 0;
      bool all = true;
      for_each_key(g, l, [&](std::uint64_t key) {
        const std::uint32_t c = cells_.find(key);
        all = all && c != cell_map::none;
        l.cells[k++] = c;
      });
      l.cached = all;  // otherwise the cells are looked up (and the missing ones skipped) one by one
    }
    candidates(f, l, visit);
  }

  /// The same, for a footprint whose location prepare() gave.
  template <class Visit>
  void candidates(const footprint& f, const location& l, Visit&& visit) {
    const group& gr = groups_[l.group];
    if (l.wide) {
      const std::uint32_t epoch = next_epoch();
      for (std::uint32_t id : gr.live) stamp_[id] = epoch, visit(id);
      candidates_elsewhere(f, l.group, epoch, visit);
      return;
    }
    if (l.cached && l.cell_count == 1 && gr.wide.empty() && !(f.space == memory_space::hbm && groups_.size() > 1)) {
      for (std::uint32_t id : cells_[l.cells[0]]) visit(id);  // one cell and nothing else: no duplicates
      return;
    }
    const std::uint32_t epoch = next_epoch();
    auto once = [&](std::uint32_t id) {
      if (stamp_[id] == epoch) return;
      stamp_[id] = epoch;
      visit(id);
    };
    for_each_cell(l, [&](const cell_map::list& list) {
      for (std::uint32_t id : list) once(id);
    });
    for (std::uint32_t id : gr.wide) once(id);
    candidates_elsewhere(f, l.group, epoch, visit);
  }

 private:
  static constexpr std::uint32_t no_group = ~std::uint32_t{0};

  struct group {
    memory_space space;
    std::int64_t stride;       ///< HBM row stride (0: single segments); 0 on chip
    unsigned row_shift, col_shift;  ///< cell = 2^row_shift rows × 2^col_shift bytes
    std::uint64_t lo = ~std::uint64_t{0}, hi = 0;  ///< HBM: union of the envelopes ever inserted
    std::vector<std::uint32_t> live, wide;
  };
  struct placement {
    location where;
    std::uint32_t live_pos = 0, wide_pos = 0;
  };

  std::uint32_t next_epoch() {
    if (++epoch_ == 0) {  // the stamps wrapped: forget them all
      std::fill(stamp_.begin(), stamp_.end(), 0);
      epoch_ = 1;
    }
    return epoch_;
  }

  static void widen(group& gr, const footprint& f) noexcept {
    if (f.space == memory_space::hbm) {
      gr.lo = f.b0 < gr.lo ? f.b0 : gr.lo;
      gr.hi = f.b1 > gr.hi ? f.b1 : gr.hi;
    }
  }

  /// Footprints of other HBM groups whose envelope union meets f's envelope (see the file comment).
  template <class Visit>
  void candidates_elsewhere(const footprint& f, std::uint32_t g, std::uint32_t epoch, Visit&& visit) {
    if (f.space != memory_space::hbm) return;
    for (std::uint32_t o = 0; o < groups_.size(); ++o) {
      const group& gr = groups_[o];
      if (o == g || gr.space != memory_space::hbm || !(gr.lo < f.b1 && f.b0 < gr.hi)) continue;
      for (std::uint32_t id : gr.live)
        if (stamp_[id] != epoch) stamp_[id] = epoch, visit(id);
    }
  }

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

  /// The cells of f in its group's grid: every byte of f lies in one of them (wide: too many, or unknown).
  static void set_rect(const group& gr, const footprint& f, location& l) noexcept {
    l.wide = true;
    l.cell_count = 0;
    std::uint64_t r0 = 0, r1 = 1, c0 = f.b0, c1 = f.b1;
    if (f.space != memory_space::hbm) {
      r0 = f.p0;
      r1 = f.p1;
    } else if (gr.stride > 0) {
      if (f.span <= 0 || f.rows <= 0) return;
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
      return;
    }
    if (r0 >= r1 || c0 >= c1) return;
    l.rb0 = r0 >> gr.row_shift;
    l.rb1 = (r1 - 1) >> gr.row_shift;
    l.cb0 = c0 >> gr.col_shift;
    l.cb1 = (c1 - 1) >> gr.col_shift;
    const std::uint64_t rows = l.rb1 - l.rb0 + 1, cols = l.cb1 - l.cb0 + 1;
    if (rows > max_cells || cols > max_cells || rows * cols > max_cells) return;
    l.wide = false;
    l.cell_count = std::uint32_t(rows * cols);
  }

  template <class F>
  static void for_each_key(std::uint32_t g, const location& l, F&& f) {
    for (std::uint64_t rb = l.rb0; rb <= l.rb1; ++rb)
      for (std::uint64_t cb = l.cb0; cb <= l.cb1; ++cb)  // any mix will do: equal keys only merge cells
        f((rb * 0x9e3779b97f4a7c15ull) ^ (cb + (std::uint64_t(g) << 56)));
  }

  /// Calls f(list) for every existing cell of a non-wide location: by cached index, or by key.
  template <class F>
  void for_each_cell(const location& l, F&& f) {
    if (l.cached) {
      for (std::uint32_t k = 0; k < l.cell_count; ++k) f(cells_[l.cells[k]]);
      return;
    }
    for_each_key(l.group, l, [&](std::uint64_t key) {
      const std::uint32_t c = cells_.find(key);
      if (c != cell_map::none) f(cells_[c]);
    });
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
