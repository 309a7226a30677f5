// Rules added after part 1: operands line up lane by lane, multi-dimensional free-axis access patterns,
// the core's HBM capacity, and the DMA transpose of 2-byte data (v3+).

#include <gtest/gtest.h>

#include <vector>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using namespace trellis::systolic::isa;
using trellis::bf16;

TEST(SystolicRules, EngineOperandsLineUpLaneByLane) {
  core<trn2> nc;
  auto a = nc.sbuf.tile<float>(64, 16);
  auto y = nc.sbuf.tile<float>(128, 16);
  auto col = nc.sbuf.tile<float>(128, 1);
  memset(nc, a, 1.0f);
  memset(nc, col, 2.0f);
  EXPECT_EQ(error_of([&] { tensor_copy(nc, y.rows_range(64, 64), a); }),
            "tensor_copy: src uses partitions [0, 64) but dst uses [64, 128) on trn2 (engines work lane by lane: every "
            "operand must use the same partitions)");
  EXPECT_EQ(error_of([&] { activation(nc, y.rows_range(0, 64), a, activation_function::exp, {.bias = col.rows_range(64, 64)}); }),
            "activation: bias uses partitions [64, 128) but dst uses [0, 64) on trn2 (engines work lane by lane: every "
            "operand must use the same partitions)");
  EXPECT_EQ(error_of([&] { tensor_tensor(nc, y.rows_range(0, 64), a, y.rows_range(64, 64), alu_op::add); }),
            "tensor_tensor: in1 uses partitions [64, 128) but dst uses [0, 64) on trn2 (engines work lane by lane: every "
            "operand must use the same partitions)");
  EXPECT_EQ(error_of([&] { tensor_reduce(nc, col.rows_range(64, 64), a, alu_op::add); }).rfind("tensor_reduce: src uses partitions [0, 64) but dst uses [64, 128)", 0), 0u);
  EXPECT_EQ(error_of([&] { tensor_scalar(nc, y.rows_range(0, 64), a, alu_op::add, col.rows_range(64, 64)); }).rfind("tensor_scalar: operand0 uses partitions [64, 128)", 0), 0u);
  auto s = nc.sbuf.tile<bf16>(128, 64);
  auto acc = nc.psum.tile<float>(32, 64);
  memset(nc, s, 1.0f);
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, s.sub(0, 32, 0, 32), s.sub(32, 32, 0, 64)); }),
            "nc_matmul: stationary uses partitions [0, 32) but moving uses [32, 64) on trn2 (both feed the same PE rows: "
            "the contraction partitions must line up)");
  // Same partitions on both sides is fine, at any allowed start; the Tensor Engine's PSUM output is M-indexed.
  EXPECT_NO_THROW(tensor_copy(nc, y.rows_range(64, 64), y.rows_range(64, 64)));
  EXPECT_NO_THROW(nc_matmul(nc, acc, s.sub(32, 32, 0, 32), s.sub(32, 32, 0, 64)));
  // DMA moves between any partitions.
  EXPECT_NO_THROW(dma_copy(nc, y.rows_range(64, 64), a));
}

TEST(SystolicRules, MultiDimensionalFreePatterns) {
  core<trn2> nc;
  std::vector<float> host(4 * 24);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = float(i);
  auto x = upload<float>(nc, host, 4, 24);
  // [4, 24] seen as 2 × 3 × 4 (strides 12, 4, 1): the identity pattern, contiguous.
  const region same = x.free_pattern({{2, 12}, {3, 4}, {4, 1}});
  EXPECT_EQ(same.cols, 24u);
  EXPECT_TRUE(same.rows_contiguous());
  // Every second group of 4: columns 0..3, 8..11, 16..19 — a 2-D pattern, 3 runs of 16 bytes.
  const region groups = x.free_pattern({{3, 8}, {4, 1}});
  EXPECT_EQ(groups.cols, 12u);
  EXPECT_EQ(groups.run_elements(), 4u);
  auto y = nc.sbuf.tile<float>(4, 12);
  tensor_copy(nc, y, groups);
  for (std::size_t p = 0; p < 4; ++p)
    for (std::size_t f = 0; f < 12; ++f) ASSERT_EQ(y.peek(p, f), host[p * 24 + (f / 4) * 8 + f % 4]) << p << "," << f;
  EXPECT_EQ(nc.records().back().operands[1].free_rank, 2u);
  EXPECT_EQ(nc.records().back().operands[1].run_bytes, 16u);
  // A 4-D pattern that transposes a 4 × 6 block of each partition: column (j, i) ← (i, j).
  auto t = nc.sbuf.tile<float>(4, 24);
  tensor_copy(nc, t, x.free_pattern({{1, 0}, {1, 0}, {6, 1}, {4, 6}}));
  EXPECT_EQ(t.peek(1, 1 * 4 + 2), host[1 * 24 + 2 * 6 + 1]);
  // Rules.
  EXPECT_EQ(error_of([&] { (void)x.free_pattern({{1, 0}, {1, 0}, {2, 6}, {2, 2}, {2, 1}}); }),
            "region.free_pattern: 5 free-axis dimensions exceed 4 on trn2 (free-axis access patterns up to 4-D)");
  EXPECT_EQ(error_of([&] { (void)x.free_pattern({{4, 8}, {4, 1}}); }),
            "region.free_pattern: the pattern reaches column 27 of a region with 24 columns");
  EXPECT_EQ(error_of([&] { (void)groups.sub(0, 4, 1, 2); }),
            "region.sub: the columns of a 2-D free pattern cannot be sliced (slice the region before free_pattern)");
  EXPECT_NO_THROW((void)groups.rows_range(0, 2));
}

TEST(SystolicRules, HbmCapacityPerCore) {
  core<trn1> nc{{.functional = false}};
  EXPECT_EQ(nc.hbm.capacity_bytes(), 16ull << 30);  // 32 GiB per chip / 2 cores
  {
    auto a = nc.hbm.tensor<bf16>({std::size_t{1} << 16, std::size_t{1} << 16});  // 8 GiB
    EXPECT_FALSE(a.view().has_memory());
    auto b = nc.hbm.tensor<float>({std::size_t{1} << 15, std::size_t{1} << 15});  // 4 GiB
    EXPECT_EQ(nc.hbm.bytes_in_use(), 12ull << 30);
    const std::string message = error_of([&] { nc.hbm.tensor<float>({std::size_t{1} << 16, std::size_t{1} << 15}); });
    EXPECT_EQ(message.rfind("hbm.tensor: 8589934592 bytes exceed the HBM share of a core on trn1 (17179869184 bytes = "
                            "chip HBM / 2 cores; 12884901888 bytes in use; allocated at ", 0), 0u) << message;
    EXPECT_NE(message.find("systolic_rules_test.cpp:"), std::string::npos);
  }
  EXPECT_EQ(nc.hbm.bytes_in_use(), 0u);
  EXPECT_EQ(nc.hbm.peak_bytes(), 12ull << 30);
  core<trn2> trn2_core{{.functional = false}};
  EXPECT_EQ(trn2_core.hbm.capacity_bytes(), 12ull << 30);  // 96 GiB / 8 cores
  // Functional cores hand out zeroed host memory the kernel can read by DMA.
  core<trn2> f;
  auto t = f.hbm.tensor<float>({4, 8});
  for (std::size_t i = 0; i < 32; ++i) t.data()[i] = float(i);
  auto s = f.sbuf.tile<float>(4, 8);
  dma_copy(f, s, t);
  EXPECT_EQ(s.peek(3, 7), 31.0f);
}

TEST(SystolicRules, DmaTransposeOfTwoByteData) {
  std::vector<float> host(64 * 48);
  for (std::size_t i = 0; i < host.size(); ++i) host[i] = float(i % 251);
  std::vector<bf16> src(host.begin(), host.end());
  core<trn2> nc;
  hbm<const bf16> in{{src.data(), {64, 48}}};  // [P, F] in HBM
  auto t = nc.sbuf.tile<bf16>(48, 64);         // [F, P] in SBUF
  dma_copy(nc, t, in, {.transpose = true});
  for (std::size_t p = 0; p < 64; ++p)
    for (std::size_t f = 0; f < 48; ++f) ASSERT_EQ(t.peek(f, p), host[p * 48 + f]);
  EXPECT_TRUE(nc.records().back().attributes.transpose);
  auto wrong = nc.sbuf.tile<bf16>(64, 48);
  EXPECT_EQ(error_of([&] { dma_copy(nc, wrong, in, {.transpose = true}); }),
            "dma_copy: dst shape [64, 48] is not the transpose of src shape [64, 48]");
  std::vector<float> f32(64 * 48);
  auto t32 = nc.sbuf.tile<float>(48, 64);
  EXPECT_EQ(error_of([&] { dma_copy(nc, t32, hbm<const float>{{f32.data(), {64, 48}}}, {.transpose = true}); }),
            "dma_copy: a transposing transfer moves 2-byte data of one dtype, not fp32 -> fp32 on trn2");
  std::vector<bf16> out(48 * 64);
  EXPECT_EQ(error_of([&] { dma_copy(nc, hbm<bf16>{{out.data(), {64, 48}}}, t, {.transpose = true}); }),
            "dma_copy: a transposing transfer goes HBM -> SBUF, not SBUF -> HBM on trn2");
  core<trn1> v2;
  auto t1 = v2.sbuf.tile<bf16>(48, 64);
  EXPECT_EQ(error_of([&] { dma_copy(v2, t1, in, {.transpose = true}); }),
            "dma_copy: transpose during DMA is not supported on trn1 (NeuronCore-v2; v3+ transposes 2-byte data during "
            "HBM -> SBUF transfers)");
  core<trn3> v4;
  auto t3 = v4.sbuf.tile<bf16>(48, 64);
  EXPECT_NO_THROW(dma_copy(v4, t3, in, {.transpose = true}));
}

}  // namespace
