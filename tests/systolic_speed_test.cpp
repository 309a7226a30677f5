// The simulator's speed work must not move a single time. Two proofs:
//  1. Golden checksums: every field of every timed instruction, DMA engine span and occupancy sample of
//     fixed tiled-matmul runs (the tutorial shape: 99,328 instructions; plus tails, v2 ports, v3
//     throttling) hashed bit for bit. The constants were printed by this file's golden_print test
//     (TRELLIS_PRINT_GOLDEN=1) with the flat-list access tracker and the packet-by-packet DMA loop, before
//     either was replaced; any change in any time, cause, engine or count changes the hash.
//  2. Differential oracles: the indexed access tracker and the round-batched DMA engine assignment answer
//     exactly like the old algorithms (kept here, test-only) on long random sequences, including the
//     corner cases the matmul kernels never reach (partial overlaps, mixed HBM row strides, ties).

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using trellis::bf16;

/// FNV-1a over the bytes of every value fed to it.
struct hasher {
  std::uint64_t h = 1469598103934665603ull;
  void bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
  }
  void operator()(double v) { bytes(&v, sizeof v); }
  void operator()(std::uint64_t v) { bytes(&v, sizeof v); }
};

/// The hash of everything the scheduler computed for a run.
std::uint64_t timeline_hash(const core_state& nc) {
  hasher h;
  const auto& s = nc.timeline();
  for (const timing::timed_instruction& t : s.timed()) {
    h(t.start_ns), h(t.end_ns), h(t.done_ns), h(t.cycles), h(t.stall_ns), h(t.rate);
    h(std::uint64_t(t.cause)), h(std::uint64_t(t.static_overhead)), h(std::uint64_t(t.stream));
    h(std::uint64_t(t.first_span)), h(std::uint64_t(t.span_count));
    h(std::uint64_t(t.packets)), h(std::uint64_t(t.packet_bytes)), h(std::uint64_t(t.bytes));
  }
  for (const timing::dma_span& sp : s.spans()) h(std::uint64_t(sp.engine)), h(std::uint64_t(sp.packets)), h(sp.start_ns), h(sp.end_ns);
  for (const timing::occupancy_sample& o : s.occupancy()) h(o.time_ns), h(std::uint64_t(o.sbuf_bytes)), h(std::uint64_t(o.psum_bytes));
  h(s.total_ns());
  return h.h;
}

struct golden_run {
  const char* name;
  std::size_t m, k, n, bufs;
  std::size_t instructions;
  std::uint64_t hash;
};

template <class M>
std::pair<std::size_t, std::uint64_t> run_tiled(const golden_run& g, bool throttling = false) {
  core<M> nc{{.functional = false, .timing = {.tensor_throttling = throttling}}};
  kernels::matmul(nc,
                  {.a = hbm<const bf16>::shape_only({g.k, g.m}), .b = hbm<const bf16>::shape_only({g.k, g.n}),
                   .c = hbm<float>::shape_only({g.m, g.n})},
                  {.variant = kernels::matmul_variant::tiled, .bufs = g.bufs});
  return {nc.records().size(), timeline_hash(nc)};
}

// Recorded before the speed work (see the file comment).
constexpr golden_run tutorial_trn2{"tutorial_trn2", 4096, 8192, 8192, 2, 99328, 0x9e89e3f031ae2dddull};
constexpr golden_run tails_trn1{"tails_trn1", 1000, 3000, 1500, 1, 1776, 0xf89d83afe084a127ull};
constexpr golden_run throttled_trn3{"throttled_trn3", 700, 2100, 2600, 3, 1908, 0xe1a57672d992435full};

TEST(SystolicSpeed, GoldenPrint) {
  if (!std::getenv("TRELLIS_PRINT_GOLDEN")) GTEST_SKIP() << "set TRELLIS_PRINT_GOLDEN=1 to print the golden hashes";
  auto show = [](const golden_run& g, std::pair<std::size_t, std::uint64_t> r) {
    std::printf("%s: %zu instructions, hash 0x%016llx\n", g.name, r.first, static_cast<unsigned long long>(r.second));
  };
  show(tutorial_trn2, run_tiled<trn2>(tutorial_trn2));
  show(tails_trn1, run_tiled<trn1>(tails_trn1));
  show(throttled_trn3, run_tiled<trn3>(throttled_trn3, true));
}

TEST(SystolicSpeed, TimelinesMatchTheRecordedGoldenHashes) {
  for (const auto& [g, r] : {std::pair{tutorial_trn2, run_tiled<trn2>(tutorial_trn2)},
                             std::pair{tails_trn1, run_tiled<trn1>(tails_trn1)},
                             std::pair{throttled_trn3, run_tiled<trn3>(throttled_trn3, true)}}) {
    SCOPED_TRACE(g.name);
    EXPECT_EQ(r.first, g.instructions);
    EXPECT_EQ(r.second, g.hash);
  }
}

/// The access tracker before the index: one flat list of entries, scanned in recording order.
class flat_access_tracker {
 public:
  timing::constraint ready(const timing::footprint& f, bool write, std::uint32_t stream, std::uint64_t previous) const {
    timing::constraint c;
    for (const entry& e : entries_) {
      if (!(e.write || write) || !e.where.overlaps(f)) continue;
      const double t = e.stream == stream ? e.same_ns : e.other_ns;
      if (write) {
        c.raise(t, timing::stall_cause::buffer);
      } else {
        c.raise(t, e.from_dma ? timing::stall_cause::dma : timing::stall_cause::engine);
        if (e.stream == stream && e.instruction == previous) c.serial = true;
      }
    }
    return c;
  }
  void record(const timing::footprint& f, bool write, std::uint32_t stream, bool from_dma, std::uint64_t instruction,
              double other_ns, double same_ns) {
    std::erase_if(entries_, [&](const entry& e) {
      return f.covers(e.where) && (write || (!e.write && e.other_ns <= other_ns && e.same_ns <= same_ns));
    });
    entries_.push_back({f, write, from_dma, stream, instruction, other_ns, same_ns});
  }
  std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct entry {
    timing::footprint where;
    bool write, from_dma;
    std::uint32_t stream;
    std::uint64_t instruction;
    double other_ns, same_ns;
  };
  std::vector<entry> entries_;
};

/// Random footprints that overlap often: small on-chip rectangles, and HBM rows of a few strides
/// (including single segments and rows longer than their stride) in one small address range.
timing::footprint random_footprint(std::mt19937_64& rng) {
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  timing::footprint f;
  const std::uint64_t kind = pick(4);
  if (kind < 2) {
    f.space = kind == 0 ? memory_space::sbuf : memory_space::psum;
    f.p0 = pick(4) * 32;
    f.p1 = f.p0 + 1 + pick(128 - f.p0);
    f.b0 = pick(64) * 64 + pick(2) * pick(64);
    f.b1 = f.b0 + 1 + pick(kind == 0 ? 8192 : 2048);
    return f;
  }
  constexpr std::int64_t strides[] = {0, 512, 1024, 1536, 4096};
  f.space = memory_space::hbm;
  f.row_stride = strides[pick(5)];
  f.rows = f.row_stride == 0 ? 1 : std::int64_t(1 + pick(16));
  f.span = std::int64_t(1 + pick(pick(8) == 0 ? 3000 : 700));
  f.address = std::int64_t((std::uint64_t{1} << 40) + pick(64) * 256 + pick(2) * pick(256));
  f.b0 = std::uint64_t(f.address);
  f.b1 = f.b0 + std::uint64_t((f.rows - 1) * f.row_stride + f.span);
  if (pick(40) == 0) {  // now and then a whole-range access: wide in the index
    f.rows = f.row_stride == 0 ? 1 : 40;
    f.span = f.row_stride == 0 ? 60000 : f.row_stride;
    f.b1 = f.b0 + std::uint64_t((f.rows - 1) * f.row_stride + f.span);
  }
  return f;
}

TEST(SystolicSpeed, IndexedTrackerAnswersLikeTheFlatList) {
  std::mt19937_64 rng(20240607);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  timing::access_tracker fast;
  flat_access_tracker flat;
  std::vector<std::uint64_t> last(6, ~std::uint64_t{0});
  for (std::uint64_t i = 0; i < 12000; ++i) {
    const timing::footprint f = random_footprint(rng);
    const auto stream = std::uint32_t(pick(6));
    for (bool write : {false, true}) {
      const timing::constraint a = fast.ready(f, write, stream, last[stream]);
      const timing::constraint b = flat.ready(f, write, stream, last[stream]);
      ASSERT_EQ(a.time_ns, b.time_ns) << "step " << i;
      ASSERT_EQ(a.cause, b.cause) << "step " << i;
      ASSERT_EQ(a.serial, b.serial) << "step " << i;
    }
    // Coarse times (many ties, so the first-recorded rule for the cause is exercised), same ≤ other.
    const double same = double(pick(64)), other = same + double(pick(3));
    const bool write = pick(2) == 0;
    fast.record(f, write, stream, stream >= 4, i, other, same);
    flat.record(f, write, stream, stream >= 4, i, other, same);
    last[stream] = i;
    ASSERT_EQ(fast.size(), flat.size()) << "step " << i;
  }
}

TEST(SystolicSpeed, TrackerAnswersLikeTheFlatListInstructionByInstruction) {
  // The scheduler's way: every operand of an instruction is located and queried (its candidates
  // collected once), then every operand is recorded, reusing the candidates while their cells did not
  // change. Instructions of 1-5 operands, often on the same or overlapping footprints.
  std::mt19937_64 rng(977);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  timing::access_tracker fast;
  flat_access_tracker flat;
  std::vector<std::uint64_t> last(6, ~std::uint64_t{0});
  struct access {
    timing::footprint f;
    bool write;
    timing::access_tracker::location at;
    timing::access_tracker::candidate_set seen;
  };
  std::vector<access> ops(5);
  for (std::uint64_t i = 0; i < 8000; ++i) {
    const std::size_t n = 1 + pick(5);
    const auto stream = std::uint32_t(pick(6));
    for (std::size_t k = 0; k < n; ++k) {
      ops[k].f = k > 0 && pick(3) == 0 ? ops[pick(k)].f : random_footprint(rng);  // repeats, as matmul's dst
      ops[k].write = pick(2) == 0;
    }
    for (std::size_t k = 0; k < n; ++k) {
      fast.locate(ops[k].f, ops[k].at);
      const timing::constraint a = fast.ready(ops[k].f, ops[k].at, ops[k].write, stream, last[stream], ops[k].seen);
      const timing::constraint b = flat.ready(ops[k].f, ops[k].write, stream, last[stream]);
      ASSERT_EQ(a.time_ns, b.time_ns) << "instruction " << i << ", operand " << k;
      ASSERT_EQ(a.cause, b.cause) << "instruction " << i << ", operand " << k;
      ASSERT_EQ(a.serial, b.serial) << "instruction " << i << ", operand " << k;
    }
    const double same = double(pick(64));
    for (std::size_t k = 0; k < n; ++k) {
      const double other = ops[k].write ? same + double(pick(3)) : same;
      fast.record(ops[k].f, ops[k].at, ops[k].seen, ops[k].write, stream, stream >= 4, i, other, same);
      flat.record(ops[k].f, ops[k].write, stream, stream >= 4, i, other, same);
      ASSERT_EQ(fast.size(), flat.size()) << "instruction " << i << ", operand " << k;
    }
    last[stream] = i;
  }
}

TEST(SystolicSpeed, AReadOfWhatTheInstructionWritesChangesNoAnswer) {
  // The scheduler neither queries (but for `serial`) nor records a read of exactly a footprint an earlier
  // operand of the same instruction writes (an accumulating matmul's PSUM tile). Against the flat list,
  // which does both: the instruction's constraint and every later answer must be the same. (Reads listed
  // before their write are generated too; they are tracked, as they can name the cause of a tie.)
  std::mt19937_64 rng(5150);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  timing::access_tracker fast;
  flat_access_tracker flat;
  std::vector<std::uint64_t> last(6, ~std::uint64_t{0});
  struct access {
    timing::footprint f;
    bool write = false, redundant = false;
  };
  std::vector<access> ops;
  int redundant_seen = 0;
  for (std::uint64_t i = 0; i < 8000; ++i) {
    ops.clear();
    const std::size_t n = 1 + pick(3);
    for (std::size_t k = 0; k < n; ++k) ops.push_back({random_footprint(rng), pick(2) == 0, false});
    if (pick(2) == 0) {  // a read of a written footprint, before or after the write
      const std::size_t w = pick(n);
      ops[w].write = true;
      const std::size_t at = pick(2) == 0 ? w : w + 1;
      ops.insert(ops.begin() + std::ptrdiff_t(at), access{ops[w].f, false, false});
    }
    for (std::size_t k = 0; k < ops.size(); ++k)  // as the scheduler decides: a write of it comes earlier
      for (std::size_t j = 0; j < k; ++j)
        if (!ops[k].write && ops[j].write && ops[j].f.same_as(ops[k].f)) ops[k].redundant = true;
    const auto stream = std::uint32_t(pick(6));
    const bool dma = stream >= 4;
    timing::constraint a, b;
    for (const access& o : ops) {
      const timing::constraint d = flat.ready(o.f, o.write, stream, last[stream]);
      b.raise(d.time_ns, d.cause);
      b.serial = b.serial || d.serial;
      const timing::constraint e = fast.ready(o.f, o.write, stream, last[stream]);
      if (!o.redundant) a.raise(e.time_ns, e.cause);
      a.serial = a.serial || e.serial;
      redundant_seen += o.redundant;
    }
    ASSERT_EQ(a.time_ns, b.time_ns) << "instruction " << i;
    ASSERT_EQ(a.cause, b.cause) << "instruction " << i;
    ASSERT_EQ(a.serial, b.serial) << "instruction " << i;
    const double end = double(pick(64)), done = end + double(pick(3));
    for (const access& o : ops) {
      const double other = o.write ? done : end, same = dma ? other : end;
      flat.record(o.f, o.write, stream, dma, i, other, same);
      if (!o.redundant) fast.record(o.f, o.write, stream, dma, i, other, same);
    }
    last[stream] = i;
  }
  EXPECT_GT(redundant_seen, 500);
}

/// The DMA engine assignment before the ring: a scan for the engine that frees first, per packet group.
double flat_assign(std::vector<double>& engine_free, double start, std::size_t packets, std::size_t group, double per_packet,
                   std::vector<timing::dma_span>& spans) {
  const std::size_t first_span = spans.size();
  double end = start;
  for (std::size_t done = 0; done < packets; done += group) {
    const std::size_t n = std::min(group, packets - done);
    const auto e = std::min_element(engine_free.begin(), engine_free.end());
    const double s = std::max(start, *e);
    *e = s + per_packet * double(n);
    end = std::max(end, *e);
    const auto id = static_cast<std::uint16_t>(e - engine_free.begin());
    auto span = std::find_if(spans.begin() + std::ptrdiff_t(first_span), spans.end(),
                             [&](const timing::dma_span& x) { return x.engine == id; });
    if (span == spans.end()) spans.push_back({id, std::uint32_t(n), s, *e});
    else {
      span->packets += std::uint32_t(n);
      span->end_ns = *e;
    }
  }
  return end;
}

TEST(SystolicSpeed, DmaEngineRingAssignsLikeTheScan) {
  std::mt19937_64 rng(7);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  for (std::size_t engines : {1u, 3u, 16u, 40u}) {
    SCOPED_TRACE(engines);
    timing::dma_engine_pool pool(engines);
    std::vector<double> flat(engines, 0.0);
    std::vector<timing::dma_span> a, b;
    double clock = 0;
    for (int i = 0; i < 4000; ++i) {
      a.clear();
      b.clear();
      clock += double(pick(4)) * 37.5;                                 // sometimes before the engines free up
      const double per_packet = pick(5) == 0 ? 0.1 : 16.0 + double(pick(3)) * 0.3;  // 0.1: sums that round
      const std::size_t packets = pick(6) == 0 ? 0 : 1 + pick(pick(2) == 0 ? 40 : 300);
      const std::size_t group = 1 + (pick(4) == 0 ? pick(5) : 0);
      const double x = pool.assign(clock, packets, group, per_packet, a);
      const double y = flat_assign(flat, clock, packets, group, per_packet, b);
      ASSERT_EQ(x, y) << "transfer " << i;
      ASSERT_EQ(pool.free_at(), flat) << "transfer " << i;
      ASSERT_EQ(a.size(), b.size()) << "transfer " << i;
      for (std::size_t k = 0; k < a.size(); ++k) {
        ASSERT_EQ(a[k].engine, b[k].engine) << "transfer " << i;
        ASSERT_EQ(a[k].packets, b[k].packets) << "transfer " << i;
        ASSERT_EQ(a[k].start_ns, b[k].start_ns) << "transfer " << i;
        ASSERT_EQ(a[k].end_ns, b[k].end_ns) << "transfer " << i;
      }
    }
  }
}

TEST(SystolicSpeed, DmaEnginePoolWithoutSpansAssignsLikeWithSpans) {
  // Timing keeps no spans (scheduler::spans() replays them): the span-free assign, with its shortcut
  // for whole rounds on engines free together, must leave the engines exactly as the spans path does.
  std::mt19937_64 rng(11);
  auto pick = [&](std::uint64_t n) { return std::uniform_int_distribution<std::uint64_t>(0, n - 1)(rng); };
  for (std::size_t engines : {1u, 3u, 16u, 40u}) {
    SCOPED_TRACE(engines);
    timing::dma_engine_pool with(engines), without(engines);
    std::vector<timing::dma_span> spans;
    double clock = 0;
    for (int i = 0; i < 4000; ++i) {
      spans.clear();
      clock += double(pick(4)) * 37.5;
      const double per_packet = pick(5) == 0 ? 0.1 : 16.0 + double(pick(3)) * 0.3;
      const std::size_t packets = pick(3) == 0 ? engines * (1 + pick(9)) : pick(6) == 0 ? 0 : 1 + pick(300);
      const std::size_t group = 1 + (pick(4) == 0 ? pick(5) : 0);
      std::uint32_t count = 0;
      const double x = with.assign(clock, packets, group, per_packet, spans);
      const double y = without.assign(clock, packets, group, per_packet, count);
      ASSERT_EQ(x, y) << "transfer " << i;
      ASSERT_EQ(spans.size(), count) << "transfer " << i;
      ASSERT_EQ(with.free_at(), without.free_at()) << "transfer " << i;
      ASSERT_EQ(with.packets_carried(), without.packets_carried()) << "transfer " << i;
      ASSERT_EQ(with.busy_ns(), without.busy_ns()) << "transfer " << i;
    }
  }
}

TEST(SystolicSpeed, ReportSumsTheSpansItNoLongerReads) {
  // report() takes each DMA engine's packets and busy time from the scheduler's running sums; they must
  // be the sums over spans() (replayed), in the same order.
  core<trn2> nc{{.functional = false}};
  kernels::matmul(nc,
                  {.a = hbm<const bf16>::shape_only({1000, 300}), .b = hbm<const bf16>::shape_only({1000, 700}),
                   .c = hbm<float>::shape_only({300, 700})},
                  {.variant = kernels::matmul_variant::tiled, .bufs = 2});
  const timing::report r = nc.report();
  std::vector<double> busy(nc.spec().dma.engines, 0.0);
  std::vector<std::size_t> packets(nc.spec().dma.engines, 0);
  const auto& s = nc.timeline();
  for (const timing::timed_instruction& t : s.timed())
    for (std::uint32_t k = 0; k < t.span_count; ++k) {
      const timing::dma_span& sp = s.spans()[t.first_span + k];
      busy[sp.engine] += sp.end_ns - sp.start_ns;
      packets[sp.engine] += sp.packets;
    }
  ASSERT_EQ(r.dma_engines.size(), busy.size());
  for (std::size_t e = 0; e < busy.size(); ++e) {
    EXPECT_EQ(r.dma_engines[e].busy_ns, busy[e]) << "engine " << e;
    EXPECT_EQ(r.dma_engines[e].instructions, packets[e]) << "engine " << e;
  }
}

}  // namespace
