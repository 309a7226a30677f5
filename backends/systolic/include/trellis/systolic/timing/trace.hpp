#pragma once
// write_trace: the run as Chrome Trace Event JSON (ui.perfetto.dev, chrome://tracing), per DESIGN.md §4:
// {"displayTimeUnit":"ns","traceEvents":[...]}; ph:"M" events name the process (the core) and its threads
// and fix their order: Tensor, Vector, Scalar, GpSimd, then one track per DMA queue and per DMA engine;
// each instruction is a ph:"X" slice, ts/dur in µs rebased to 0 (printed to the picosecond from integer
// picoseconds, so slices that touch in the model touch in the file and none overlap on a track); args
// carry cycles, shapes, dtypes and file:line; SBUF/PSUM bytes in use are ph:"C" counters. Past
// `max_slices` instruction slices the rest are dropped and one instant event says how many.

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/records.hpp"
#include "trellis/systolic/timing/report.hpp"
#include "trellis/systolic/timing/scheduler.hpp"

namespace trellis::systolic::timing {

struct trace_options {
  std::size_t max_slices = 1000000;  ///< instruction slices (compute + DMA queue); DMA engine slices follow their transfer
};

namespace detail {
/// Microseconds from integer picoseconds, exactly: "12.345678".
inline std::string micros(std::int64_t ps) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "%lld.%06lld", static_cast<long long>(ps / 1000000), static_cast<long long>(ps % 1000000));
  return buf;
}
inline std::int64_t picos(double ns) { return std::llround(ns * 1000.0); }

inline std::string operand_text(const operand_record& o) {
  std::string s = std::string(o.role) + " " + to_string(o.space) + " [" + std::to_string(o.rows) + ", " + std::to_string(o.cols) +
                  "] " + to_string(o.type);
  return s;
}
}  // namespace detail

inline std::string trace_json(const machine_spec& spec, const std::vector<instruction_record>& records, const scheduler& s,
                              trace_options options = {}) {
  using detail::json_string;
  std::string out = "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n";
  const int pid = 1;
  auto meta = [&](const char* what, int tid, const std::string& name, int order) {
    out += "{\"ph\":\"M\",\"pid\":1,\"tid\":" + std::to_string(tid) + ",\"name\":\"" + what + "\",\"args\":{\"name\":" +
           json_string(name) + "}},\n";
    if (tid > 0)
      out += "{\"ph\":\"M\",\"pid\":1,\"tid\":" + std::to_string(tid) + ",\"name\":\"thread_sort_index\",\"args\":{\"sort_index\":" +
             std::to_string(order) + "}},\n";
  };
  out += "{\"ph\":\"M\",\"pid\":1,\"name\":\"process_name\",\"args\":{\"name\":" +
         json_string(std::string("NeuronCore (") + spec.name + ")") + "}},\n";
  out += "{\"ph\":\"M\",\"pid\":1,\"name\":\"process_sort_index\",\"args\":{\"sort_index\":0}},\n";
  const char* names[] = {"Tensor", "Vector", "Scalar", "GpSimd"};
  for (int i = 0; i < 4; ++i) meta("thread_name", i + 1, names[i], i);
  const int queue_tid0 = 100, engine_tid0 = 200;
  for (std::size_t q = 0; q < spec.dma.queues; ++q)
    meta("thread_name", queue_tid0 + int(q), "DMA queue " + std::to_string(q), 10 + int(q));
  for (std::size_t e = 0; e < spec.dma.engines; ++e)
    meta("thread_name", engine_tid0 + int(e), "DMA engine " + std::to_string(e), 100 + int(e));
  (void)pid;

  const auto& timed = s.timed();
  std::size_t slices = 0, dropped = 0;
  for (std::size_t i = 0; i < timed.size() && i < records.size(); ++i) {
    if (slices >= options.max_slices) {
      ++dropped;
      continue;
    }
    ++slices;
    const timed_instruction& t = timed[i];
    const instruction_record& r = records[i];
    const int tid = t.stream < compute_streams ? int(t.stream) + 1 : queue_tid0 + int(t.stream - compute_streams);
    std::string args = "\"index\":" + std::to_string(r.index) + ",\"cycles\":" + detail::format("%.6g", t.cycles) +
                       ",\"source\":" + json_string(std::string(r.where.file_name()) + ":" + std::to_string(r.where.line()));
    for (std::size_t k = 0; k < r.operands.size(); ++k)
      args += ",\"op" + std::to_string(k) + "\":" + json_string(detail::operand_text(r.operands[k]));
    if (t.stall_ns > 0) args += ",\"stall_ns\":" + detail::format("%.6g", t.stall_ns) + ",\"stall\":\"" + to_string(t.cause) + "\"";
    if (r.unit == engine::dma)
      args += ",\"bytes\":" + std::to_string(t.bytes) + ",\"packets\":" + std::to_string(t.packets) +
              ",\"packet_bytes\":" + std::to_string(t.packet_bytes) + ",\"done_us\":" + detail::micros(detail::picos(t.done_ns));
    else if (t.static_overhead)
      args += ",\"static_overhead\":true";
    const std::int64_t b = detail::picos(t.start_ns), e = detail::picos(t.end_ns);
    out += "{\"ph\":\"X\",\"pid\":1,\"tid\":" + std::to_string(tid) + ",\"name\":" + json_string(to_string(r.op)) +
           ",\"ts\":" + detail::micros(b) + ",\"dur\":" + detail::micros(e - b) + ",\"args\":{" + args + "}},\n";
    for (std::uint32_t k = 0; k < t.span_count; ++k) {
      const dma_span& sp = s.spans()[t.first_span + k];
      const std::int64_t sb = detail::picos(sp.start_ns), se = detail::picos(sp.end_ns);
      out += "{\"ph\":\"X\",\"pid\":1,\"tid\":" + std::to_string(engine_tid0 + sp.engine) + ",\"name\":\"dma #" +
             std::to_string(r.index) + "\",\"ts\":" + detail::micros(sb) + ",\"dur\":" + detail::micros(se - sb) +
             ",\"args\":{\"packets\":" + std::to_string(sp.packets) + ",\"queue\":" + std::to_string(r.dma_queue) + "}},\n";
    }
  }
  for (const occupancy_sample& o : s.occupancy())
    out += "{\"ph\":\"C\",\"pid\":1,\"name\":\"on-chip bytes in use\",\"ts\":" + detail::micros(detail::picos(o.time_ns)) +
           ",\"args\":{\"SBUF\":" + std::to_string(o.sbuf_bytes) + ",\"PSUM\":" + std::to_string(o.psum_bytes) + "}},\n";
  if (dropped)
    out += "{\"ph\":\"i\",\"s\":\"g\",\"pid\":1,\"tid\":1,\"name\":\"trace capped: " + std::to_string(dropped) +
           " more instructions not shown\",\"ts\":" + detail::micros(detail::picos(s.total_ns())) + "},\n";
  out += "{\"ph\":\"M\",\"pid\":1,\"name\":\"process_labels\",\"args\":{\"labels\":" +
         json_string("total " + detail::format("%.1f", s.total_ns()) + " ns") + "}}\n]}\n";
  return out;
}

inline void write_trace(const std::string& path, const machine_spec& spec, const std::vector<instruction_record>& records,
                        const scheduler& s, trace_options options = {}) {
  std::ofstream f(path, std::ios::binary);
  if (!f) raise_error("write_trace: cannot open " + path + " for writing");
  f << trace_json(spec, records, s, options);
  if (!f) raise_error("write_trace: writing " + path + " failed");
}

}  // namespace trellis::systolic::timing
