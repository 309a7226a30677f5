// cpu: matmul against trellis::reference (DESIGN §5) for both SIMD providers.
//
// 1. Integer-valued inputs (every fp32 sum exact in any order): results must equal the reference
//    exactly, over a deterministic sample of the tail sweep M, N, K ∈ {1, 7, 15, 16, 17, 63, 64,
//    65, 127, 129}, transposes, padded leading dimensions, unaligned pointers, canaries,
//    NaN-prefilled C.
// 2. Uniform [-1, 1] inputs with every epilogue: |c − ref| within a forward error bound that scales
// with K.
// 3. threads = 1 and threads = 2 give bit-identical results.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu_support.hpp"
#include "matmul_check.hpp"

namespace {

using namespace trellis_test::matmul_check;
using trellis::activation;
using trellis::bf16;
using trellis_test::guarded;
using trellis_test::with_threads;
using s2 = std::array<std::size_t, 2>;

/// The oracle check with threads = 1 and threads = 2, which must also agree bit for bit.
template <class Target, class TA, class TC>
bool check_matmul(const mm_params& p, fill_kind kind, std::uint32_t seed) {
  const auto with = [](int threads) {
    return [threads](auto a, auto b, auto c, const trellis::matmul_options& o) {
      trellis::matmul(with_threads<Target>(threads), a, b, c, o);
    };
  };
  return check_matmul_runs<TA, TC>(p, kind, seed, with(1), with(2));
}

/// Shapes at the backend's blocking boundaries (MR = 6, KC = 256, MC = 96, NC = 512 today) and
/// beyond.
std::vector<mm_params> boundary_shapes() {
  return {
      {5, 64, 1},     {6, 63, 2},     {7, 65, 3},   {11, 33, 255}, {12, 31, 256},
      {13, 129, 257}, {95, 511, 40},  {96, 512, 9}, {97, 513, 31}, {193, 66, 513},
      {1, 1000, 300}, {1000, 1, 129}, {2, 2, 1025}, {130, 7, 600},
  };
}

CPU_TEST_SUITE(Matmul);

template <class Target, class TA, class TC>
void run_integer_sweep(int phase) {
  int failures = 0;
  for (const mm_params& p : tail_sweep(5, phase)) {
    if (!check_matmul<Target, TA, TC>(p, fill_kind::integers,
                                      1234u + unsigned(p.m * 7 + p.n * 3 + p.k)) &&
        ++failures >= 3) {
      ADD_FAILURE() << "stopping after 3 failing shapes";
      return;
    }
  }
}

CPU_TEST(Matmul, ExactTailSweepF32) { run_integer_sweep<Target, float, float>(0); }
CPU_TEST(Matmul, ExactTailSweepBf16InF32Out) { run_integer_sweep<Target, bf16, float>(1); }
CPU_TEST(Matmul, ExactTailSweepBf16InBf16Out) { run_integer_sweep<Target, bf16, bf16>(2); }

CPU_TEST(Matmul, ExactBlockingBoundaries) {
  int c = 0;
  for (mm_params p : boundary_shapes()) {
    p.ta = c % 3 == 1;
    p.tb = c % 2 == 1;
    p.pad = c % 4 == 2 ? 5 : 0;
    p.misalign = c % 5 == 4;
    p.bias = true;
    p.residual = c % 2 == 0;
    p.beta = c % 3 == 0 ? 0.0f : 0.5f;
    ++c;
    if (!check_matmul<Target, float, float>(p, fill_kind::integers, 99u + unsigned(c))) return;
    if (!check_matmul<Target, bf16, float>(p, fill_kind::integers, 77u + unsigned(c))) return;
    if (!check_matmul<Target, bf16, bf16>(p, fill_kind::integers, 55u + unsigned(c))) return;
  }
}

CPU_TEST(Matmul, ExactLarge) {
  // 1000 × 1025 × 300, B given as [N, K] (inference weights), with bias and residual.
  mm_params p{1000, 1025, 300};
  p.tb = true;
  p.bias = true;
  p.residual = true;
  check_matmul<Target, float, float>(p, fill_kind::integers, 4242u);
}

CPU_TEST(Matmul, ExactLargeBf16) {
  mm_params p{515, 1025, 300};
  p.pad = 1;
  p.misalign = 1;
  check_matmul<Target, bf16, bf16>(p, fill_kind::integers, 4343u);
}

/// Uniform inputs: every activation with bias, residual, α and β, over a sample of the tail sweep.
template <class Target, class TA, class TC>
void run_random_sweep(int phase) {
  int c = 0, failures = 0;
  const activation acts[] = {activation::none, activation::gelu_tanh, activation::gelu_erf,
                             activation::silu};
  for (mm_params p : tail_sweep(9, phase)) {
    p.act = acts[c % 4];
    p.alpha = c % 3 == 0 ? 1.0f : c % 3 == 1 ? 0.7f : -1.3f;
    p.beta = c % 5 < 2 ? 0.0f : c % 5 == 2 ? 1.0f : -0.3f;
    ++c;
    if (!check_matmul<Target, TA, TC>(p, fill_kind::uniform, 777u + unsigned(c)) &&
        ++failures >= 3) {
      ADD_FAILURE() << "stopping after 3 failing shapes";
      return;
    }
  }
}

CPU_TEST(Matmul, RandomWithinErrorBoundF32) { run_random_sweep<Target, float, float>(0); }
CPU_TEST(Matmul, RandomWithinErrorBoundBf16InF32Out) { run_random_sweep<Target, bf16, float>(4); }
CPU_TEST(Matmul, RandomWithinErrorBoundBf16InBf16Out) { run_random_sweep<Target, bf16, bf16>(7); }

CPU_TEST(Matmul, RandomLongK) {
  // K well past one KC block: the bound grows with K, the error must not grow faster.
  for (activation act : {activation::none, activation::gelu_tanh}) {
    mm_params p{67, 130, 1500};
    p.act = act;
    p.bias = true;
    p.residual = true;
    p.beta = 0.25f;
    p.tb = true;
    if (!check_matmul<Target, float, float>(p, fill_kind::uniform, 31u)) return;
    if (!check_matmul<Target, bf16, float>(p, fill_kind::uniform, 32u)) return;
  }
}

CPU_TEST(Matmul, DefaultThreadsAndNestedParallelRegion) {
  // threads = 0 (all cores) and calls from inside an OpenMP parallel region give the same bits as
  // threads = 1.
  std::mt19937 rng(5);
  guarded<float, 2> a({150, 70}), b({70, 90});
  a.fill(trellis_test::uniform_fill{rng});
  b.fill(trellis_test::uniform_fill{rng});
  guarded<float, 2> c1({150, 90}), c0({150, 90});
  trellis::matmul(with_threads<Target>(1), a.cview(), b.cview(), c1.view());
  trellis::matmul(Target{}, a.cview(), b.cview(), c0.view());
  EXPECT_EQ(c0.snapshot(), c1.snapshot());
  std::vector<guarded<float, 2>> per_thread(2, guarded<float, 2>({150, 90}));
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    if (t < 2)
      trellis::matmul(with_threads<Target>(2), a.cview(), b.cview(),
                      per_thread[std::size_t(t)].view());
  }
  for (const auto& c : per_thread) EXPECT_EQ(c.snapshot(), c1.snapshot());
}

CPU_TEST(Matmul, ResidualAliasingC) {
  std::mt19937 rng(6);
  guarded<float, 2> a({33, 20}), b({20, 70}), c({33, 70}, 2), want({33, 70});
  a.fill(trellis_test::int_fill{rng, -3, 3});
  b.fill(trellis_test::int_fill{rng, -3, 3});
  c.fill(trellis_test::int_fill{rng, -9, 9});
  want.fill([&](const s2& i) { return c.get(i); });
  trellis::matmul(trellis::reference{}, a.cview(), b.cview(), want.view(),
                  {.beta = -1.0f, .epilogue = trellis::epilogue::residual_add(want.cview())});
  trellis::matmul(with_threads<Target>(2), a.cview(), b.cview(), c.view(),
                  {.beta = -1.0f, .epilogue = trellis::epilogue::residual_add(c.cview())});
  c.for_each([&](const s2& i) { EXPECT_EQ(c.get(i), want.get(i)); });
  EXPECT_EQ(c.damaged_canaries(), 0u);
}

}  // namespace
