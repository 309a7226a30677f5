#pragma once
// report: what a kernel run cost — total time, per-engine cycles/busy time/utilisation/stalls, MFU/HFU,
// HBM traffic and MBU, SBUF/PSUM peaks — as a struct, a printable table and JSON. Every metric is defined
// in docs/systolic-model.md. Times are ns; cycles are in the clock of the engine that ran them.

#include <array>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/records.hpp"
#include "trellis/systolic/timing/cost_model.hpp"
#include "trellis/systolic/timing/scheduler.hpp"

namespace trellis::systolic::timing {

struct stream_report {
  std::string name;                 ///< "Tensor", "Vector", "Scalar", "GpSimd", "DMA queue 3", "DMA engine 7"
  double clock_ghz = 0;             ///< 0 for DMA (its "cycles" are ns)
  std::size_t instructions = 0;     ///< instructions (transfers; packets for a DMA engine)
  double busy_cycles = 0;           ///< engine cycles occupied (compute only)
  double busy_ns = 0;               ///< time occupied
  double utilisation = 0;           ///< busy_ns / total_ns
  std::array<double, stall_cause_count> stall_ns{};  ///< time the stream waited, by cause
};

struct report {
  std::string machine;
  double total_ns = 0;
  std::vector<stream_report> engines;      ///< the four compute engines
  std::vector<stream_report> dma_queues;   ///< queues that carried a transfer
  std::vector<stream_report> dma_engines;  ///< all DMA engines
  double model_flops = 0, hardware_flops = 0, peak_flops_per_ns = 0;
  double mfu = 0, hfu = 0, mapping_efficiency = 0;
  double hbm_read_bytes = 0, hbm_written_bytes = 0, hbm_bytes_per_ns = 0, mbu = 0;
  std::size_t sbuf_peak_bytes = 0, sbuf_capacity_bytes = 0, psum_peak_bytes = 0, psum_capacity_bytes = 0;
  std::array<double, stall_cause_count> stall_ns{};  ///< summed over all streams

  std::string table() const;
  std::string json() const;
};

inline report make_report(const machine_spec& spec, const std::vector<instruction_record>& records, const scheduler& s,
                          std::size_t sbuf_peak, std::size_t sbuf_capacity, std::size_t psum_peak, std::size_t psum_capacity) {
  report r;
  r.machine = spec.name;
  r.total_ns = s.total_ns();
  const char* names[] = {"Tensor", "Vector", "Scalar", "GpSimd"};
  const engine units[] = {engine::tensor, engine::vector, engine::scalar, engine::gpsimd};
  for (int i = 0; i < 4; ++i) r.engines.push_back({names[i], engine_ghz(spec, units[i]), 0, 0, 0, 0, {}});
  std::vector<stream_report> queues(spec.dma.queues);
  for (std::size_t q = 0; q < queues.size(); ++q) queues[q].name = "DMA queue " + std::to_string(q);
  r.dma_engines.resize(spec.dma.engines);
  for (std::size_t e = 0; e < r.dma_engines.size(); ++e) r.dma_engines[e].name = "DMA engine " + std::to_string(e);
  double mapped = 0, streamed = 0;
  const auto& timed = s.timed();
  for (std::size_t i = 0; i < timed.size() && i < records.size(); ++i) {
    const timed_instruction& t = timed[i];
    const instruction_record& rec = records[i];
    stream_report& sr = t.stream < compute_streams ? r.engines[t.stream] : queues[t.stream - compute_streams];
    ++sr.instructions;
    sr.busy_ns += t.end_ns - t.start_ns;
    if (t.stream < compute_streams) sr.busy_cycles += t.cycles;
    sr.stall_ns[std::size_t(t.cause)] += t.stall_ns;
    r.stall_ns[std::size_t(t.cause)] += t.stall_ns;
    const flop_count f = instruction_flops(rec, spec);
    r.model_flops += f.model;
    r.hardware_flops += f.hardware;
    if (rec.op == opcode::nc_matmul) {
      const double n = double(find_operand(rec, operand_role::moving)->cols);
      mapped += f.mapped_pe * n;
      streamed += n;
    }
    if (rec.op == opcode::dma_copy) {
      for (const operand_record& o : rec.operands)
        if (o.space == memory_space::hbm) (o.written ? r.hbm_written_bytes : r.hbm_read_bytes) += double(o.bytes());
    }
  }
  // Per DMA engine: the sums of its spans' packets and durations, in transfer order (kept by the scheduler,
  // so that a report does not need the spans themselves).
  for (std::size_t e = 0; e < r.dma_engines.size() && e < s.dma_engine_busy_ns().size(); ++e) {
    r.dma_engines[e].instructions = std::size_t(s.dma_engine_packets()[e]);
    r.dma_engines[e].busy_ns = s.dma_engine_busy_ns()[e];
  }
  for (stream_report& q : queues)
    if (q.instructions) r.dma_queues.push_back(q);
  auto util = [&](stream_report& x) { x.utilisation = r.total_ns > 0 ? x.busy_ns / r.total_ns : 0; };
  for (auto& x : r.engines) util(x);
  for (auto& x : r.dma_queues) util(x);
  for (auto& x : r.dma_engines) util(x);
  r.peak_flops_per_ns = 2.0 * double(spec.matmul.pe_rows * spec.matmul.pe_columns) * spec.clocks.tensor_ghz;
  const double denom = r.peak_flops_per_ns * r.total_ns;
  r.mfu = denom > 0 ? r.model_flops / denom : 0;
  r.hfu = denom > 0 ? r.hardware_flops / denom : 0;
  r.mapping_efficiency = streamed > 0 ? mapped / (streamed * double(spec.matmul.pe_rows * spec.matmul.pe_columns)) : 0;
  r.hbm_bytes_per_ns = spec.hbm.bytes_per_ns_per_core();
  r.mbu = r.total_ns > 0 ? (r.hbm_read_bytes + r.hbm_written_bytes) / (r.hbm_bytes_per_ns * r.total_ns) : 0;
  r.sbuf_peak_bytes = sbuf_peak;
  r.sbuf_capacity_bytes = sbuf_capacity;
  r.psum_peak_bytes = psum_peak;
  r.psum_capacity_bytes = psum_capacity;
  return r;
}

namespace detail {
inline std::string format(const char* fmt, double a, double b = 0, double c = 0, double d = 0) {
  char buf[256];
  std::snprintf(buf, sizeof buf, fmt, a, b, c, d);
  return buf;
}
inline std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) {
      out += ' ';
      continue;
    }
    out += ch;
  }
  return out + "\"";
}
}  // namespace detail

inline std::string report::table() const {
  std::string t = "NeuronCore model report (" + machine + "): total " + detail::format("%.1f ns\n", total_ns);
  t += "stream            instr   busy cycles      busy ns   util%   stall ns (dma/engine/buffer/port)\n";
  auto row = [&](const stream_report& x) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "%-16s %6zu %13.0f %12.1f %7.1f   %.1f/%.1f/%.1f/%.1f\n", x.name.c_str(), x.instructions,
                  x.busy_cycles, x.busy_ns, 100 * x.utilisation, x.stall_ns[1], x.stall_ns[2], x.stall_ns[3], x.stall_ns[4]);
    t += buf;
  };
  for (const auto& x : engines) row(x);
  for (const auto& x : dma_queues) row(x);
  for (const auto& x : dma_engines)
    if (x.instructions) row(x);
  t += detail::format("MFU %.2f %%  HFU %.2f %%  mapping efficiency %.2f %%  (peak %.0f FLOP/ns)\n", 100 * mfu, 100 * hfu,
                      100 * mapping_efficiency, peak_flops_per_ns);
  t += detail::format("HBM read %.0f B, written %.0f B, MBU %.2f %% of %.1f B/ns\n", hbm_read_bytes, hbm_written_bytes, 100 * mbu,
                      hbm_bytes_per_ns);
  t += detail::format("SBUF peak %.0f of %.0f B, PSUM peak %.0f of %.0f B\n", double(sbuf_peak_bytes), double(sbuf_capacity_bytes),
                      double(psum_peak_bytes), double(psum_capacity_bytes));
  return t;
}

inline std::string report::json() const {
  auto num = [](double v) { return detail::format("%.17g", v); };
  auto stream = [&](const stream_report& x) {
    std::string s = "{\"name\":" + detail::json_string(x.name) + ",\"clock_ghz\":" + num(x.clock_ghz) +
                    ",\"instructions\":" + std::to_string(x.instructions) + ",\"busy_cycles\":" + num(x.busy_cycles) +
                    ",\"busy_ns\":" + num(x.busy_ns) + ",\"utilisation\":" + num(x.utilisation) + ",\"stall_ns\":{";
    for (std::size_t c = 1; c < stall_cause_count; ++c) {
      if (c > 1) s += ',';
      s += '"';
      s += to_string(stall_cause(c));
      s += "\":";
      s += num(x.stall_ns[c]);
    }
    return s + "}}";
  };
  auto list = [&](const std::vector<stream_report>& v) {
    std::string s = "[";
    for (std::size_t i = 0; i < v.size(); ++i) {
      if (i) s += ',';
      s += stream(v[i]);
    }
    return s + "]";
  };
  std::string j = "{\"machine\":" + detail::json_string(machine) + ",\"total_ns\":" + num(total_ns);
  j += ",\"engines\":" + list(engines) + ",\"dma_queues\":" + list(dma_queues) + ",\"dma_engines\":" + list(dma_engines);
  j += ",\"model_flops\":" + num(model_flops) + ",\"hardware_flops\":" + num(hardware_flops) +
       ",\"peak_flops_per_ns\":" + num(peak_flops_per_ns) + ",\"mfu\":" + num(mfu) + ",\"hfu\":" + num(hfu) +
       ",\"mapping_efficiency\":" + num(mapping_efficiency);
  j += ",\"hbm_read_bytes\":" + num(hbm_read_bytes) + ",\"hbm_written_bytes\":" + num(hbm_written_bytes) +
       ",\"hbm_bytes_per_ns\":" + num(hbm_bytes_per_ns) + ",\"mbu\":" + num(mbu);
  j += ",\"sbuf_peak_bytes\":" + std::to_string(sbuf_peak_bytes) + ",\"sbuf_capacity_bytes\":" + std::to_string(sbuf_capacity_bytes) +
       ",\"psum_peak_bytes\":" + std::to_string(psum_peak_bytes) + ",\"psum_capacity_bytes\":" + std::to_string(psum_capacity_bytes);
  j += ",\"stall_ns\":{";
  for (std::size_t c = 1; c < stall_cause_count; ++c) {
    if (c > 1) j += ',';
    j += '"';
    j += to_string(stall_cause(c));
    j += "\":";
    j += num(stall_ns[c]);
  }
  return j + "}}";
}

}  // namespace trellis::systolic::timing
