// A hand-written tiled matmul kernel against the ISA (DESIGN.md §4's matmul_tiled, with tails), compared
// with trellis::reference within the bound its bf16 numerics imply, and run again timing-only.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include <trellis/reference.hpp>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using trellis::bf16;

/// out[M, N] = lhsT[K, M]ᵀ · rhs[K, N]: 128 × 512 PSUM tiles (one bank), accumulated over 128-deep K tiles,
/// evicted by the Vector Engine, stored by DMA. Loads use a pool of `bufs` buffers per operand.
template <class Machine>
void matmul_tiled(core<Machine>& nc, hbm<const bf16> lhsT, hbm<const bf16> rhs, hbm<float> out, std::size_t bufs) {
  using namespace trellis::systolic::isa;
  const std::size_t k_size = lhsT.extent(0), m_size = lhsT.extent(1), n_size = rhs.extent(1);
  constexpr std::size_t tile_m = 128, tile_k = 128, tile_n = 512;
  auto a_pool = nc.sbuf.template pool<bf16>({tile_k, tile_m}, bufs);
  auto b_pool = nc.sbuf.template pool<bf16>({tile_k, tile_n}, bufs);
  for (std::size_t m = 0; m < m_size; m += tile_m)
    for (std::size_t n = 0; n < n_size; n += tile_n) {
      const std::size_t mt = std::min(tile_m, m_size - m), nt = std::min(tile_n, n_size - n);
      auto acc = nc.psum.template tile<float>(mt, nt);  // [mt, nt] fp32: one PSUM bank
      for (std::size_t k = 0; k < k_size; k += tile_k) {
        const std::size_t kt = std::min(tile_k, k_size - k);
        const region a = a_pool.next().sub(0, kt, 0, mt);  // [kt, mt]
        const region b = b_pool.next().sub(0, kt, 0, nt);  // [kt, nt]
        dma_copy(nc, a, lhsT.tile(k, m, kt, mt));
        dma_copy(nc, b, rhs.tile(k, n, kt, nt));
        nc_matmul(nc, acc, /*stationary*/ a, /*moving*/ b, {.accumulate = k > 0});
      }
      auto res = nc.sbuf.template tile<float>(mt, nt);  // [mt, nt]
      tensor_copy(nc, res, acc);
      dma_copy(nc, out.tile(m, n, mt, nt), res);
    }
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
