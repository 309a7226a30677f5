#pragma once
// access_tracker: for every memory region an instruction touched, when it may next be read or written.
// The scheduler asks it for the RAW (last writer), WAR (readers) and WAW (writer) times of an operand.
//
// Each recorded access is an entry (footprint.hpp says what bytes it covers). A new access that fully
// covers older entries it dominates removes them, so the entries of a buffer that is rewritten or reread
// stay few; entries of distinct regions (every tile of a big HBM tensor) stay, and footprint_index finds
// the few a new access may overlap without scanning the others. The answer is defined over the entries in
// the order they were recorded (the first of equally late constraints names the stall cause), so the
// index is only a way to find them: every time and cause is what a scan of all entries would give.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "trellis/systolic/records.hpp"
#include "trellis/systolic/timing/footprint.hpp"
#include "trellis/systolic/timing/footprint_index.hpp"

namespace trellis::systolic::timing {

/// Why an instruction could not start when its engine was free.
enum class stall_cause : std::uint8_t { none, dma, engine, buffer, port };
inline constexpr std::size_t stall_cause_count = 5;

constexpr const char* to_string(stall_cause c) noexcept {
  switch (c) {
    case stall_cause::none: return "none";
    case stall_cause::dma: return "dma";        // waiting for a DMA transfer's data (RAW)
    case stall_cause::engine: return "engine";  // waiting for another compute engine's result (RAW)
    case stall_cause::buffer: return "buffer";  // waiting to overwrite a region still read or written (WAR/WAW)
    case stall_cause::port: return "port";      // v2: a shared SBUF/PSUM port held by the partner engine
  }
  return "?";
}

/// A time constraint and its cause.
struct constraint {
  double time_ns = 0;
  stall_cause cause = stall_cause::none;
  bool serial = false;  ///< a RAW on the previous instruction of the same stream
  void raise(double t, stall_cause c) noexcept {
    if (t > time_ns) {
      time_ns = t;
      cause = c;
    }
  }
};

class access_tracker {
 public:
  using location = footprint_index::location;

  /// Where f lies in the index; an access computes this once for its ready() and its record().
  void locate(const footprint& f, location& where) { index_.prepare(f, where); }

  /// When an access by `stream` (whose last instruction was `previous`) may start.
  constraint ready(const footprint& f, bool write, std::uint32_t stream, std::uint64_t previous) {
    constraint c;
    std::uint64_t first = 0;
    index_.candidates(f, [&](std::uint32_t id) { consider(id, f, write, stream, previous, c, first); });
    return c;
  }
  using candidate_set = footprint_index::candidate_set;

  /// The same, for f at `where` (locate(f)); collects the candidates into `seen` for record().
  constraint ready(const footprint& f, const location& where, bool write, std::uint32_t stream, std::uint64_t previous,
                   candidate_set& seen) {
    constraint c;
    std::uint64_t first = 0;
    index_.collect(f, where, seen);
    if (seen.valid) {
      for (std::uint32_t k = 0; k < seen.count; ++k) {
        const std::uint32_t tagged = seen.ids[k];
        if (write || (tagged & footprint_index::write_tag)) consider(tagged & ~footprint_index::write_tag, f, write, stream, previous, c, first);
      }
      return c;
    }
    const auto want = write ? footprint_index::wanted::all : footprint_index::wanted::writes;  // reads ignore reads
    index_.candidates(f, where, want, [&](std::uint32_t id) { consider(id, f, write, stream, previous, c, first); });
    return c;
  }

  /// Records an access: others may use the region after other_ns, the same stream after same_ns.
  void record(const footprint& f, bool write, std::uint32_t stream, bool from_dma, std::uint64_t instruction,
              double other_ns, double same_ns) {
    location where;
    locate(f, where);
    candidate_set none;
    record(f, where, none, write, stream, from_dma, instruction, other_ns, same_ns);
  }
  /// The same, for f at `where` (locate(f)) whose candidates ready() collected into `seen` (reused when
  /// its cells did not change since).
  [[gnu::always_inline]] inline void record(const footprint& f, const location& where, const candidate_set& seen, bool write,
                                            std::uint32_t stream, bool from_dma, std::uint64_t instruction, double other_ns,
                                            double same_ns) {
    // An entry fully inside a new write is dominated by it (the write waited for it and ends later); a read
    // entry inside a new read that frees the region no earlier is dominated for every later writer.
    // A dominated entry in the same cells is overwritten in place (entry ids are not observable: the
    // answers depend on the entries' sequence numbers only); the others leave the index.
    dominated_.clear();
    std::uint32_t id = no_entry;
    auto dominates = [&](std::uint32_t d) __attribute__((always_inline)) {
      const entry& e = entries_[d];
      if (!f.covers(e.where) || !(write || (!e.write && e.other_ns <= other_ns && e.same_ns <= same_ns))) return;
      if (id == no_entry && (e.where.same_as(f) || index_.location_of(d).same_cells(where))) id = d;
      else dominated_.push_back(d);
    };
    if (index_.unchanged(f, where, seen)) {
      const std::uint32_t skip = write ? 0 : footprint_index::write_tag;  // a read dominates reads only
      for (std::uint32_t k = 0; k < seen.count; ++k) {
        const std::uint32_t tagged = seen.ids[k];
        if (!(tagged & skip)) dominates(tagged & ~footprint_index::write_tag);
      }
    } else {
      index_.candidates(f, where, write ? footprint_index::wanted::all : footprint_index::wanted::reads, dominates);
    }
    for (std::uint32_t d : dominated_) {
      index_.erase(d);
      free_.push_back(d);
    }
    if (id != no_entry) {
      const bool was_write = entries_[id].write;
      set(entries_[id], f, write, from_dma, stream, instruction, other_ns, same_ns);
      index_.replace(id, f, where, was_write, write);
      return;
    }
    if (free_.empty()) {
      id = std::uint32_t(entries_.size());
      entries_.emplace_back();
    } else {
      id = free_.back();
      free_.pop_back();
    }
    set(entries_[id], f, write, from_dma, stream, instruction, other_ns, same_ns);
    index_.insert(id, f, where, write);
  }

  /// Entries held (recorded and not yet dominated).
  std::size_t size() const noexcept { return entries_.size() - free_.size(); }

 private:
  static constexpr std::uint32_t no_entry = ~std::uint32_t{0};

  struct entry {
    footprint where;
    bool write = false;
    bool from_dma = false;
    std::uint32_t stream = 0;
    std::uint64_t instruction = 0;
    double other_ns = 0, same_ns = 0;
    std::uint64_t sequence = 0;  ///< recording order
  };

  /// Fills an entry field by field (a whole-struct copy from a temporary stalls on store forwarding).
  void set(entry& e, const footprint& f, bool write, bool from_dma, std::uint32_t stream, std::uint64_t instruction,
           double other_ns, double same_ns) noexcept {
    e.where = f;
    e.write = write;
    e.from_dma = from_dma;
    e.stream = stream;
    e.instruction = instruction;
    e.other_ns = other_ns;
    e.same_ns = same_ns;
    e.sequence = next_sequence_++;
  }

  /// Entry `id`'s constraint on the access: the latest wins, the earliest recorded among equally late ones.
  void consider(std::uint32_t id, const footprint& f, bool write, std::uint32_t stream, std::uint64_t previous, constraint& c,
                std::uint64_t& first) const noexcept {
    const entry& e = entries_[id];
    if (!(e.write || write) || !e.where.overlaps(f)) return;
    const double t = e.stream == stream ? e.same_ns : e.other_ns;
    if (t > c.time_ns || (t == c.time_ns && t > 0 && e.sequence < first)) {
      c.time_ns = t;
      c.cause = write ? stall_cause::buffer : e.from_dma ? stall_cause::dma : stall_cause::engine;
      first = e.sequence;
    }
    if (!write && e.stream == stream && e.instruction == previous) c.serial = true;
  }

  std::vector<entry> entries_;         ///< by id; ids on free_ are unused
  std::vector<std::uint32_t> free_;
  std::vector<std::uint32_t> dominated_;  ///< scratch for record()
  footprint_index index_;
  std::uint64_t next_sequence_ = 0;
};

}  // namespace trellis::systolic::timing
