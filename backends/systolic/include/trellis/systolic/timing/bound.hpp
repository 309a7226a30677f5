#pragma once
// bounding_resource: which resource a run's time is bound by, read off its report — the resource with the
// most busy time (docs/systolic-model.md, "Reading the report"). Candidates: each compute engine's busy
// time, the busiest DMA engine's busy time, and HBM (bytes moved ÷ the core's HBM bandwidth). When even
// the busiest is busy for less than half the run, nothing is saturated and the time is set by the chain
// of dependencies between engines: "latency".

#include <string>

#include "trellis/systolic/timing/report.hpp"

namespace trellis::systolic::timing {

struct bound {
  std::string resource;  ///< "Tensor", "Vector", "Scalar", "GpSimd", "DMA", "HBM" or "latency"
  double busy_fraction;  ///< the busiest resource's busy time ÷ total time
};

inline bound bounding_resource(const report& r) {
  bound b{"latency", 0.0};
  if (r.total_ns <= 0) return b;
  const auto consider = [&](const std::string& name, double busy_ns) {
    const double f = busy_ns / r.total_ns;
    if (f > b.busy_fraction) b = {name, f};
  };
  for (const stream_report& e : r.engines) consider(e.name, e.busy_ns);
  double dma = 0;
  for (const stream_report& e : r.dma_engines) dma = dma > e.busy_ns ? dma : e.busy_ns;
  consider("DMA", dma);
  if (r.hbm_bytes_per_ns > 0) consider("HBM", (r.hbm_read_bytes + r.hbm_written_bytes) / r.hbm_bytes_per_ns);
  if (b.busy_fraction < 0.5) b.resource = "latency";
  return b;
}

}  // namespace trellis::systolic::timing
