// The NeuronCore model's foundations: dtypes, machine configs, SBUF/PSUM allocation, pools, NaN sentinels,
// timing-only cores and instruction records.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using trellis::bf16;

// ---- dtypes ----------------------------------------------------------------------------------------------

template <class M>
void expect_exhaustive_round_trip(int bits) {
  for (std::uint32_t b = 0; b < (1u << bits); ++b) {
    const M m = M::from_bits(static_cast<decltype(M{}.bits)>(b));
    const float f = float(m);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(float(M(f)))) << b;
      continue;
    }
    EXPECT_EQ(M(f).bits, b) << "bits " << b << " value " << f;
  }
}

TEST(SystolicDtype, EveryEncodingRoundTrips) {
  expect_exhaustive_round_trip<f16>(16);
  expect_exhaustive_round_trip<f8e4m3>(8);
  expect_exhaustive_round_trip<f8e5m2>(8);
}

/// Brute force: the nearest representable value, ties to the one with an even mantissa.
template <class M>
void expect_nearest_even(int bits, float lo, float hi) {
  std::vector<std::pair<float, std::uint32_t>> values;
  for (std::uint32_t b = 0; b < (1u << bits); ++b) {
    const float f = float(M::from_bits(static_cast<decltype(M{}.bits)>(b)));
    if (std::isfinite(f) && !(f == 0.0f && std::signbit(f))) values.push_back({f, b});
  }
  std::sort(values.begin(), values.end());
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int i = 0; i < 20000; ++i) {
    const float x = dist(rng);
    const auto up = std::lower_bound(values.begin(), values.end(), std::pair{x, 0u},
                                     [](const auto& a, const auto& b) { return a.first < b.first; });
    if (up == values.begin() || up == values.end()) continue;
    const auto down = std::prev(up);
    const double dd = double(x) - double(down->first), du = double(up->first) - double(x);
    float expected = dd < du ? down->first : du < dd ? up->first : ((down->second & 1u) ? up->first : down->first);
    EXPECT_EQ(float(M(x)), expected) << x;
  }
}

TEST(SystolicDtype, RoundsToNearestEven) {
  expect_nearest_even<f16>(16, -70000.0f, 70000.0f);
  expect_nearest_even<f16>(16, -1e-4f, 1e-4f);  // subnormals
  expect_nearest_even<f8e4m3>(8, -450.0f, 450.0f);
  expect_nearest_even<f8e4m3>(8, -0.02f, 0.02f);
  expect_nearest_even<f8e5m2>(8, -60000.0f, 60000.0f);
  expect_nearest_even<f8e5m2>(8, -1e-4f, 1e-4f);
  // Exact ties.
  EXPECT_EQ(float(f16(1.0f + 0x1p-11f)), 1.0f);
  EXPECT_EQ(float(f16(1.0f + 3 * 0x1p-11f)), 1.0f + 0x1p-9f);
  EXPECT_EQ(float(f8e4m3(1.0625f)), 1.0f);
  EXPECT_EQ(float(f8e4m3(1.1875f)), 1.25f);
  EXPECT_EQ(float(f8e5m2(1.125f)), 1.0f);
  EXPECT_EQ(float(f8e5m2(1.375f)), 1.5f);
  EXPECT_EQ(float(f16(0x1p-25f)), 0.0f);  // half the smallest subnormal: tie to even (0)
  EXPECT_EQ(float(f16(3 * 0x1p-26f)), 0x1p-24f);
  EXPECT_EQ(float(f8e4m3(0x1p-9f)), 0x1p-9f);  // smallest e4m3 subnormal
  EXPECT_EQ(float(f8e5m2(0x1p-16f)), 0x1p-16f);  // smallest e5m2 subnormal
}

TEST(SystolicDtype, OverflowSaturationAndSpecials) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(float(f16(65519.0f)), 65504.0f);
  EXPECT_EQ(float(f16(65520.0f)), inf);  // IEEE: the tie past the largest finite value overflows
  EXPECT_EQ(float(f16(-inf)), -inf);
  EXPECT_EQ(float(f8e5m2(61439.0f)), 57344.0f);
  EXPECT_EQ(float(f8e5m2(61440.0f)), inf);
  EXPECT_EQ(float(f8e5m2(inf)), inf);
  EXPECT_EQ(float(f8e4m3(464.0f)), 448.0f);  // e4m3 has no Inf: saturates
  EXPECT_EQ(float(f8e4m3(1e9f)), 448.0f);
  EXPECT_EQ(float(f8e4m3(inf)), 448.0f);
  EXPECT_EQ(float(f8e4m3(-inf)), -448.0f);
  EXPECT_TRUE(std::isnan(float(f16(nan))));
  EXPECT_TRUE(std::isnan(float(f8e4m3(nan))));
  EXPECT_TRUE(std::isnan(float(f8e5m2(nan))));
  EXPECT_TRUE(std::signbit(float(f8e4m3(-0.0f))));
  EXPECT_EQ(round_to(dtype::bf16, 1.0f + 0x1p-8f), 1.0f);
  EXPECT_EQ(round_to(dtype::f32, 1.0f + 0x1p-23f), 1.0f + 0x1p-23f);
}

// ---- machines ----------------------------------------------------------------------------------------------

TEST(SystolicMachine, ConfigsMatchThePublishedFigures) {
  constexpr double mib = 1024.0 * 1024.0;
  EXPECT_EQ(double(trn1::spec.memory.sbuf_bytes()) / mib, 24.0);
  EXPECT_EQ(double(trn2::spec.memory.sbuf_bytes()) / mib, 28.0);
  EXPECT_EQ(double(trn3::spec.memory.sbuf_bytes()) / mib, 32.0);
  for (const machine_spec* s : {&trn1::spec, &trn2::spec, &trn3::spec}) {
    EXPECT_EQ(double(s->memory.psum_bytes()) / mib, 2.0) << s->name;
    // BF16 peak = 128 × 128 MACs × 2 FLOP × clock, within 1 % of the published TFLOPS.
    const double peak = double(s->matmul.pe_rows * s->matmul.pe_columns) * 2.0 * s->clocks.tensor_ghz / 1000.0;
    EXPECT_NEAR(peak, s->rates.tensor_bf16_tflops, 0.01 * s->rates.tensor_bf16_tflops) << s->name;
    EXPECT_NEAR(s->rates.tensor_bf16_tflops / double(s->matmul.fp32_rate_divisor), s->rates.tensor_fp32_tflops, 0.5);
    EXPECT_NEAR(s->rates.tensor_bf16_tflops * double(s->matmul.fp8_rate_multiplier), s->rates.tensor_fp8_tflops, 2.0);
  }
  EXPECT_EQ(trn1::spec.dma.bytes_per_ns(), 272.0);
  EXPECT_EQ(trn2::spec.dma.bytes_per_ns(), 368.0);
  EXPECT_EQ(trn3::spec.dma.bytes_per_ns(), 528.0);
  EXPECT_EQ(trn1::spec.hbm.bytes_per_ns_per_core(), 410.0);
  EXPECT_FALSE(trn1::spec.provisional);
  EXPECT_FALSE(trn2::spec.provisional);
  EXPECT_TRUE(trn3::spec.provisional);
  EXPECT_EQ(trn2::spec.matmul.moving_free_max_fp32_out, 512u);
  EXPECT_EQ(trn3::spec.matmul.moving_free_max_fp32_out, 4096u);
}

struct big_sbuf {  // a user's what-if machine: trn2 with twice the SBUF
  static constexpr machine_spec spec = [] {
    machine_spec s = trn2::spec;
    s.name = "big_sbuf";
    s.memory.sbuf_bytes_per_partition *= 2;
    return s;
  }();
};
struct broken {  // 64 partitions: the partition-start rules assume 128
  static constexpr machine_spec spec = [] {
    machine_spec s = trn2::spec;
    s.memory.partitions = 64;
    return s;
  }();
};
static_assert(machine<big_sbuf>);
static_assert(!machine<broken>);
static_assert(!machine<int>);

TEST(SystolicMachine, UserDefinedMachine) {
  core<big_sbuf> nc;
  auto t = nc.sbuf.tile<float>(128, 100000);  // 400 000 bytes per partition: more than any real core has
  EXPECT_EQ(t.free_size(), 100000u);
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(128, 20000); }).find("out of SBUF on big_sbuf"), 11u);
}

// ---- SBUF and PSUM allocation ------------------------------------------------------------------------------

TEST(SystolicMemory, CapacityExhaustionAndReuse) {
  core<trn2> nc;
  const std::size_t all = trn2::spec.memory.sbuf_bytes_per_partition / 4;  // 57344 fp32 per partition
  {
    auto full = nc.sbuf.tile<float>(128, all);
    EXPECT_EQ(nc.sbuf.bytes_in_use(), nc.sbuf.capacity_bytes());
    EXPECT_EQ(error_of([&] { nc.sbuf.tile<bf16>(1, 1); }),
              "sbuf.tile: out of SBUF on trn2: no room for [1, 1] bf16 (2 bytes per partition); 1 live tiles hold "
              "29360128 of 29360128 bytes");
    EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(128, all + 1); }),
              "sbuf.tile: 229380 bytes per partition ([128, 57345] fp32) exceed the 229376 bytes of a partition on trn2");
  }
  EXPECT_EQ(nc.sbuf.bytes_in_use(), 0u);  // the tile left scope
  EXPECT_EQ(nc.sbuf.peak_bytes(), nc.sbuf.capacity_bytes());
  auto again = nc.sbuf.tile<float>(128, all);  // the space is reused
  EXPECT_EQ(again.placement_info().byte_offset, 0u);
  again.reset();
  EXPECT_EQ(nc.sbuf.live().size(), 0u);
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(129, 1); }), "sbuf.tile: partition count 129 of [129, 1] fp32 is outside 1..128 on trn2");
}

TEST(SystolicMemory, FirstFitPacksTiles) {
  core<trn2> nc;
  auto a = nc.sbuf.tile<float>(128, 100);  // bytes [0, 400)
  auto b = nc.sbuf.tile<bf16>(128, 10);    // [400, 420)
  EXPECT_EQ(b.placement_info().byte_offset, 400u);
  a.reset();
  auto c = nc.sbuf.tile<float>(128, 50);   // fits in the hole a left
  EXPECT_EQ(c.placement_info().byte_offset, 0u);
  // Narrow tiles use the partition quadrants side by side.
  auto q0 = nc.sbuf.tile<float>(32, 8, {.byte_offset = 4096});
  auto q1 = nc.sbuf.tile<float>(32, 8, {.byte_offset = 4096});
  auto h = nc.sbuf.tile<float>(64, 8, {.byte_offset = 4096});
  EXPECT_EQ(q0.placement_info().partition_start, 0u);
  EXPECT_EQ(q1.placement_info().partition_start, 32u);
  EXPECT_EQ(h.placement_info().partition_start, 64u);
}

TEST(SystolicMemory, PsumBanks) {
  core<trn2> nc;
  EXPECT_EQ(error_of([&] { nc.psum.tile<float>(128, 513); }),
            "psum.tile: 2052 bytes per partition ([128, 513] fp32) exceed one PSUM bank (2048 bytes) on trn2");
  {
    std::vector<tile<float>> banks;
    for (std::size_t i = 0; i < 8; ++i) {
      banks.push_back(nc.psum.tile<float>(128, 512));
      EXPECT_EQ(banks.back().placement_info().byte_offset, i * 2048);
    }
    EXPECT_EQ(error_of([&] { nc.psum.tile<float>(128, 1); }).rfind("psum.tile: out of PSUM on trn2: no room for [128, 1] fp32", 0), 0u);
  }
  auto a = nc.psum.tile<float>(128, 384);  // [0, 1536)
  auto b = nc.psum.tile<float>(128, 384);  // would cross into bank 1 at 1536: goes to bank 1
  EXPECT_EQ(b.placement_info().byte_offset, 2048u);
  auto c = nc.psum.tile<float>(128, 128);  // [1536, 2048) fits bank 0's tail
  EXPECT_EQ(c.placement_info().byte_offset, 1536u);
  auto d = nc.psum.tile<float>(128, 512, {.bank = 5});
  EXPECT_EQ(d.placement_info().byte_offset, 5u * 2048);
  EXPECT_EQ(error_of([&] { nc.psum.tile<float>(128, 512, {.bank = 8}); }), "psum.tile: bank 8 is outside 0..7 on trn2");
  EXPECT_EQ(error_of([&] { nc.psum.tile<float>(128, 512, {.bank = 5}); }).rfind("psum.tile: out of PSUM on trn2", 0), 0u);
  EXPECT_EQ(error_of([&] { nc.psum.tile<float>(128, 512, {.byte_offset = 14336 + 1024}); }),
            "psum.tile: bytes [15360, 17408) exceed the 16384 bytes of a partition on trn2");
  EXPECT_EQ(error_of([&] { nc.psum.tile<float>(128, 256, {.byte_offset = 12288 + 1024 + 512}); }),
            "psum.tile: bytes [13824, 14848) cross a PSUM bank boundary (banks of 2048 bytes) on trn2");
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(128, 4, {.bank = 1}); }),
            "sbuf.tile: SBUF has no banks (placement.bank is for PSUM tiles)");
  // trn3 (provisional): a PSUM tile may span all eight banks, starting at a bank.
  core<trn3> v4;
  auto wide = v4.psum.tile<float>(128, 4096);
  EXPECT_EQ(wide.placement_info().byte_offset, 0u);
}

TEST(SystolicMemory, PartitionStartRules) {
  core<trn2> nc;
  EXPECT_NO_THROW(nc.sbuf.tile<float>(64, 4, {.partition_start = 64}));
  EXPECT_NO_THROW(nc.sbuf.tile<float>(32, 4, {.partition_start = 96}));
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(64, 4, {.partition_start = 32}); }),
            "sbuf.tile: partition start 32 is not allowed for 64 partitions on trn2 (start 0 when P > 64; 0 or 64 "
            "when 32 < P <= 64; 0, 32, 64 or 96 when P <= 32)");
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(96, 4, {.partition_start = 32}); }).rfind("sbuf.tile: partition start 32 is not allowed for 96", 0), 0u);
  EXPECT_EQ(error_of([&] { nc.psum.tile<float>(16, 4, {.partition_start = 16}); }).rfind("psum.tile: partition start 16 is not allowed for 16", 0), 0u);
  // With partitions 0..31 taken over every byte, a 65-partition tile has nowhere to start.
  auto low = nc.sbuf.tile<float>(32, trn2::spec.memory.sbuf_bytes_per_partition / 4);
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(65, 1); }).rfind("sbuf.tile: out of SBUF on trn2", 0), 0u);
  EXPECT_NO_THROW(nc.sbuf.tile<float>(64, 1));  // starts at 64
}

TEST(SystolicMemory, ExplicitPlacement) {
  core<trn2> nc;
  auto a = nc.sbuf.tile<float>(128, 16, {.partition_start = 0, .byte_offset = 1024});
  EXPECT_EQ(a.placement_info().byte_offset, 1024u);
  const std::string message = error_of([&] { nc.sbuf.tile<bf16>(32, 8, {.partition_start = 32, .byte_offset = 1040}); });
  EXPECT_EQ(message.rfind("sbuf.tile: explicit placement of [32, 8] bf16 at partitions [32, 64), bytes [1040, 1056) "
                          "overlaps the live tile allocated at ", 0), 0u) << message;
  EXPECT_NE(message.find("systolic_test.cpp:"), std::string::npos) << message;
  EXPECT_EQ(error_of([&] { nc.sbuf.tile<float>(1, 1, {.byte_offset = 2}); }),
            "sbuf.tile: byte offset 2 is not a multiple of the 4-byte fp32 element");
  auto b = nc.sbuf.tile<bf16>(32, 8, {.partition_start = 32});  // offset chosen: after a
  EXPECT_EQ(b.placement_info().byte_offset, 0u);
}

TEST(SystolicMemory, PoolRotatesBuffers) {
  core<trn2> nc;
  {
    auto loads = nc.sbuf.pool<bf16>({128, 512}, 3);
    EXPECT_EQ(loads.bufs(), 3u);
    EXPECT_EQ(nc.sbuf.bytes_in_use(), 3u * 128 * 1024);
    std::vector<std::size_t> offsets;
    for (int i = 0; i < 6; ++i) offsets.push_back(loads.next().placement_info().byte_offset);
    EXPECT_EQ(offsets, (std::vector<std::size_t>{0, 1024, 2048, 0, 1024, 2048}));
    EXPECT_EQ(&loads.next(), &loads[0]);
  }
  EXPECT_EQ(nc.sbuf.bytes_in_use(), 0u);
  EXPECT_EQ(error_of([&] { nc.sbuf.pool<float>({128, 4}, 0); }), "sbuf.pool: bufs must be at least 1");
}

TEST(SystolicMemory, NanSentinelShowsUninitialisedReads) {
  core<trn2> nc;
  auto f = nc.sbuf.tile<float>(4, 4);
  auto h = nc.sbuf.tile<bf16>(4, 4);
  auto e4 = nc.sbuf.tile<f8e4m3>(4, 4);
  auto e5 = nc.psum.tile<float>(4, 4);
  for (float v : download(f)) EXPECT_TRUE(std::isnan(v));
  for (float v : download(h)) EXPECT_TRUE(std::isnan(v));
  for (float v : download(e4)) EXPECT_TRUE(std::isnan(v));
  for (float v : download(e5)) EXPECT_TRUE(std::isnan(v));
  // A kernel that forgets to write half of a tile gets NaN in exactly that half of its result.
  const std::vector<float> ones(4 * 2, 1.0f);
  isa::dma_copy(nc, f.cols_range(0, 2), hbm<const float>{{ones.data(), {4, 2}}});
  auto out = nc.sbuf.tile<float>(4, 4);
  isa::activation(nc, out, f, activation_function::exp);
  const std::vector<float> r = download(out);
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_EQ(std::isnan(r[i]), i % 4 >= 2) << i;
  // pool.next() refills: the previous round's data is not visible.
  auto p = nc.sbuf.pool<float>({4, 4}, 1);
  isa::memset(nc, p.next(), 0.0f);
  EXPECT_TRUE(std::isnan(p.next().peek(0, 0)));
  // Switched off: fresh memory reads as zero.
  core<trn2> quiet{{.nan_fill = false}};
  EXPECT_EQ(quiet.sbuf.tile<float>(2, 2).peek(1, 1), 0.0f);
}

// ---- timing-only cores and records -------------------------------------------------------------------------

TEST(SystolicCore, TimingOnlyRecordsWithoutMemory) {
  core<trn2> nc{{.functional = false}};
  auto big = hbm<bf16>::shape_only({4096, 4096});
  auto a = nc.sbuf.tile<bf16>(128, 512);
  auto acc = nc.psum.tile<float>(128, 512);
  isa::dma_copy(nc, a, big.tile(128, 512, 128, 512));
  isa::nc_matmul(nc, acc, a.cols_range(0, 128), a);
  ASSERT_EQ(nc.records().size(), 2u);
  EXPECT_EQ(nc.records()[0].operands[1].address, big.address() + (128 * 4096 + 512) * 2);
  EXPECT_EQ(error_of([&] { a.peek(0, 0); }), "tile.peek: the tile has no storage (a timing-only core, or an empty tile)");
  core<trn2> functional;
  auto b = functional.sbuf.tile<bf16>(128, 512);
  EXPECT_EQ(error_of([&] { isa::dma_copy(functional, b, big.tile(0, 0, 128, 512)); }),
            "dma_copy: src has no memory (a shape-only HBM tensor needs a timing-only core)");
}

TEST(SystolicCore, RecordsCaptureEverythingATimerNeeds) {
  core<trn2> nc;
  std::vector<float> host(64 * 256, 1.0f);
  hbm<const float> x{{host.data(), {64, 256}}};
  auto a = nc.sbuf.tile<bf16>(64, 256, {.partition_start = 64, .byte_offset = 512});
  auto acc = nc.psum.tile<float>(32, 256, {.bank = 2});
  const auto line = std::source_location::current().line() + 1;
  isa::dma_copy(nc, a, x);
  isa::dma_copy(nc, a, x, {.queue = 9});
  isa::dma_copy(nc, a, x);
  isa::nc_matmul(nc, acc, a.cols_range(0, 32), a, {.accumulate = false});
  const auto& rec = nc.records();
  ASSERT_EQ(rec.size(), 4u);
  EXPECT_EQ(rec[0].dma_queue, 0);
  EXPECT_EQ(rec[1].dma_queue, 9);
  EXPECT_EQ(rec[2].dma_queue, 1);  // round-robin continues
  EXPECT_EQ(rec[0].where.line(), line);
  EXPECT_NE(std::string(rec[0].where.file_name()).find("systolic_test.cpp"), std::string::npos);
  const operand_record& dst = rec[0].operands[0];
  EXPECT_STREQ(dst.role, "dst");
  EXPECT_TRUE(dst.written);
  EXPECT_EQ(dst.space, memory_space::sbuf);
  EXPECT_EQ(dst.type, dtype::bf16);
  EXPECT_EQ(dst.partition_start, 64u);
  EXPECT_EQ(dst.rows, 64u);
  EXPECT_EQ(dst.byte_begin, 512u);
  EXPECT_EQ(dst.byte_end, 1024u);
  EXPECT_EQ(dst.allocation, a.placement_info().id);
  const operand_record& src = rec[0].operands[1];
  EXPECT_EQ(src.space, memory_space::hbm);
  EXPECT_EQ(src.address, reinterpret_cast<std::uintptr_t>(host.data()));
  EXPECT_EQ(src.row_stride_bytes, 1024);
  EXPECT_EQ(src.bytes(), 64u * 256 * 4);
  const instruction_record& mm = rec[3];
  EXPECT_EQ(mm.unit, engine::tensor);
  EXPECT_EQ(mm.op, opcode::nc_matmul);
  ASSERT_EQ(mm.operands.size(), 3u);
  EXPECT_STREQ(mm.operands[1].role, "stationary");
  EXPECT_EQ(mm.operands[1].cols, 32u);
  EXPECT_EQ(mm.operands[0].space, memory_space::psum);
  EXPECT_EQ(mm.operands[0].byte_begin, 2u * 2048);
  EXPECT_EQ(mm.index, 3u);
  nc.clear_records();
  EXPECT_TRUE(nc.records().empty());
}

}  // namespace
