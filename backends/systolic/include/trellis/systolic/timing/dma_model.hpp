#pragma once
// The DMA model (DESIGN.md §4.4, trainium.md "DMA"): a transfer issued on queue q starts when the queue's
// previous transfer has moved its data (queues are FIFO) and its inputs are ready. Each partition's
// contiguous run is one packet; packets go, in order, to whichever of the 16 DMA engines frees first and
// hold it for packet_overhead + bytes / engine_bandwidth. A transfer touching HBM also holds the core's
// HBM bandwidth share for bytes / hbm_bandwidth (one FIFO pipe: the per-core cap on the sum). The data
// is in place at the later of both; the fixed latency then delays completion without blocking anything.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/records.hpp"
#include "trellis/systolic/timing/dma_engines.hpp"

namespace trellis::systolic::timing {

/// Packets handed to engines one by one up to this many per transfer; beyond it (element-strided
/// transfers of huge tiles), consecutive packets are grouped so that a transfer costs O(this) to time.
inline constexpr std::size_t dma_max_packet_jobs = 4096;

struct dma_timing {
  double start_ns = 0;      ///< first packet may start (queue and dependencies ready)
  double data_end_ns = 0;   ///< all bytes moved
  double done_ns = 0;       ///< + fixed latency: visible to consumers
  std::size_t packets = 0;
  std::size_t packet_bytes = 0;
  std::size_t bytes = 0;    ///< bytes moved (the larger side when casting)
  double hbm_start_ns = 0, hbm_end_ns = 0;
  std::uint32_t span_count = 0;  ///< engines used (spans the transfer has in scheduler::spans())
};

/// How a transfer's packets go to the engines: `group` at a time (dma_max_packet_jobs), each holding its
/// engine per_packet ns.
struct dma_jobs {
  std::size_t group;
  double per_packet;
};
inline dma_jobs dma_jobs_of(std::size_t packets, std::size_t packet_bytes, const machine_spec& spec) noexcept {
  return {(packets + dma_max_packet_jobs - 1) / dma_max_packet_jobs,
          spec.dma.packet_overhead_ns() + double(packet_bytes) / spec.dma.engine_bytes_per_ns};
}
/// The same with the packet overhead computed beforehand (spec.dma.packet_overhead_ns(): the same value).
inline dma_jobs dma_jobs_of(std::size_t packets, std::size_t packet_bytes, double packet_overhead_ns,
                            const machine_spec& spec) noexcept {
  return {(packets + dma_max_packet_jobs - 1) / dma_max_packet_jobs,
          packet_overhead_ns + double(packet_bytes) / spec.dma.engine_bytes_per_ns};
}

/// log2(size_of(t)).
constexpr unsigned size_shift(dtype t) noexcept { return size_of(t) == 4 ? 2 : size_of(t) == 2 ? 1 : 0; }

/// Packets of a transfer: one per contiguous run of each row (partition) — on both sides.
inline void dma_packets(const instruction_record& r, std::size_t& packets, std::size_t& packet_bytes, std::size_t& bytes) {
  const operand_record& dst = r.operands[0];
  const operand_record& src = r.operands[1];
  const std::size_t elem = std::max(size_of(dst.type), size_of(src.type));
  bytes = dst.rows * dst.cols * elem;
  if (r.attributes.transpose) {  // model assumption: one packet per destination partition (see docs)
    packets = dst.rows;
    packet_bytes = dst.cols * elem;
    return;
  }
  // (element sizes are 1, 2 or 4 bytes: shifts, not divisions — this runs for every transfer)
  const std::size_t run_dst = std::max<std::size_t>(1, dst.run_bytes >> size_shift(dst.type));
  const std::size_t run_src = std::max<std::size_t>(1, src.run_bytes >> size_shift(src.type));
  const std::size_t run = std::min(run_dst, run_src);  // elements per packet
  packets = dst.rows * (run == dst.cols ? 1 : (dst.cols + run - 1) / run);
  packet_bytes = run * elem;
}

class dma_model {
 public:
  explicit dma_model(const machine_spec& spec)
      : spec_(&spec), engines_(spec.dma.engines), queue_free_(spec.dma.queues, 0.0),
        hbm_bytes_per_ns_(spec.hbm.bytes_per_ns_per_core()), packet_overhead_ns_(spec.dma.packet_overhead_ns()) {}

  double queue_free(std::size_t q) const noexcept { return queue_free_[q]; }
  const std::vector<double>& engine_free() const noexcept { return engines_.free_at(); }

  /// The engines' packet counts and busy times so far.
  const dma_engine_pool& engines() const noexcept { return engines_; }

  /// Times a transfer on queue `q` whose inputs are ready at `ready_ns`. Its engine spans are not kept:
  /// replaying the transfers' (start_ns, packets, packet_bytes) in order on a fresh pool gives them.
  dma_timing schedule(const instruction_record& r, std::size_t q, double ready_ns) {
    dma_timing t;
    dma_packets(r, t.packets, t.packet_bytes, t.bytes);
    t.start_ns = std::max(ready_ns, queue_free_[q]);
    const dma_jobs jobs = dma_jobs_of(t.packets, t.packet_bytes, packet_overhead_ns_, *spec_);
    const double end = engines_.assign(t.start_ns, t.packets, jobs.group, jobs.per_packet, t.span_count);
    const bool touches_hbm = r.operands[0].space == memory_space::hbm || r.operands[1].space == memory_space::hbm;
    t.hbm_start_ns = t.hbm_end_ns = t.start_ns;
    if (touches_hbm) {
      const operand_record& h = r.operands[0].space == memory_space::hbm ? r.operands[0] : r.operands[1];
      t.hbm_start_ns = std::max(t.start_ns, hbm_free_);
      t.hbm_end_ns = t.hbm_start_ns + double(h.bytes()) / hbm_bytes_per_ns_;
      hbm_free_ = t.hbm_end_ns;
    }
    t.data_end_ns = std::max(end, t.hbm_end_ns);
    t.done_ns = t.data_end_ns + spec_->dma.fixed_latency_ns;
    queue_free_[q] = t.data_end_ns;
    return t;
  }

 private:
  const machine_spec* spec_;
  dma_engine_pool engines_;
  std::vector<double> queue_free_;
  double hbm_bytes_per_ns_;  ///< the machine's per-core HBM bandwidth (computed once)
  double packet_overhead_ns_;  ///< spec.dma.packet_overhead_ns() (computed once)
  double hbm_free_ = 0;
};

}  // namespace trellis::systolic::timing
