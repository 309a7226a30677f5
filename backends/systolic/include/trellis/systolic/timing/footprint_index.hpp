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
      return group == o.group && wide == o.wide && (wide || (rb0 == o.rb0 && rb1 == o.rb1 && cb0 == o.cb0 && cb1 == o.cb1));
    }
  };

  /// Which entries a query wants: cell lists tag each id with whether its entry is a write, so that a
  /// query can pass over the others without looking at them (the visitor still applies its own test).
  enum class wanted : std::uint8_t { all, writes, reads };
  static constexpr std::uint32_t write_tag = std::uint32_t{1} << 31;

  /// The candidates of one access, collected once (collect()) for its query and reused for its update
  /// when none of its cells changed in between (unchanged()).
  struct candidate_set {
    static constexpr std::uint32_t capacity = 32;
    bool valid = false;             ///< ids holds every candidate (tagged); false: walk the index instead
    std::uint32_t count = 0;
    std::uint64_t layout = 0;       ///< the index's layout_ when collected
    std::array<std::uint32_t, capacity> ids;
    std::array<std::uint32_t, cached_cells> versions;  ///< of the location's cells when collected
  };

  /// Collects the candidates of f at l (prepare(f, l)) into s, when they come from l's cells only and fit.
  void collect(const footprint& f, const location& l, candidate_set& s) {
    s.valid = false;
    s.count = 0;
    s.layout = layout_;
    if (l.wide || !l.cached || !groups_[l.group].wide.empty() || elsewhere(f, l.group)) return;
    if (l.cell_count == 1) {
      const cell_map::list& list = cells_[l.cells[0]];
      if (list.size() > candidate_set::capacity) return;
      for (std::uint32_t tagged : list) s.ids[s.count++] = tagged;
      s.versions[0] = list.version();
      s.valid = true;
      return;
    }
    const std::uint32_t epoch = next_epoch();
    for (std::uint32_t k = 0; k < l.cell_count; ++k) {
      const cell_map::list& list = cells_[l.cells[k]];
      s.versions[k] = list.version();
      for (std::uint32_t tagged : list) {
        const std::uint32_t id = tagged & ~write_tag;
        if (stamp_[id] == epoch) continue;
        stamp_[id] = epoch;
        if (s.count == candidate_set::capacity) return;
        s.ids[s.count++] = tagged;
      }
    }
    s.valid = true;
  }

  /// Whether s (collected for l) still holds the candidates: none of l's cells changed, and no wide
  /// entry came or went and no HBM group's envelope grew (layout_), so collect()'s conditions still hold.
  bool unchanged(const footprint& f, const location& l, const candidate_set& s) const noexcept {
    (void)f;
    if (!s.valid || s.layout != layout_) return false;
    for (std::uint32_t k = 0; k < l.cell_count; ++k)
      if (cells_[l.cells[k]].version() != s.versions[k]) return false;
    return true;
  }

  /// Sets l to the location of f, creating its group and cells if they are new (f is about to be recorded).
  void prepare(const footprint& f, location& l) {
    std::uint32_t g = find_group(f);
    if (g == no_group) g = add_group(f);
    l.group = g;
    l.cached = false;
    set_rect(groups_[g], f, l);
    if (!l.wide && l.cell_count <= cached_cells) {
      const group& gr = groups_[g];
      if (gr.dense_base != cell_map::none && l.rb1 == 0 && l.cb1 < dense_columns) {  // on chip: consecutive cells
        for (std::uint32_t k = 0; k < l.cell_count; ++k) l.cells[k] = gr.dense_base + std::uint32_t(l.cb0) + k;
      } else {
        std::uint32_t k = 0;
        for_each_block(l, [&](std::uint64_t rb, std::uint64_t cb) { l.cells[k++] = cell_index(g, rb, cb, true); });
      }
      l.cached = true;
    }
  }

  /// Adds entry `id` (a write or not) holding f at l (prepare(f, l)).
  void insert(std::uint32_t id, const footprint& f, const location& l, bool write) {
    group& gr = groups_[l.group];
    if (id >= placed_.size()) {
      placed_.resize(id + 1);
      stamp_.resize(id + 1, 0);
    }
    placement& p = placed_[id];
    p.where = l;
    p.alive = true;
    const std::uint32_t tagged = write ? id | write_tag : id;
    if (l.wide) {
      p.wide_pos = std::uint32_t(gr.wide.size());
      gr.wide.push_back(id);
      ++layout_;
    } else if (l.cached) {
      for (std::uint32_t k = 0; k < l.cell_count; ++k) cells_[l.cells[k]].push_back(tagged);
    } else {
      for_each_block(l, [&](std::uint64_t rb, std::uint64_t cb) { cells_[cell_index(l.group, rb, cb, true)].push_back(tagged); });
    }
    widen(gr, f);
  }

  /// Entry `id`, a write or not before, now holds f (a write or not), whose location l has the same cells.
  void replace(std::uint32_t id, const footprint& f, const location& l, bool was_write, bool write) {
    widen(groups_[l.group], f);
    if (was_write == write || l.wide) return;
    for_each_cell(l, [&](cell_map::list& list) { list.retag(id, write ? id | write_tag : id); });
  }

  /// The location entry `id` was inserted with.
  const location& location_of(std::uint32_t id) const noexcept { return placed_[id].where; }

  void erase(std::uint32_t id) {
    placement& p = placed_[id];
    group& gr = groups_[p.where.group];
    p.alive = false;
    if (p.where.wide) {
      remove_at(gr.wide, p.wide_pos, [&](std::uint32_t moved, std::uint32_t pos) { placed_[moved].wide_pos = pos; });
      ++layout_;
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
      for_each_block(l, [&](std::uint64_t rb, std::uint64_t cb) {
        const std::uint32_t c = cell_index(g, rb, cb, false);
        all = all && c != cell_map::none;
        l.cells[k++] = c;
      });
      l.cached = all;  // otherwise the cells are looked up (and the missing ones skipped) one by one
    }
    candidates(f, l, wanted::all, visit);
  }

  /// The same, for a footprint whose location prepare() gave; may skip the entries `want` excludes.
  template <class Visit>
  void candidates(const footprint& f, const location& l, wanted want, Visit&& visit) {
    const group& gr = groups_[l.group];
    if (l.wide) {
      const std::uint32_t epoch = next_epoch();
      for (std::uint32_t id = 0; id < placed_.size(); ++id)  // a wide access is rare: scan all entries
        if (placed_[id].alive && placed_[id].where.group == l.group) stamp_[id] = epoch, visit(id);
      candidates_elsewhere(f, l.group, epoch, visit);
      return;
    }
    // Tagged ids: skip writes (bit set) for reads, skip reads for writes.
    const std::uint32_t skip_if = want == wanted::writes ? 0 : write_tag;
    const bool filter = want != wanted::all;
    if (l.cached && l.cell_count == 1 && gr.wide.empty() && !elsewhere(f, l.group)) {
      for (std::uint32_t tagged : cells_[l.cells[0]])  // one cell and nothing else: no duplicates
        if (!filter || (tagged & write_tag) != skip_if) visit(tagged & ~write_tag);
      return;
    }
    const std::uint32_t epoch = next_epoch();
    auto once = [&](std::uint32_t id) {
      if (stamp_[id] == epoch) return;
      stamp_[id] = epoch;
      visit(id);
    };
    for_each_cell(l, [&](const cell_map::list& list) {
      for (std::uint32_t tagged : list)
        if (!filter || (tagged & write_tag) != skip_if) once(tagged & ~write_tag);
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
    int stride_shift;          ///< log2(stride) when the stride is a power of two, else -1
    std::uint64_t row_bias, col_bias;  ///< grid offset: cell (rb, cb) holds rows with (row + row_bias) >> row_shift = rb, ...
    std::uint32_t dense_base;  ///< on chip: cells (0, cb < dense_columns) are dense_base + cb, without hashing
    std::uint64_t lo = ~std::uint64_t{0}, hi = 0;  ///< HBM: union of the envelopes ever inserted
    std::vector<std::uint32_t> wide;
  };
  struct placement {
    location where;
    std::uint32_t wide_pos = 0;
    bool alive = false;
  };

  std::uint32_t next_epoch() {
    if (++epoch_ == 0) {  // the stamps wrapped: forget them all
      std::fill(stamp_.begin(), stamp_.end(), 0);
      epoch_ = 1;
    }
    return epoch_;
  }

  void widen(group& gr, const footprint& f) noexcept {
    if (f.space != memory_space::hbm || (gr.lo <= f.b0 && f.b1 <= gr.hi)) return;
    gr.lo = f.b0 < gr.lo ? f.b0 : gr.lo;
    gr.hi = f.b1 > gr.hi ? f.b1 : gr.hi;
    ++layout_;
  }

  /// Whether some other HBM group's envelope union meets f's envelope.
  bool elsewhere(const footprint& f, std::uint32_t g) const noexcept {
    if (f.space != memory_space::hbm) return false;
    for (std::uint32_t o = 0; o < groups_.size(); ++o) {
      const group& gr = groups_[o];
      if (o != g && gr.space == memory_space::hbm && gr.lo < f.b1 && f.b0 < gr.hi) return true;
    }
    return false;
  }

  /// Footprints of other HBM groups whose envelope union meets f's envelope (see the file comment).
  template <class Visit>
  void candidates_elsewhere(const footprint& f, std::uint32_t g, std::uint32_t epoch, Visit&& visit) {
    if (!elsewhere(f, g)) return;
    for (std::uint32_t id = 0; id < placed_.size(); ++id) {  // rare (mixed row strides over one tensor): scan all entries
      const placement& p = placed_[id];
      if (!p.alive || p.where.group == g || stamp_[id] == epoch) continue;
      const group& gr = groups_[p.where.group];
      if (gr.space != memory_space::hbm || !(gr.lo < f.b1 && f.b0 < gr.hi)) continue;
      stamp_[id] = epoch;
      visit(id);
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
  /// hold many tiles. On chip: all 128 partitions × 512 bytes (SBUF), about the smallest tile row kernels
  /// use, or × 2 KiB (PSUM), a bank.
  ///
  /// In HBM the grid is offset so that the first footprint starts a cell: a kernel that walks a tensor
  /// in tiles of one shape then puts each tile in as few cells as possible (any offset is correct).
  /// On chip, the first row of cells is an array (dense_columns cells, no hashing): memories are small.
  std::uint32_t add_group(const footprint& f) {
    const std::uint32_t g = std::uint32_t(groups_.size());
    group gr{f.space, stride_key(f), 7, 9, -1, 0, 0, cell_map::none, ~std::uint64_t{0}, 0, {}};
    if (gr.stride > 0 && (gr.stride & (gr.stride - 1)) == 0) gr.stride_shift = int(floor_log2(std::uint64_t(gr.stride)));
    if (f.space == memory_space::hbm) {
      const std::uint64_t span = f.span > 0 ? std::uint64_t(f.span) : 1;
      gr.row_shift = gr.stride > 0 ? clamp(floor_log2(std::uint64_t(f.rows > 0 ? f.rows : 1)), 0, 7) : 0;
      gr.col_shift = clamp(floor_log2(gr.stride > 0 && span > std::uint64_t(gr.stride) ? std::uint64_t(gr.stride) : span), 6, 12);
      location first;
      set_rect(gr, f, first, true);  // the first footprint's first row and column, unbiased
      const std::uint64_t rows = std::uint64_t{1} << gr.row_shift, cols = std::uint64_t{1} << gr.col_shift;
      gr.row_bias = (rows - (first.rb0 & (rows - 1))) & (rows - 1);
      gr.col_bias = (cols - (first.cb0 & (cols - 1))) & (cols - 1);
    } else {
      if (f.space == memory_space::psum) gr.col_shift = 11;  // a PSUM bank (2 KiB per partition): tiles are banks
      gr.dense_base = cells_.add_unkeyed(dense_columns);
    }
    groups_.push_back(std::move(gr));
    ++layout_;
    return g;
  }

  static constexpr std::uint64_t dense_columns = 512;  ///< on chip: 512 × 512 bytes per partition

  /// The index of cell (rb, cb) of group g; created if `create`, else none when it does not exist.
  [[gnu::always_inline]] std::uint32_t cell_index(std::uint32_t g, std::uint64_t rb, std::uint64_t cb, bool create) {
    const group& gr = groups_[g];
    if (gr.dense_base != cell_map::none && rb == 0 && cb < dense_columns) return gr.dense_base + std::uint32_t(cb);
    const std::uint64_t key = (rb * 0x9e3779b97f4a7c15ull) ^ (cb + (std::uint64_t(g) << 56));  // any mix: equal keys only merge cells
    return create ? cells_.index(key) : cells_.find(key);
  }

  /// The cells of f in its group's grid: every byte of f lies in one of them (wide: too many, or unknown).
  /// raw: the first row and column (in rb0, cb0) without the group's offset, for add_group.
  static void set_rect(const group& gr, const footprint& f, location& l, bool raw = false) noexcept {
    l.wide = true;
    l.cell_count = 0;
    std::uint64_t r0 = 0, r1 = 1, c0 = f.b0, c1 = f.b1;
    if (f.space != memory_space::hbm) {
      r0 = f.p0;
      r1 = f.p1;
    } else if (gr.stride > 0) {
      if (f.span <= 0 || f.rows <= 0) return;
      const auto stride = std::uint64_t(gr.stride), span = std::uint64_t(f.span), a = std::uint64_t(f.address);
      r0 = gr.stride_shift >= 0 ? a >> gr.stride_shift : a / stride;
      const std::uint64_t c = gr.stride_shift >= 0 ? a & (stride - 1) : a % stride;
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
    if (raw) {
      l.rb0 = r0;
      l.cb0 = c0;
      return;
    }
    l.rb0 = (r0 + gr.row_bias) >> gr.row_shift;
    l.rb1 = (r1 - 1 + gr.row_bias) >> gr.row_shift;
    l.cb0 = (c0 + gr.col_bias) >> gr.col_shift;
    l.cb1 = (c1 - 1 + gr.col_bias) >> gr.col_shift;
    const std::uint64_t rows = l.rb1 - l.rb0 + 1, cols = l.cb1 - l.cb0 + 1;
    if (rows > max_cells || cols > max_cells || rows * cols > max_cells) return;
    l.wide = false;
    l.cell_count = std::uint32_t(rows * cols);
  }

  template <class F>
  static void for_each_block(const location& l, F&& f) {
    for (std::uint64_t rb = l.rb0; rb <= l.rb1; ++rb)
      for (std::uint64_t cb = l.cb0; cb <= l.cb1; ++cb) f(rb, cb);
  }

  /// Calls f(list) for every existing cell of a non-wide location: by cached index, or by key.
  template <class F>
  void for_each_cell(const location& l, F&& f) {
    if (l.cached) {
      for (std::uint32_t k = 0; k < l.cell_count; ++k) f(cells_[l.cells[k]]);
      return;
    }
    for_each_block(l, [&](std::uint64_t rb, std::uint64_t cb) {
      const std::uint32_t c = cell_index(l.group, rb, cb, false);
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
  std::uint64_t layout_ = 0;  ///< changes when a wide entry comes or goes or an HBM group's envelope grows
  cell_map cells_;
};

}  // namespace trellis::systolic::timing
