#pragma once
// The scheduler (DESIGN.md §4.4): every engine runs its own in-order stream — Tensor, Vector, Scalar,
// GpSimd and each DMA queue — so an instruction is timed the moment the kernel issues it:
//
//   start = max(its stream is free, the writers of what it reads are done (RAW),
//               the readers and writers of what it writes are done (WAR/WAW))
//
// Compute instructions then hold their engine for the cost table's cycles (cost_model.hpp) at the
// engine's clock, plus the static overhead of tiny or serially dependent Vector/Scalar instructions; their
// results are visible to other engines after the ≈ 60-cycle SBUF/PSUM access start (a latency: the next
// instruction of the same engine is pipelined behind it). DMA transfers are timed by dma_model.hpp.
// Optional: v2's shared SBUF/PSUM ports (engine-pair exclusion) and v3/v4 Tensor Engine throttling.
// Nothing here looks at values, so functional and timing-only runs give identical times.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>
#include <vector>

#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/records.hpp"
#include "trellis/systolic/timing/access_tracker.hpp"
#include "trellis/systolic/timing/cost_model.hpp"
#include "trellis/systolic/timing/dma_model.hpp"

namespace trellis::systolic::timing {

struct timing_options {
  bool tensor_throttling = false;  ///< model v3/v4 Tensor Engine power throttling (machines that have it)
};

/// Streams: the four compute engines, then one per DMA queue.
inline constexpr std::uint32_t compute_streams = 4;
inline std::uint32_t stream_of(const instruction_record& r) noexcept {
  return r.unit == engine::dma ? compute_streams + std::uint32_t(r.dma_queue) : std::uint32_t(r.unit);
}

/// The timing of one issued instruction (parallel to core_state::records()).
struct timed_instruction {
  double start_ns = 0;  ///< engine (or first DMA packet) starts
  double end_ns = 0;    ///< engine free again (DMA: all data moved)
  double done_ns = 0;   ///< results visible to other engines (DMA: + fixed latency)
  double cycles = 0;    ///< compute: engine cycles occupied (its own clock); DMA: ns of data movement
  double stall_ns = 0;  ///< start − when the stream was free
  stall_cause cause = stall_cause::none;
  bool static_overhead = false;  ///< paid the tiny/serial Vector/Scalar overhead
  double rate = 1;               ///< Tensor Engine throttling factor (1: full speed)
  std::uint32_t stream = 0;
  std::uint32_t first_span = 0, span_count = 0;  ///< DMA: engine spans in scheduler::spans()
  std::size_t packets = 0, packet_bytes = 0, bytes = 0;  ///< DMA only
};

/// SBUF/PSUM bytes in use, sampled when they change.
struct occupancy_sample {
  double time_ns;
  std::size_t sbuf_bytes, psum_bytes;
};

class scheduler {
 public:
  scheduler(const machine_spec& spec, timing_options options)
      : spec_(&spec), options_(options), dma_(spec), stream_free_(compute_streams + spec.dma.queues, 0.0),
        stream_last_(compute_streams + spec.dma.queues, ~std::uint64_t{0}), replay_(spec.dma.engines) {}

  const machine_spec& spec() const noexcept { return *spec_; }
  const std::vector<timed_instruction>& timed() const noexcept { return timed_; }
  /// The DMA engine spans of every transfer (timed_instruction::first_span, span_count). Built on first
  /// use (and extended on later uses) by replaying the transfers on a fresh engine pool: timing keeps no
  /// spans, ≈ 16 per transfer, which were a third of the memory a run writes.
  const std::vector<dma_span>& spans() const {
    std::lock_guard<std::mutex> lock(spans_mutex_);
    for (; replayed_ < timed_.size(); ++replayed_) {
      const timed_instruction& t = timed_[replayed_];
      if (t.stream < compute_streams) continue;
      const dma_jobs jobs = dma_jobs_of(t.packets, t.packet_bytes, *spec_);
      replay_.assign(t.start_ns, t.packets, jobs.group, jobs.per_packet, spans_);
    }
    return spans_;
  }
  /// Per DMA engine: packets carried and time held, as summed from spans() (without building them).
  const std::vector<std::uint64_t>& dma_engine_packets() const noexcept { return dma_.engines().packets_carried(); }
  const std::vector<double>& dma_engine_busy_ns() const noexcept { return dma_.engines().busy_ns(); }
  const std::vector<occupancy_sample>& occupancy() const noexcept { return occupancy_; }
  /// When the last result is visible: the kernel's total time.
  double total_ns() const noexcept { return total_ns_; }

  scheduler(const scheduler&) = delete;
  scheduler& operator=(const scheduler&) = delete;

  void clear() {
    storage kept = release_storage();
    dma_ = dma_model(*spec_);
    tracker_ = access_tracker();
    std::fill(stream_free_.begin(), stream_free_.end(), 0.0);
    std::fill(stream_last_.begin(), stream_last_.end(), ~std::uint64_t{0});
    for (auto& p : ports_) p.clear();
    te_busy_.clear();
    ramp_start_ns_ = -1;
    stationary_ = {};
    have_stationary_ = false;
    total_ns_ = frontier_ns_ = 0;
    spans_total_ = 0;
    adopt_storage(std::move(kept));
  }

  /// The logs (timed instructions, DMA spans, occupancy samples), emptied, with their capacity: a core
  /// passes them on to the next core (core.hpp) so that a sweep does not page-fault fresh memory in.
  struct storage {
    std::vector<timed_instruction> timed;
    std::vector<dma_span> spans;
    std::vector<occupancy_sample> occupancy;
    std::size_t bytes() const noexcept {
      return timed.capacity() * sizeof(timed_instruction) + spans.capacity() * sizeof(dma_span) +
             occupancy.capacity() * sizeof(occupancy_sample);
    }
  };
  storage release_storage() noexcept {
    replay_ = dma_engine_pool(spec_->dma.engines);
    replayed_ = 0;
    storage s{std::move(timed_), std::move(spans_), std::move(occupancy_)};
    s.timed.clear();
    s.spans.clear();
    s.occupancy.clear();
    timed_.clear();
    spans_.clear();
    occupancy_.clear();
    return s;
  }
  /// Takes over storage's capacity (only while nothing was scheduled).
  void adopt_storage(storage&& s) noexcept {
    if (!timed_.empty() || !spans_.empty() || !occupancy_.empty()) return;
    timed_ = std::move(s.timed);
    spans_ = std::move(s.spans);
    occupancy_ = std::move(s.occupancy);
    timed_.clear();
    spans_.clear();
    occupancy_.clear();
  }

  const timed_instruction& schedule(const instruction_record& r) {
    timed_instruction& t = timed_.emplace_back();  // filled in place: copying a local whole stalls store forwarding
    t.stream = stream_of(r);
    // Dependencies of every operand (an operand both read and written is listed twice).
    constraint c;
    const std::uint64_t previous = stream_last_[t.stream];
    const std::size_t n = r.operands.size();
    if (accesses_.size() < n) accesses_.resize(n);
    access* where = accesses_.data();
    for (std::size_t i = 0; i < n; ++i) where[i].f = footprint::of(r.operands[i]);
    // A read of exactly what an earlier operand of the same instruction writes (an accumulating matmul's
    // PSUM tile) changes no time: its constraint is never later than the write's (which sees every entry
    // the read sees, with times at least as late) and comes after it, so it names no cause; and its entry
    // would never be later than the write's entry (same stream, end_ns <= done_ns), which outlives it.
    // Only its `serial` flag can matter, on Vector/Scalar engines. (A read listed before the write could
    // name the cause of a tie: it is tracked as usual.)
    const bool serial_matters = r.unit == engine::vector || r.unit == engine::scalar;
    for (std::size_t i = 0; i < n; ++i) {
      where[i].redundant = false;
      if (r.operands[i].written) continue;
      for (std::size_t j = 0; j < i; ++j)
        if (r.operands[j].written && where[j].f.same_as(where[i].f)) where[i].redundant = true;
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (where[i].redundant && !serial_matters) continue;
      tracker_.locate(where[i].f, where[i].at);
      const constraint d = tracker_.ready(where[i].f, where[i].at, r.operands[i].written, t.stream, previous, where[i].seen);
      c.raise(d.time_ns, d.cause);
      c.serial = c.serial || d.serial;
    }
    const double free_ns = stream_free_[t.stream];
    double start = std::max(free_ns, c.time_ns);
    stall_cause cause = c.time_ns > free_ns ? c.cause : stall_cause::none;

    if (r.unit == engine::dma) {
      const dma_timing d = dma_.schedule(r, std::size_t(r.dma_queue), c.time_ns);
      t.start_ns = d.start_ns;
      t.end_ns = d.data_end_ns;
      t.done_ns = d.done_ns;
      t.cycles = d.data_end_ns - d.start_ns;
      t.packets = d.packets;
      t.packet_bytes = d.packet_bytes;
      t.bytes = d.bytes;
      t.first_span = std::uint32_t(spans_total_);
      t.span_count = d.span_count;
      spans_total_ += d.span_count;
    } else {
      const double ghz = engine_ghz(*spec_, r.unit);
      engine_cost cost = instruction_cost(r, *spec_);
      double cycles = cost.cycles;
      const bool vs = r.unit == engine::vector || r.unit == engine::scalar;
      if (vs && (cost.tiny || c.serial)) {  // "tiny or serially dependent Vector/Scalar instructions"
        cycles += spec_->access.static_overhead_cycles;
        t.static_overhead = true;
      }
      if (r.unit == engine::tensor) cycles += load_stationary_cycles(r, start > free_ns || previous == ~std::uint64_t{0});
      double rate = 1;
      if (r.unit == engine::tensor && options_.tensor_throttling && spec_->perf.tensor_throttling) rate = throttle(start);
      double duration = cycles / ghz / rate;
      const double port_start = port_slot(r, start, duration);
      if (port_start > start) {
        start = port_start;
        cause = stall_cause::port;
      }
      t.start_ns = start;
      t.end_ns = start + duration;
      t.done_ns = t.end_ns + spec_->access.access_start_cycles / ghz;
      t.cycles = cycles / rate;
      t.rate = rate;
      if (rate != 1 || (r.unit == engine::tensor && options_.tensor_throttling)) te_busy_.push_back({t.start_ns, t.end_ns});
    }
    t.stall_ns = t.start_ns - free_ns > 0 ? t.start_ns - free_ns : 0;
    t.cause = t.stall_ns > 0 ? (cause == stall_cause::none ? c.cause : cause) : stall_cause::none;
    stream_free_[t.stream] = t.end_ns;
    stream_last_[t.stream] = r.index;
    // Record the accesses: reads free the region when the engine is done with it; writes are visible to
    // other streams at done_ns and to the same (in-order, pipelined) stream at end_ns.
    const bool dma = r.unit == engine::dma;
    for (std::size_t i = 0; i < n; ++i) {
      if (where[i].redundant) continue;
      const bool w = r.operands[i].written;
      const double other = w ? t.done_ns : t.end_ns;
      const double same = dma ? other : t.end_ns;
      tracker_.record(where[i].f, where[i].at, where[i].seen, w, t.stream, dma, r.index, other, same);
    }
    total_ns_ = std::max(total_ns_, t.done_ns);
    frontier_ns_ = std::max(frontier_ns_, t.start_ns);
    return t;
  }

  /// Called after each instruction with the bytes in use: a sample is kept when they changed, stamped with
  /// the latest instruction start so far (allocation happens in program order, not in simulated time).
  void sample_occupancy(std::size_t sbuf_bytes, std::size_t psum_bytes) {
    if (!occupancy_.empty() && occupancy_.back().sbuf_bytes == sbuf_bytes && occupancy_.back().psum_bytes == psum_bytes) return;
    occupancy_.push_back({frontier_ns_, sbuf_bytes, psum_bytes});
  }

 private:
  /// LoadStationary "overlaps the previous matmul"; when the Tensor Engine was idle (nothing to overlap)
  /// and the stationary operand changed, its load — "up to 4× faster than a matmul of equal free size" — is exposed.
  double load_stationary_cycles(const instruction_record& r, bool idle) {
    const operand_record* st = r.op == opcode::nc_matmul ? find_operand(r, operand_role::stationary) : nullptr;
    if (!st) return 0;
    // The partitions and bytes it covers (footprint::of's on-chip rectangle, without building one).
    const std::uint64_t p0 = st->partition_start, p1 = st->partition_start + st->rows, b0 = st->byte_begin, b1 = st->byte_end;
    const bool changed = !(have_stationary_ && p0 == stationary_.p0 && p1 == stationary_.p1 && b0 == stationary_.b0 &&
                           b1 == stationary_.b1);
    stationary_.p0 = p0;
    stationary_.p1 = p1;
    stationary_.b0 = b0;
    stationary_.b1 = b1;
    have_stationary_ = true;
    if (!idle || !changed) return 0;
    double c = double(st->cols) / double(spec_->matmul.load_stationary_speedup);
    if (st->type == dtype::f32) c *= double(spec_->matmul.fp32_rate_divisor);
    return c;
  }

  /// v3/v4 throttling: the rate starts at 50 % and ramps to 100 % over ≈ 3 µs of sustained work; when the
  /// Tensor Engine's utilisation over the last ≈ 3 µs window falls below 50 %, the ramp restarts.
  double throttle(double start) {
    const perf_features& p = spec_->perf;
    while (!te_busy_.empty() && te_busy_.front().second <= start - p.throttle_window_ns) te_busy_.pop_front();
    if (ramp_start_ns_ < 0) ramp_start_ns_ = start;
    if (start - ramp_start_ns_ >= p.throttle_window_ns) {
      double busy = 0;
      for (const auto& [s, e] : te_busy_) busy += std::min(e, start) - std::max(s, start - p.throttle_window_ns);
      if (busy < 0.5 * p.throttle_window_ns) ramp_start_ns_ = start;
    }
    const double ramp = std::min(1.0, (start - ramp_start_ns_) / p.throttle_ramp_ns);
    return p.throttle_start_fraction + (1 - p.throttle_start_fraction) * ramp;
  }

  /// v2 ports: Vector and GpSimd cannot use SBUF at the same time, Vector and Scalar not PSUM. An
  /// instruction on such an engine that touches such a memory takes the earliest gap ≥ start on the port.
  double port_slot(const instruction_record& r, double start, double duration) {
    std::array<bool, 2> uses{};  // [0]: the Vector/GpSimd SBUF port; [1]: the Vector/Scalar PSUM port
    bool any = false;
    for (int port = 0; port < 2; ++port) {
      const bool sbuf_port = port == 0;
      if (sbuf_port ? !spec_->ports.vector_gpsimd_share_sbuf : !spec_->ports.vector_scalar_share_psum) continue;
      const engine partner = sbuf_port ? engine::gpsimd : engine::scalar;
      if (r.unit != engine::vector && r.unit != partner) continue;
      const memory_space space = sbuf_port ? memory_space::sbuf : memory_space::psum;
      for (const operand_record& o : r.operands) uses[port] = uses[port] || o.space == space;
      if (!uses[port]) continue;
      any = true;
      // Intervals that ended before both engines' streams were free can never matter again.
      const double horizon = std::min(stream_free_[std::uint32_t(engine::vector)], stream_free_[std::uint32_t(partner)]);
      std::erase_if(ports_[port], [&](const auto& b) { return b.second <= horizon; });
    }
    if (!any) return start;
    double t = start;
    for (bool moved = true; moved;) {
      moved = false;
      for (int port = 0; port < 2; ++port)
        if (uses[port])
          for (const auto& [s, e] : ports_[port])
            if (s < t + duration && t < e) {
              t = e;
              moved = true;
            }
    }
    for (int port = 0; port < 2; ++port)
      if (uses[port]) ports_[port].push_back({t, t + duration});
    return t;
  }

  /// An operand's footprint and where it lies in the tracker's index (scratch for schedule()).
  struct access {
    footprint f;
    access_tracker::location at;
    access_tracker::candidate_set seen;
    bool redundant = false;  ///< a read of a footprint the instruction also writes (see schedule())
  };

  const machine_spec* spec_;
  timing_options options_;
  dma_model dma_;
  access_tracker tracker_;
  std::vector<access> accesses_;
  std::vector<double> stream_free_;
  std::vector<std::uint64_t> stream_last_;
  std::vector<timed_instruction> timed_;
  mutable std::vector<dma_span> spans_;  ///< spans of timed_[0, replayed_) (see spans())
  mutable dma_engine_pool replay_;
  mutable std::size_t replayed_ = 0;
  mutable std::mutex spans_mutex_;
  std::size_t spans_total_ = 0;
  std::vector<occupancy_sample> occupancy_;
  std::array<std::vector<std::pair<double, double>>, 2> ports_;
  std::deque<std::pair<double, double>> te_busy_;
  double ramp_start_ns_ = -1;
  footprint stationary_{};
  bool have_stationary_ = false;
  double total_ns_ = 0, frontier_ns_ = 0;
};

}  // namespace trellis::systolic::timing
