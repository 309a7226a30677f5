// The timing model: single-instruction costs against the cost-table formulas on every machine, RAW/WAR/WAW
// ordering with exactly computed times, multi-buffering overlap, the DMA packet model, timing-only runs
// timing like functional ones, the report and the Chrome trace.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using namespace trellis::systolic::isa;
using trellis::bf16;
using timing::stall_cause;

const timing::timed_instruction& last(const core_state& nc) { return nc.timeline().timed().back(); }

/// The engine cycles the last instruction occupied its engine, from its times and the engine's clock.
double last_cycles(const core_state& nc) {
  const auto& t = last(nc);
  return (t.end_ns - t.start_ns) * timing::engine_ghz(nc.spec(), nc.records().back().unit);
}

template <class M>
void expect_costs() {
  SCOPED_TRACE(M::spec.name);
  const bool v3 = M::spec.perf.vector_perf_modes;
  core<M> nc{{.functional = false}};
  auto f32a = nc.sbuf.template tile<float>(128, 512);
  auto f32b = nc.sbuf.template tile<float>(128, 512);
  auto h = nc.sbuf.template tile<bf16>(128, 1000);
  auto h2 = nc.sbuf.template tile<bf16>(128, 1000);
  auto st = nc.sbuf.template tile<bf16>(128, 128);
  auto mv = nc.sbuf.template tile<bf16>(128, 512);
  auto mv32 = nc.sbuf.template tile<float>(128, 512);
  auto st32 = nc.sbuf.template tile<float>(128, 128);
  auto acc = nc.psum.template tile<float>(128, 512);
  auto col = nc.sbuf.template tile<float>(128, 1);
  auto stats = nc.sbuf.template tile<float>(128, 12);
  auto mv2 = nc.sbuf.template tile<float>(128, 2);
  // Matmul: first one exposes its LoadStationary (128 / 4 cycles), the next with the same stationary does not.
  nc_matmul(nc, acc, st, mv);
  EXPECT_NEAR(last_cycles(nc), 512 + 32, 1e-6);
  nc_matmul(nc, acc, st, mv, {.accumulate = true});
  EXPECT_NEAR(last_cycles(nc), 512, 1e-6);
  EXPECT_DOUBLE_EQ(last(nc).start_ns, 544 / M::spec.clocks.tensor_ghz);  // back-to-back: accumulation is pipelined
  nc_matmul(nc, acc.cols_range(0, 32), st, mv.cols_range(0, 32));           // max(min(64, 128), 32) = 64
  EXPECT_NEAR(last_cycles(nc), 64, 1e-6);
  nc_matmul(nc, acc, st32, mv32);  // fp32: ×4 (the stationary changed but the engine was busy: overlapped)
  EXPECT_NEAR(last_cycles(nc), 4 * 512, 1e-6);
  // Vector / Scalar / GpSimd.
  tensor_copy(nc, f32b, f32a);  // max(64, N); v3: 2× (fp32 is not the 4× bf16 mode)
  EXPECT_NEAR(last_cycles(nc), v3 ? 256 : 512, 1e-6);
  tensor_copy(nc, h2, h);  // bf16 SBUF→SBUF contiguous: 4× on v3
  EXPECT_NEAR(last_cycles(nc), v3 ? 250 : 1000, 1e-6);
  activation(nc, h2, h, activation_function::exp, {.reduce_out = col});  // max(64, N) + 64
  EXPECT_NEAR(last_cycles(nc), 1000 + 64, 1e-6);
  tensor_tensor(nc, f32b, f32a, f32a, alu_op::add);  // fp32 SBUF: 2N
  EXPECT_NEAR(last_cycles(nc), 1024, 1e-6);
  tensor_tensor(nc, f32b, f32a, acc, alu_op::max);  // one input in PSUM: N
  EXPECT_NEAR(last_cycles(nc), 512, 1e-6);
  tensor_tensor(nc, h2, h, h, alu_op::max);  // bf16 SBUF max: 2N on v2, N with v3's 2× mode
  EXPECT_NEAR(last_cycles(nc), v3 ? 1000 : 2000, 1e-6);
  tensor_reduce(nc, col, h, alu_op::add);  // bf16 add: N/2
  EXPECT_NEAR(last_cycles(nc), 500, 1e-6);
  tensor_reduce(nc, col, f32a, alu_op::add);  // else N
  EXPECT_NEAR(last_cycles(nc), 512, 1e-6);
  reciprocal(nc, f32b.cols_range(0, 100), f32a.cols_range(0, 100));  // 8N
  EXPECT_NEAR(last_cycles(nc), 800, 1e-6);
  memset(nc, h, 0.0f);  // bf16 zero: N/2
  EXPECT_NEAR(last_cycles(nc), 500, 1e-6);
  memset(nc, f32a, 1.0f);
  EXPECT_NEAR(last_cycles(nc), 512, 1e-6);
  bn_stats(nc, stats.cols_range(0, 6), f32a);  // max(64, N), + 100: it reads what the previous Vector op wrote
  EXPECT_NEAR(last_cycles(nc), 512 + 100, 1e-6);
  bn_aggr(nc, mv2, stats);  // 13·12/3 = 52 < 64: tiny (and serial) → 64 + 100 static overhead, once
  EXPECT_NEAR(last_cycles(nc), 64 + 100, 1e-6);
  EXPECT_TRUE(last(nc).static_overhead);
  iota(nc, f32a.cols_range(0, 300), {});  // GpSimd: 150 + N
  EXPECT_NEAR(last_cycles(nc), 450, 1e-6);
  affine_select(nc, f32b, f32a, {});
  EXPECT_NEAR(last_cycles(nc), 150 + 512, 1e-6);
  nc_transpose(nc, acc.sub(0, 40, 0, 96), f32a.sub(0, 96, 0, 40));  // Tensor: max(P, min(64, F)) ×4 for fp32
  EXPECT_NEAR(last_cycles(nc), 4 * 96, 1e-6);
  tensor_copy(nc, f32b.cols_range(0, 100), f32a.sub(0, 128, 0, 100, 5));  // innermost stride 20 B > 16 B: the N term doubles
  EXPECT_NEAR(last_cycles(nc), v3 ? 100 : 200, 1e-6);
}

TEST(SystolicTiming, SingleInstructionCostsFollowTheTable) {
  expect_costs<trn1>();
  expect_costs<trn2>();
  expect_costs<trn3>();
}

TEST(SystolicTiming, RawWarWawOrderingWithExactTimes) {
  core<trn2> nc{{.functional = false}};
  const double v = trn2::spec.clocks.vector_ghz, s = trn2::spec.clocks.scalar_ghz, g = trn2::spec.clocks.gpsimd_ghz;
  auto a = nc.sbuf.tile<float>(128, 512), b = nc.sbuf.tile<float>(128, 512), c = nc.sbuf.tile<float>(128, 512);
  auto d = nc.sbuf.tile<float>(128, 512), e = nc.sbuf.tile<float>(128, 512);
  memset(nc, a, 1.0f);  // Vector [0, 512 cycles)
  const double memset_end = 512 / v, memset_done = memset_end + 60 / v;
  EXPECT_DOUBLE_EQ(last(nc).end_ns, memset_end);
  activation(nc, b, a, activation_function::exp);  // RAW on Vector: starts when a is visible (+60-cycle access)
  EXPECT_DOUBLE_EQ(last(nc).start_ns, memset_done);
  EXPECT_EQ(last(nc).cause, stall_cause::engine);
  const double act_end = memset_done + 512 / s;
  EXPECT_DOUBLE_EQ(last(nc).end_ns, act_end);
  tensor_copy(nc, a, c);  // WAR: a is being read by the activation until act_end
  EXPECT_DOUBLE_EQ(last(nc).start_ns, act_end);
  EXPECT_EQ(last(nc).cause, stall_cause::buffer);
  EXPECT_DOUBLE_EQ(last(nc).stall_ns, act_end - memset_end);
  const double copy_end = act_end + 256 / v;  // v3 2× mode
  memset(nc, b, 0.0f, {.unit = engine::gpsimd});  // WAW: after the activation's write of b is visible
  EXPECT_DOUBLE_EQ(last(nc).start_ns, act_end + 60 / s);
  EXPECT_EQ(last(nc).cause, stall_cause::buffer);
  tensor_scalar(nc, d, a, alu_op::multiply, 2.0f);  // serially dependent on the previous Vector op: +100 cycles
  EXPECT_DOUBLE_EQ(last(nc).start_ns, copy_end);     // same engine: pipelined, no access latency
  EXPECT_NEAR(last_cycles(nc), 256 + 100, 1e-6);
  EXPECT_TRUE(last(nc).static_overhead);
  // Independent work overlaps: GpSimd on e starts as soon as GpSimd is free.
  iota(nc, e, {});
  EXPECT_DOUBLE_EQ(last(nc).start_ns, act_end + 60 / s + 512 / g);
  EXPECT_EQ(last(nc).cause, stall_cause::none);
  EXPECT_DOUBLE_EQ(nc.total_ns(), std::max(last(nc).end_ns + 60 / g, copy_end + 356 / v + 60 / v));
}

TEST(SystolicTiming, SharedPortsOnTrn1) {
  // v2: Vector and GpSimd cannot use SBUF at the same time; on trn2 they overlap.
  auto run = [](auto machine_tag) {
    using M = decltype(machine_tag);
    core<M> nc{{.functional = false}};
    auto a = nc.sbuf.template tile<float>(128, 512), b = nc.sbuf.template tile<float>(128, 512);
    memset(nc, a, 1.0f);
    memset(nc, b, 1.0f, {.unit = engine::gpsimd});
    return std::pair{last(nc).start_ns, last(nc).cause};
  };
  EXPECT_DOUBLE_EQ(run(trn1{}).first, 512 / trn1::spec.clocks.vector_ghz);
  EXPECT_EQ(run(trn1{}).second, stall_cause::port);
  EXPECT_DOUBLE_EQ(run(trn2{}).first, 0.0);
}

/// Loads n tiles by DMA and consumes each on the Vector Engine; loads go to a pool of `bufs` buffers.
core<trn2>& stream_kernel(core<trn2>& nc, hbm<const bf16> in, std::size_t bufs) {
  auto loads = nc.sbuf.pool<bf16>({128, 2048}, bufs);
  auto out = nc.sbuf.tile<float>(128, 1);
  for (std::size_t i = 0; i < in.extent(0) / 128; ++i) {
    auto& t = loads.next();
    dma_copy(nc, t, in.tile(i * 128, 0, 128, 2048));
    tensor_reduce(nc, out, t, alu_op::max);
  }
  return nc;
}

TEST(SystolicTiming, DoubleBufferingOverlapsSingleBufferingDoesNot) {
  const auto in = hbm<const bf16>::shape_only({8 * 128, 2048});
  core<trn2> one{{.functional = false}}, two{{.functional = false}};
  stream_kernel(one, in, 1);
  stream_kernel(two, in, 2);
  auto dma_starts = [](const core_state& nc) {
    std::vector<std::pair<double, double>> loads, uses;  // (start, end)
    for (std::size_t i = 0; i < nc.records().size(); ++i) {
      const auto& t = nc.timeline().timed()[i];
      (nc.records()[i].op == opcode::dma_copy ? loads : uses).push_back({t.start_ns, t.end_ns});
    }
    return std::pair{loads, uses};
  };
  const auto [l1, u1] = dma_starts(one);
  const auto [l2, u2] = dma_starts(two);
  for (std::size_t i = 1; i < l1.size(); ++i) {
    EXPECT_GE(l1[i].first, u1[i - 1].second) << i;  // one buffer: the next load waits for the reduce (WAR)
    EXPECT_LT(l2[i].first, u2[i - 1].second + 1e-9) << i;  // two: it starts while (or before) the reduce runs
  }
  EXPECT_LT(two.total_ns(), 0.8 * one.total_ns());
  EXPECT_GT(one.report().stall_ns[std::size_t(stall_cause::buffer)], 0.0);
}

TEST(SystolicTiming, DmaPacketModelAcrossTheSaturationCurve) {
  const double bw = trn1::spec.dma.engine_bytes_per_ns, overhead = trn1::spec.dma.packet_overhead_ns();
  EXPECT_NEAR(overhead * bw, 4096.0 / 19.0, 1e-9);
  auto transfer = [&](std::size_t partitions, std::size_t bytes) {
    core<trn1> nc{{.functional = false}};
    auto t = nc.sbuf.tile<bf16>(partitions, bytes / 2);
    dma_copy(nc, t, hbm<const bf16>::shape_only({partitions, bytes / 2}));
    return last(nc);
  };
  for (std::size_t bytes : {64, 256, 2048, 4096, 16384}) {
    const auto t = transfer(128, bytes);
    // 128 packets over 16 engines: 8 each, back to back.
    EXPECT_NEAR(t.end_ns - t.start_ns, 8 * (overhead + double(bytes) / bw), 1e-9) << bytes;
    EXPECT_NEAR(t.done_ns - t.end_ns, trn1::spec.dma.fixed_latency_ns, 1e-9);
    EXPECT_EQ(t.packets, 128u);
    const double efficiency = double(bytes) / bw / (overhead + double(bytes) / bw);
    if (bytes < 256) {
      EXPECT_LT(efficiency, 0.5) << bytes;  // overhead-bound
    } else if (bytes == 2048) {
      EXPECT_GT(efficiency, 0.9);  // approaches peak
    } else if (bytes >= 4096) {
      EXPECT_GE(efficiency, 0.95 - 1e-12);  // saturated
    }
  }
  // Fewer partitions keep fewer engines busy: 4 packets run side by side on 4 engines.
  const auto few = transfer(4, 4096);
  EXPECT_NEAR(few.end_ns - few.start_ns, overhead + 4096 / bw, 1e-9);
  // Element-strided on-chip side: every element is its own packet.
  core<trn1> nc{{.functional = false}};
  auto wide = nc.sbuf.tile<bf16>(128, 64);
  dma_copy(nc, wide.sub(0, 128, 0, 32, 2), hbm<const bf16>::shape_only({128, 32}));
  EXPECT_EQ(last(nc).packets, 128u * 32);
  EXPECT_EQ(last(nc).packet_bytes, 2u);
}

struct slow_hbm {  // trn1 with a per-core HBM share below the DMA engines' sum: the cap binds
  static constexpr machine_spec spec = [] {
    machine_spec s = trn1::spec;
    s.name = "slow_hbm";
    s.hbm.bytes_per_ns_per_chip = 200;  // 100 B/ns per core
    return s;
  }();
};

TEST(SystolicTiming, HbmBandwidthCapsTheSum) {
  core<slow_hbm> nc{{.functional = false}};
  auto a = nc.sbuf.tile<bf16>(128, 2048), b = nc.sbuf.tile<bf16>(128, 2048);
  dma_copy(nc, a, hbm<const bf16>::shape_only({128, 2048}));
  EXPECT_NEAR(last(nc).end_ns, 128.0 * 4096 / 100, 1e-6);
  dma_copy(nc, b, hbm<const bf16>::shape_only({128, 2048}));  // another queue, same HBM share
  EXPECT_NEAR(last(nc).end_ns, 2 * 128.0 * 4096 / 100, 1e-6);
}

/// A double-buffered tiled matmul (bufs = 2), the same code for both modes.
template <class Machine>
void matmul_kernel(core<Machine>& nc, hbm<const bf16> lhsT, hbm<const bf16> rhs, hbm<float> out) {
  const std::size_t k_size = lhsT.extent(0), m_size = lhsT.extent(1), n_size = rhs.extent(1);
  auto a_pool = nc.sbuf.template pool<bf16>({128, 128}, 2);
  auto b_pool = nc.sbuf.template pool<bf16>({128, 512}, 2);
  auto r_pool = nc.sbuf.template pool<float>({128, 512}, 2);
  for (std::size_t m = 0; m < m_size; m += 128)
    for (std::size_t n = 0; n < n_size; n += 512) {
      auto acc = nc.psum.template tile<float>(128, 512);
      for (std::size_t k = 0; k < k_size; k += 128) {
        auto& a = a_pool.next();
        auto& b = b_pool.next();
        dma_copy(nc, a, lhsT.tile(k, m, 128, 128));
        dma_copy(nc, b, rhs.tile(k, n, 128, 512));
        nc_matmul(nc, acc, a, b, {.accumulate = k > 0});
      }
      auto& res = r_pool.next();
      tensor_copy(nc, res, acc);
      dma_copy(nc, out.tile(m, n, 128, 512), res);
    }
}

TEST(SystolicTiming, TimingOnlyRunsTimeLikeFunctionalRuns) {
  const std::size_t k = 256, m = 256, n = 1024;
  std::vector<bf16> a(k * m, bf16(1.0f)), b(k * n, bf16(0.5f));
  std::vector<float> c(m * n);
  core<trn2> functional;
  matmul_kernel(functional, hbm<const bf16>{{a.data(), {k, m}}}, hbm<const bf16>{{b.data(), {k, n}}}, hbm<float>{{c.data(), {m, n}}});
  EXPECT_EQ(c[5], 128.0f);
  core<trn2> timing_only{{.functional = false}};
  matmul_kernel(timing_only, hbm<const bf16>::shape_only({k, m}), hbm<const bf16>::shape_only({k, n}),
                hbm<float>::shape_only({m, n}));
  ASSERT_EQ(functional.timeline().timed().size(), timing_only.timeline().timed().size());
  for (std::size_t i = 0; i < functional.timeline().timed().size(); ++i) {
    EXPECT_EQ(functional.timeline().timed()[i].start_ns, timing_only.timeline().timed()[i].start_ns) << i;
    EXPECT_EQ(functional.timeline().timed()[i].done_ns, timing_only.timeline().timed()[i].done_ns) << i;
  }
  EXPECT_EQ(functional.total_ns(), timing_only.total_ns());
  EXPECT_GT(functional.total_ns(), 0.0);
}

TEST(SystolicTiming, ReportMetrics) {
  core<trn2> nc{{.functional = false}};
  matmul_kernel(nc, hbm<const bf16>::shape_only({256, 256}), hbm<const bf16>::shape_only({256, 1024}),
                hbm<float>::shape_only({256, 1024}));
  const timing::report r = nc.report();
  EXPECT_EQ(r.total_ns, nc.total_ns());
  EXPECT_EQ(r.engines[0].instructions, 2u * 2 * 2);  // matmuls
  EXPECT_DOUBLE_EQ(r.model_flops, 2.0 * 256 * 256 * 1024);
  EXPECT_DOUBLE_EQ(r.hardware_flops, r.model_flops);  // full 128 × 128 tiles: no padding
  EXPECT_DOUBLE_EQ(r.mapping_efficiency, 1.0);
  EXPECT_NEAR(r.mfu, r.model_flops / (2.0 * 128 * 128 * 2.4 * r.total_ns), 1e-12);
  EXPECT_DOUBLE_EQ(r.hbm_read_bytes, 2.0 * (2 * 2 * (128 * 128 + 128 * 512) * 2));  // each (m, n) tile reloads its K strip
  EXPECT_DOUBLE_EQ(r.hbm_written_bytes, 256.0 * 1024 * 4);
  EXPECT_NEAR(r.mbu, (r.hbm_read_bytes + r.hbm_written_bytes) / (362.5 * r.total_ns), 1e-12);
  EXPECT_EQ(r.psum_peak_bytes, 128u * 2048);
  EXPECT_GT(r.engines[0].utilisation, 0.0);
  EXPECT_LE(r.engines[0].utilisation, 1.0);
  const std::string table = r.table(), json = r.json();
  EXPECT_NE(table.find("Tensor"), std::string::npos);
  EXPECT_NE(json.find("\"mfu\":"), std::string::npos);
  EXPECT_EQ(json.front(), '{');
  EXPECT_EQ(json.back(), '}');
}

TEST(SystolicTiming, TraceSlicesNeverOverlapOnATrack) {
  core<trn1> nc{{.functional = false}};
  matmul_kernel(nc, hbm<const bf16>::shape_only({384, 256}), hbm<const bf16>::shape_only({384, 1024}),
                hbm<float>::shape_only({256, 1024}));
  // From the timeline: per compute engine / DMA queue / DMA engine, slices are disjoint in the printed picoseconds.
  std::map<std::int64_t, std::vector<std::pair<std::int64_t, std::int64_t>>> tracks;
  const auto& s = nc.timeline();
  for (const auto& t : s.timed()) {
    tracks[t.stream].push_back({timing::detail::picos(t.start_ns), timing::detail::picos(t.end_ns)});
    for (std::uint32_t k = 0; k < t.span_count; ++k) {
      const auto& sp = s.spans()[t.first_span + k];
      tracks[1000 + sp.engine].push_back({timing::detail::picos(sp.start_ns), timing::detail::picos(sp.end_ns)});
    }
  }
  for (auto& [track, slices] : tracks) {
    std::sort(slices.begin(), slices.end());
    for (std::size_t i = 1; i < slices.size(); ++i) EXPECT_LE(slices[i - 1].second, slices[i].first) << track;
  }
  const char* path_env = std::getenv("TRELLIS_TRACE_PATH");
  const std::string path = path_env ? path_env : "systolic_timing_trace.json";
  nc.write_trace(path);
  std::ifstream f(path);
  std::stringstream text;
  text << f.rdbuf();
  EXPECT_EQ(text.str().rfind("{\"displayTimeUnit\":\"ns\",\"traceEvents\":[", 0), 0u);
  // Capped traces say how much they left out.
  nc.write_trace(path + ".capped", {.max_slices = 5});
  std::ifstream g(path + ".capped");
  std::stringstream capped;
  capped << g.rdbuf();
  EXPECT_NE(capped.str().find("trace capped:"), std::string::npos);
}

TEST(SystolicTiming, TensorEngineThrottlingIsAnOption) {
  auto run = [](bool throttle) {
    core<trn2> nc{{.functional = false, .timing = {.tensor_throttling = throttle}}};
    auto st = nc.sbuf.tile<bf16>(128, 128), mv = nc.sbuf.tile<bf16>(128, 512);
    auto acc = nc.psum.tile<float>(128, 512);
    for (int i = 0; i < 40; ++i) nc_matmul(nc, acc, st, mv, {.accumulate = i > 0});
    return nc.timeline().timed();
  };
  const auto off = run(false), on = run(true);
  EXPECT_DOUBLE_EQ(off[1].end_ns - off[1].start_ns, 512 / 2.4);
  EXPECT_NEAR(on[1].rate, 0.5 + 0.5 * (on[1].start_ns - on[0].start_ns) / 3000, 1e-12);  // ramping from 50 %
  EXPECT_DOUBLE_EQ(on.back().rate, 1.0);  // after ≈ 3 µs of sustained work
  EXPECT_GT(on.back().end_ns, off.back().end_ns);
}

}  // namespace
