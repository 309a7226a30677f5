#pragma once
// dma_engine_pool: the 16 DMA engines of a core and the rule that hands them packets (dma_model.hpp):
// each packet (or group of packets) goes to the engine that frees first, the lowest-numbered on ties,
// and holds it from max(transfer start, engine free) for its duration.
//
// Finding "the engine that frees first" by scanning all engines per packet was most of the simulator's
// time (a 128-partition tile is 128 packets). The engines are kept instead in a ring sorted by
// (free time, index): the head frees first, and the engine it hands back, now busy past every other,
// almost always belongs at the tail — which in a full ring is the slot the head just left. When it does
// not (engines idle at the transfer's start all end together, and ties go by index), it is inserted in
// order. Every packet still adds its own duration to its engine's time, so the times are bit for bit
// those of the scan.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace trellis::systolic::timing {

/// The part of a transfer one DMA engine carried: [start_ns, end_ns), contiguous on that engine.
struct dma_span {
  std::uint16_t engine = 0;
  std::uint32_t packets = 0;
  double start_ns = 0, end_ns = 0;
};

class dma_engine_pool {
 public:
  explicit dma_engine_pool(std::size_t engines)
      : free_(engines, 0.0), span_of_(engines, none), current_(engines), packets_(engines, 0), busy_(engines, 0.0) {
    ring_.reserve(engines);
    for (std::size_t e = 0; e < engines; ++e) ring_.push_back({0.0, std::uint16_t(e)});
  }

  /// When each engine is free, by engine index.
  const std::vector<double>& free_at() const noexcept { return free_; }

  /// Hands `packets` packets, `group` at a time, each holding its engine `per_packet` ns, to the engines,
  /// none starting before `start_ns`; appends one span per engine used. Returns when the last one ends
  /// (start_ns when there are none).
  double assign(double start_ns, std::size_t packets, std::size_t group, double per_packet, std::vector<dma_span>& spans) {
    const double end = assign_jobs(start_ns, packets, group, per_packet);
    spans.insert(spans.end(), current_.begin(), current_.begin() + std::ptrdiff_t(used_));
    finish_transfer();
    return end;
  }

  /// The same without recording the spans (dma_model::replay() can give them later): returns when the
  /// last packet ends, and sets `span_count` to the number of spans assign() would have appended.
  double assign(double start_ns, std::size_t packets, std::size_t group, double per_packet, std::uint32_t& span_count) {
    double end = start_ns;
    if (whole_rounds(start_ns, packets, group, per_packet, end)) {
      span_count = std::uint32_t(ring_.size());
      return end;
    }
    end = assign_jobs(start_ns, packets, group, per_packet);
    span_count = std::uint32_t(used_);
    finish_transfer();
    return end;
  }

  /// Per engine, the packets it carried and the time it was held (Σ end − start of its spans, in
  /// transfer order: the sums a report makes from the spans).
  const std::vector<std::uint64_t>& packets_carried() const noexcept { return packets_; }
  const std::vector<double>& busy_ns() const noexcept { return busy_; }

 private:
  static constexpr std::uint32_t none = ~std::uint32_t{0};

  /// The common case, without spans: all engines free together, and the transfer is whole rounds of one
  /// job per engine that keep them together (the all-equal case of assign_rounds, over all the jobs).
  /// Does nothing and returns false when that is not so.
  bool whole_rounds(double start_ns, std::size_t packets, std::size_t group, double per_packet, double& end) noexcept {
    const std::size_t size = ring_.size();
    if (group == 0 || packets % group != 0 || packets == 0) return false;
    const std::size_t jobs = packets / group;
    if (jobs % size != 0) return false;
    const std::size_t tail = head_ == 0 ? size - 1 : head_ - 1;
    if (ring_[head_].free != ring_[tail].free) return false;
    const double duration = per_packet * double(group);
    const std::size_t rounds = jobs / size;
    const double f0 = ring_[head_].free;
    const double s0 = start_ns > f0 ? start_ns : f0;  // the first round starts at max(start, free) ...
    double f = s0 + duration;
    if (!(f > f0)) return false;
    for (std::size_t r = 1; r < rounds; ++r) {  // ... the others when the previous ends (> s0 >= start_ns)
      const double next = f + duration;
      if (!(next > f)) return false;
      f = next;
    }
    const std::uint64_t carried = std::uint64_t(rounds) * group;
    const double busy = f - s0;
    for (std::size_t i = 0; i < size; ++i) {
      ring_[i].free = f;
      free_[i] = f;
      packets_[i] += carried;
      busy_[i] += busy;
    }
    end = end > f ? end : f;
    return true;
  }

  /// Assigns the jobs of a transfer; its spans are current_[0, used_).
  double assign_jobs(double start_ns, std::size_t packets, std::size_t group, double per_packet) {
    used_ = 0;
    double end = start_ns;
    std::size_t full = group == 0 ? 0 : packets / group;  // jobs of `group` packets, then one of the rest
    const double duration = per_packet * double(group);
    while (full > 0) {
      if (full >= ring_.size()) {
        const std::size_t rounds = assign_rounds(start_ns, full / ring_.size(), duration, std::uint32_t(group), end);
        full -= rounds * ring_.size();
        if (rounds > 0) continue;
      }
      assign_one(start_ns, std::uint32_t(group), duration, end);
      --full;
    }
    if (group != 0 && packets % group != 0) {
      const std::size_t rest = packets % group;
      assign_one(start_ns, std::uint32_t(rest), per_packet * double(rest), end);
    }
    return end;
  }

  /// Adds the transfer's spans to the engines' totals and forgets them.
  void finish_transfer() noexcept {
    for (std::size_t i = 0; i < used_; ++i) {
      const dma_span& sp = current_[i];
      packets_[sp.engine] += sp.packets;
      busy_[sp.engine] += sp.end_ns - sp.start_ns;
      span_of_[sp.engine] = none;
    }
    used_ = 0;
  }
  static constexpr std::size_t max_lanes = 32;  ///< more engines than this: job by job only

  struct slot {
    double free;
    std::uint16_t engine;
    bool before(const slot& o) const noexcept { return free < o.free || (free == o.free && engine < o.engine); }
  };

  /// One job of n packets to the engine that frees first.
  void assign_one(double start_ns, std::uint32_t n, double duration, double& end) {
    const slot head = ring_[head_];
    const double s = start_ns > head.free ? start_ns : head.free;
    const slot moved{s + duration, head.engine};
    place(moved);
    free_[moved.engine] = moved.free;
    end = end > moved.free ? end : moved.free;
    std::uint32_t& k = span_of_[moved.engine];
    if (k == none) {
      k = std::uint32_t(used_++);
      current_[k] = {moved.engine, n, s, moved.free};
    } else {
      dma_span& sp = current_[k];
      sp.packets += n;
      sp.end_ns = moved.free;
    }
  }

  /// Up to max_rounds rounds of one job per engine, while a round is exactly what assign_one would do
  /// engine by engine: every engine's new time sorts after every old time, so the jobs take the engines
  /// in ring order. Each engine's chain of additions is the same; only the bookkeeping is per round, in
  /// plain loops over the engines' times that the compiler vectorises. Returns the rounds done.
  std::size_t assign_rounds(double start_ns, std::size_t max_rounds, double duration, std::uint32_t n, double& end) {
    const std::size_t size = ring_.size();
    if (size > max_lanes) return 0;
    const std::size_t tail = head_ == 0 ? size - 1 : head_ - 1;
    if (ring_[head_].free == ring_[tail].free) {
      // All engines free together (so the ring runs in engine order): every round keeps them so, and the
      // rounds are one chain of additions, shared by all engines.
      const double f0 = ring_[head_].free;
      double f = f0, s0 = 0;
      std::size_t rounds = 0;
      for (; rounds < max_rounds; ++rounds) {
        const double s = start_ns > f ? start_ns : f, next = s + duration;
        if (!(next > f)) break;
        if (rounds == 0) s0 = s;
        f = next;
      }
      if (rounds == 0) return 0;
      for (std::size_t k = 0, i = head_; k < size; ++k, i = i + 1 == size ? 0 : i + 1) {
        const std::uint16_t e = ring_[i].engine;
        ring_[i].free = f;
        free_[e] = f;
        std::uint32_t& at = span_of_[e];
        if (at == none) {
          at = std::uint32_t(used_++);
          current_[at] = {e, std::uint32_t(rounds) * n, s0, f};
        } else {
          current_[at].packets += std::uint32_t(rounds) * n;
          current_[at].end_ns = f;
        }
      }
      end = end > f ? end : f;
      return rounds;
    }
    std::array<double, max_lanes> f, v;
    std::array<std::uint16_t, max_lanes> e;
    for (std::size_t k = 0; k < size; ++k) {
      const slot& sl = ring_[head_ + k < size ? head_ + k : head_ + k - size];
      f[k] = sl.free;
      e[k] = sl.engine;
    }
    std::size_t rounds = 0;
    for (; rounds < max_rounds; ++rounds) {
      const double last_free = f[size - 1];  // the ring is sorted: the latest old time
      const std::uint16_t last_engine = e[size - 1];
      bool in_order = true, sorted = true;  // & and |, not && and ||: branch-free, vectorisable
      for (std::size_t k = 0; k < size; ++k) {
        v[k] = (start_ns > f[k] ? start_ns : f[k]) + duration;
        in_order &= (v[k] > last_free) | ((v[k] == last_free) & (e[k] > last_engine));
      }
      if (!in_order) break;
      for (std::size_t k = 1; k < size; ++k) sorted &= (v[k - 1] < v[k]) | ((v[k - 1] == v[k]) & (e[k - 1] < e[k]));
      if (rounds == 0)  // first jobs of this batch: engines new to the transfer open their spans, in job order
        for (std::size_t k = 0; k < size; ++k) open_span(e[k], start_ns > f[k] ? start_ns : f[k]);
      for (std::size_t k = 0; k < size; ++k) f[k] = v[k];
      if (!sorted) {  // equal new times (engines idle at the start all end together) go by engine index
        std::array<slot, max_lanes> order;
        for (std::size_t k = 0; k < size; ++k) order[k] = {f[k], e[k]};
        std::sort(order.begin(), order.begin() + std::ptrdiff_t(size), [](const slot& x, const slot& y) { return x.before(y); });
        for (std::size_t k = 0; k < size; ++k) f[k] = order[k].free, e[k] = order[k].engine;
      }
    }
    if (rounds == 0) return 0;
    head_ = 0;
    for (std::size_t k = 0; k < size; ++k) {
      ring_[k] = {f[k], e[k]};
      free_[e[k]] = f[k];
      dma_span& sp = current_[span_of_[e[k]]];
      sp.packets += std::uint32_t(rounds) * n;
      sp.end_ns = f[k];
    }
    end = end > f[size - 1] ? end : f[size - 1];
    return rounds;
  }

  /// Opens a span starting at s for the engine, unless it has one in the current transfer.
  void open_span(std::uint16_t engine, double s) noexcept {
    if (span_of_[engine] == none) {
      span_of_[engine] = std::uint32_t(used_++);
      current_[span_of_[engine]] = {engine, 0, s, s};
    }
  }

  /// Replaces the head (the engine just used) by `moved`, keeping the ring sorted.
  void place(const slot& moved) {
    const std::size_t size = ring_.size();
    const std::size_t tail = head_ == 0 ? size - 1 : head_ - 1;
    if (size == 1 || ring_[tail].before(moved)) {  // busy past every other engine: the head slot becomes the tail
      ring_[head_] = moved;
      head_ = head_ + 1 == size ? 0 : head_ + 1;
      return;
    }
    // Otherwise shift the later slots back by one from the head until moved's place (it is not the last).
    std::size_t at = head_;
    for (;;) {
      const std::size_t next = at + 1 == size ? 0 : at + 1;
      if (!ring_[next].before(moved)) break;
      ring_[at] = ring_[next];
      at = next;
    }
    ring_[at] = moved;
  }

  std::vector<double> free_;          ///< by engine
  std::vector<slot> ring_;            ///< sorted by (free, engine) from head_, cyclically
  std::size_t head_ = 0;
  std::vector<std::uint32_t> span_of_;  ///< by engine: its span in current_, or none
  std::vector<dma_span> current_;       ///< the spans of the transfer being assigned, in order of first use
  std::size_t used_ = 0;
  std::vector<std::uint64_t> packets_;  ///< by engine: packets carried
  std::vector<double> busy_;            ///< by engine: Σ span durations
};

}  // namespace trellis::systolic::timing
