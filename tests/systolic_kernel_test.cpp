// The tiled matmul kernel (kernels/matmul.hpp, variant `tiled`: DESIGN.md §4's sketch, with tails),
// compared with trellis::reference within the bound its bf16 numerics imply, and run again timing-only.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <trellis/reference.hpp>
#include <trellis/systolic/kernels/matmul.hpp>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using trellis::bf16;

/// Step 1 of the NKI tutorial with `bufs` rotating buffers per input tile.
void matmul_tiled(core_state& nc, hbm<const bf16> lhsT, hbm<const bf16> rhs, hbm<float> out, std::size_t bufs) {
  namespace kernels = trellis::systolic::kernels;
  kernels::matmul(nc, {.a = lhsT, .b = rhs, .c = out}, {.variant = kernels::matmul_variant::tiled, .bufs = bufs});
}

TEST(SystolicKernel, TiledMatmulMatchesReferenceWithinBf16Bound) {
  const std::size_t k_size = 300, m_size = 200, n_size = 700;  // tails in every dimension
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<bf16> lhsT(k_size * m_size), rhs(k_size * n_size);
  for (auto& v : lhsT) v = bf16(dist(rng));  // inputs rounded to bf16 first
  for (auto& v : rhs) v = bf16(dist(rng));
  std::vector<float> out(m_size * n_size, -1.0f), expected(m_size * n_size);

  core<trn2> nc;
  matmul_tiled(nc, hbm<const bf16>{{lhsT.data(), {k_size, m_size}}}, hbm<const bf16>{{rhs.data(), {k_size, n_size}}},
               hbm<float>{{out.data(), {m_size, n_size}}}, 2);
  trellis::matmul(trellis::reference{}, trellis::tensor_view<const bf16, 2>{lhsT.data(), {k_size, m_size}},
                  trellis::tensor_view<const bf16, 2>{rhs.data(), {k_size, n_size}},
                  trellis::tensor_view<float, 2>{expected.data(), {m_size, n_size}}, {.transpose_a = true});

  // Products of bf16 values are exact in fp32, so only fp32 accumulation error remains: a sum of K terms
  // accumulated in fp32 (within and across matmuls) is within (K − 1)·2^-24·Σ|a||b| (+ its square terms).
  for (std::size_t i = 0; i < m_size; ++i)
    for (std::size_t j = 0; j < n_size; ++j) {
      double abs_sum = 0.0;
      for (std::size_t p = 0; p < k_size; ++p)
        abs_sum += std::fabs(double(float(lhsT[p * m_size + i])) * double(float(rhs[p * n_size + j])));
      const double bound = 1.01 * double(k_size) * 0x1p-24 * abs_sum;
      ASSERT_NEAR(out[i * n_size + j], expected[i * n_size + j], bound) << i << "," << j;
    }

  // 2 × 2 output tiles, 3 K tiles each: 2 loads + 1 matmul per K tile, then 1 eviction and 1 store.
  EXPECT_EQ(nc.records().size(), 4u * (3 * 3 + 2));
  EXPECT_EQ(nc.sbuf.bytes_in_use(), 0u);
  EXPECT_EQ(nc.psum.bytes_in_use(), 0u);
  EXPECT_GT(nc.sbuf.peak_bytes(), 0u);
}

TEST(SystolicKernel, TiledMatmulRunsTimingOnlyOnShapes) {
  core<trn2> nc{{.functional = false}};
  matmul_tiled(nc, hbm<const bf16>::shape_only({1024, 512}), hbm<const bf16>::shape_only({1024, 2048}),
               hbm<float>::shape_only({512, 2048}), 3);
  EXPECT_EQ(nc.records().size(), 4u * 4 * (8 * 3 + 2));
  std::size_t matmuls = 0;
  for (const auto& r : nc.records()) matmuls += r.op == opcode::nc_matmul;
  EXPECT_EQ(matmuls, 4u * 4 * 8);
}

}  // namespace
