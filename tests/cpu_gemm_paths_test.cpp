// The CPU GEMM's internal paths, each against the reference with integer-valued inputs (exact in any
// summation order): packed_matrix B, the small-M dot-product path, the brgemm tile entry, and
// bit-identical results across thread counts on shapes that span several blocks.

#include <gtest/gtest.h>

#include <random>
#include <thread>
#include <trellis/cpu/gemm/brgemm.hpp>
#include <vector>

#include "cpu_support.hpp"

namespace {

using namespace trellis_test;
using trellis::bf16;
using trellis::tensor_view;

CPU_TEST_SUITE(CpuGemmPaths);

/// C = bias + A·B + residual with small integers: every path must match the reference bit for bit.
template <class Target, class T, class TC>
void check_packed(std::size_t m, std::size_t n, std::size_t k, bool transpose_b, int threads) {
  SCOPED_TRACE(testing::Message() << "M=" << m << " N=" << n << " K=" << k << " tb=" << transpose_b
                                  << " threads=" << threads << " T=" << (sizeof(T) == 2 ? "bf16" : "f32"));
  std::mt19937 rng(unsigned(m * 131 + n * 7 + k));
  guarded<T, 2> a({m, k}), b(transpose_b ? std::array<std::size_t, 2>{n, k} : std::array<std::size_t, 2>{k, n});
  guarded<float, 1> bias({n});
  guarded<float, 2> residual({m, n});
  a.fill(int_fill{rng, -3, 3});
  b.fill(int_fill{rng, -3, 3});
  bias.fill(int_fill{rng, -8, 8});
  residual.fill(int_fill{rng, -8, 8});
  guarded<TC, 2> c({m, n}, 3), ref({m, n});
  c.fill_value(std::nanf(""));
  const Target target = with_threads<Target>(threads);
  const trellis::basic_packed_matrix<typename Target::provider, T> packed(target, b.cview(), {.transpose_b = transpose_b});
  EXPECT_EQ(packed.k(), k);
  EXPECT_EQ(packed.n(), n);
  EXPECT_GE(packed.bytes(), n * k * 2);
  const trellis::matmul_options opts{
      .epilogue = trellis::epilogue::bias_only(bias.cview()).with_residual(residual.cview())};
  trellis::matmul(target, a.cview(), packed, c.view(), opts);
  trellis::matmul_options ref_opts = opts;
  ref_opts.transpose_b = transpose_b;
  trellis::matmul(trellis::reference{}, a.cview(), b.cview(), ref.view(), ref_opts);
  std::size_t mismatches = 0;
  c.for_each([&](const auto& i) { mismatches += !same_bits(c.at(i), ref.at(i)); });
  EXPECT_EQ(mismatches, 0u);
  EXPECT_EQ(c.damaged_canaries(), 0u);
  // The packed operand is reusable: a second call gives the same bits.
  guarded<TC, 2> again({m, n});
  trellis::matmul(target, a.cview(), packed, again.view(), opts);
  c.for_each([&](const auto& i) { mismatches += !same_bits(c.at(i), again.at(i)); });
  EXPECT_EQ(mismatches, 0u);
}

CPU_TEST(CpuGemmPaths, PackedMatrixExact) {
  for (std::size_t m : {1, 4, 16, 17, 64, 130})
    for (std::size_t n : {1, 63, 65, 300})
      for (std::size_t k : {1, 7, 64, 129})
        for (bool tb : {false, true}) {
          check_packed<Target, float, float>(m, n, k, tb, 1 + int(m % 2));
          check_packed<Target, bf16, float>(m, n, k, tb, 2);
        }
  check_packed<Target, bf16, bf16>(37, 129, 65, true, 2);
}

CPU_TEST(CpuGemmPaths, PackedMatrixRejectsTransposeAndBadShapes) {
  std::vector<float> a(6 * 4, 1.0f), b(4 * 5, 1.0f), c(6 * 5, -7.0f);
  const Target target{};
  const trellis::basic_packed_matrix<typename Target::provider, float> packed(target, tensor_view<const float, 2>{b.data(), {4, 5}});
  const tensor_view<float, 2> cv{c.data(), {6, 5}};
  EXPECT_THROW(trellis::matmul(target, tensor_view<const float, 2>{a.data(), {6, 4}}, packed, cv, {.transpose_b = true}),
               trellis::error);
  try {
    trellis::matmul(target, tensor_view<const float, 2>{a.data(), {4, 6}}, packed, cv);
    ADD_FAILURE() << "expected a shape error";
  } catch (const trellis::error& e) {
    EXPECT_NE(std::string(e.what()).find("matmul: b: expected extent 6"), std::string::npos) << e.what();
  }
  for (float x : c) EXPECT_EQ(x, -7.0f);
}

/// Weights as [N, K] with M ≤ 64 take the dot-product path (fp32 up to 16 rows, bf16 pairs up to 64).
CPU_TEST(CpuGemmPaths, SmallMExactAndThreadInvariant) {
  std::mt19937 rng(5);
  for (std::size_t m : {1, 2, 3, 4, 5, 15, 16, 33, 64})
    for (std::size_t n : {1, 5, 6, 7, 47, 48, 49, 200})
      for (std::size_t k : {1, 15, 16, 17, 31, 32, 33, 300}) {
        SCOPED_TRACE(testing::Message() << "M=" << m << " N=" << n << " K=" << k);
        guarded<bf16, 2> a({m, k}), w({n, k});
        a.fill(int_fill{rng, -4, 4});
        w.fill(int_fill{rng, -4, 4});
        guarded<float, 2> c1({m, n}), c2({m, n}), ref({m, n});
        trellis::matmul(with_threads<Target>(1), a.cview(), w.cview(), c1.view(), {.transpose_b = true});
        trellis::matmul(with_threads<Target>(2), a.cview(), w.cview(), c2.view(), {.transpose_b = true});
        trellis::matmul(trellis::reference{}, a.cview(), w.cview(), ref.view(), {.transpose_b = true});
        std::size_t bad = 0;
        ref.for_each([&](const auto& i) { bad += !same_bits(c1.at(i), ref.at(i)) + !same_bits(c2.at(i), c1.at(i)); });
        EXPECT_EQ(bad, 0u);
      }
}

/// Random fp32 inputs over several K, M and N blocks: 1, 2 and 3 threads give the same bits.
CPU_TEST(CpuGemmPaths, BlockedBitIdenticalAcrossThreads) {
  std::mt19937 rng(11);
  for (auto [m, n, k] : {std::array<std::size_t, 3>{300, 900, 700}, {7, 2000, 1000}, {1000, 33, 50}}) {
    guarded<float, 2> a({m, k}), b({k, n});
    a.fill(uniform_fill{rng});
    b.fill(uniform_fill{rng});
    guarded<float, 2> c1({m, n}), c2({m, n}), c3({m, n});
    trellis::matmul(with_threads<Target>(1), a.cview(), b.cview(), c1.view());
    trellis::matmul(with_threads<Target>(2), a.cview(), b.cview(), c2.view());
    trellis::matmul(with_threads<Target>(3), a.cview(), b.cview(), c3.view());
    std::size_t bad = 0;
    c1.for_each([&](const auto& i) { bad += !same_bits(c1.at(i), c2.at(i)) + !same_bits(c1.at(i), c3.at(i)); });
    EXPECT_EQ(bad, 0u) << m << "x" << n << "x" << k;
  }
}

/// Several user threads calling at once (each with its own OpenMP team) share no scratch: every result
/// equals the single-threaded one, for the blocked path, the small-M path and a packed B.
CPU_TEST(CpuGemmPaths, ConcurrentCallersFromUserThreads) {
  std::mt19937 rng(17);
  guarded<float, 2> a({200, 300}), b({300, 260}), w({260, 300});
  a.fill(uniform_fill{rng});
  b.fill(uniform_fill{rng});
  w.fill(uniform_fill{rng});
  const trellis::basic_packed_matrix<typename Target::provider, float> packed(with_threads<Target>(1), b.cview());
  const tensor_view<const float, 2> a_small{a.data(), {8, 300}, a.strides()};
  guarded<float, 2> want_big({200, 260}), want_small({8, 260});
  trellis::matmul(with_threads<Target>(1), a.cview(), b.cview(), want_big.view());
  trellis::matmul(with_threads<Target>(1), a_small, w.cview(), want_small.view(), {.transpose_b = true});
  constexpr int callers = 4;
  std::vector<guarded<float, 2>> big(callers, guarded<float, 2>({200, 260})), from_packed = big,
                                 small(callers, guarded<float, 2>({8, 260}));
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t)
    threads.emplace_back([&, t] {
      const Target target = with_threads<Target>(2);
      for (int repeat = 0; repeat < 3; ++repeat) {
        trellis::matmul(target, a.cview(), b.cview(), big[std::size_t(t)].view());
        trellis::matmul(target, a.cview(), packed, from_packed[std::size_t(t)].view());
        trellis::matmul(target, a_small, w.cview(), small[std::size_t(t)].view(), {.transpose_b = true});
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < callers; ++t) {
    EXPECT_EQ(big[std::size_t(t)].snapshot(), want_big.snapshot());
    EXPECT_EQ(from_packed[std::size_t(t)].snapshot(), want_big.snapshot());
    EXPECT_EQ(small[std::size_t(t)].snapshot(), want_small.snapshot());
  }
}

/// brgemm_tile: C (+)= Σ_i A_i·B_i over row-major or packed B, every row and column tail; C's old values
/// are ignored with overwrite (they are NaN there, so any read of them would show).
CPU_TEST(CpuGemmPaths, BrgemmTileExact) {
  using S = trellis::cpu_detail::simd<typename Target::provider>;
  constexpr std::size_t NR = trellis::cpu_detail::gemm_tile<S>::nr;
  for (std::size_t m : {1, 5, 6, 7, 13})
    for (std::size_t n : {std::size_t{1}, std::size_t{17}, NR, NR + 1, 2 * NR + 2})
      for (std::size_t k : {1, 9, 40})
        for (std::size_t batch : {1, 3})
          for (bool packed : {false, true})
          for (bool overwrite : {false, true}) {
            SCOPED_TRACE(testing::Message() << "m=" << m << " n=" << n << " k=" << k << " batch=" << batch
                                            << " packed=" << packed << " overwrite=" << overwrite);
            const std::size_t lda = k + 3, ldb = n + 5, ldc = n + 2;
            std::vector<float> a(batch * m * lda), b(batch * k * ldb), c(m * ldc), ref(m * ldc);
            for (std::size_t i = 0; i < a.size(); ++i) a[i] = float(int(i * 7 % 11) - 5);
            for (std::size_t i = 0; i < b.size(); ++i) b[i] = float(int(i * 5 % 9) - 4);
            for (std::size_t i = 0; i < c.size(); ++i) c[i] = ref[i] = float(int(i % 7) - 3);
            for (std::size_t i = 0; i < m && overwrite; ++i)
              for (std::size_t j = 0; j < n; ++j) {
                c[i * ldc + j] = std::nanf("");
                ref[i * ldc + j] = 0.0f;
              }
            for (std::size_t i = 0; i < m; ++i)
              for (std::size_t j = 0; j < n; ++j) {
                double s = ref[i * ldc + j];
                for (std::size_t bi = 0; bi < batch; ++bi)
                  for (std::size_t p = 0; p < k; ++p) s += double(a[(bi * m + i) * lda + p]) * b[(bi * k + p) * ldb + j];
                ref[i * ldc + j] = float(s);
              }
            std::vector<const float*> a_ptrs, b_ptrs;
            std::vector<std::vector<float>> panels;
            const std::size_t micro_panels = (n + NR - 1) / NR;
            for (std::size_t bi = 0; bi < batch; ++bi) {
              a_ptrs.push_back(a.data() + bi * m * lda);
              const tensor_view<const float, 2> bv{b.data() + bi * k * ldb, {k, n}, {ldb, 1}};
              if (!packed) {
                b_ptrs.push_back(bv.data());
                continue;
              }
              panels.emplace_back(micro_panels * NR * k);
              for (std::size_t jr = 0; jr < micro_panels; ++jr)
                trellis::cpu_detail::pack_b_micro_panel<S, false>(bv, jr * NR, std::min(NR, n - jr * NR),
                                                                  panels.back().data() + jr * NR * k);
              b_ptrs.push_back(panels.back().data());
            }
            trellis::cpu_detail::brgemm_tile<S>(batch, a_ptrs.data(), lda, {b_ptrs.data(), ldb, packed}, m, n, k,
                                                c.data(), ldc, overwrite);
            EXPECT_EQ(c, ref);  // includes the padding columns between rows: untouched
          }
}

}  // namespace
