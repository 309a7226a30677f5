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

namespace {

using trellis::activation;
using trellis::any_view;
using trellis::bf16;
using trellis::tensor_view;
using trellis_test::guarded;
using trellis_test::with_threads;
using s2 = std::array<std::size_t, 2>;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr double u32 = 1.0 / (1 << 24);  // fp32 unit roundoff

struct mm_params {
  std::size_t m, n, k;
  bool ta = false, tb = false;
  std::size_t pad = 0, misalign = 0;
  float alpha = 1.0f, beta = 0.0f;
  activation act = activation::none;
  bool bias = false, bias_bf16 = false, residual = false;
};

std::string describe(const mm_params& p) {
  std::ostringstream s;
  s << "M=" << p.m << " N=" << p.n << " K=" << p.k << " ta=" << p.ta << " tb=" << p.tb
    << " pad=" << p.pad << " misalign=" << p.misalign << " alpha=" << p.alpha << " beta=" << p.beta
    << " act=" << trellis::to_string(p.act) << " bias=" << p.bias << (p.bias_bf16 ? "(bf16)" : "")
    << " residual=" << p.residual;
  return s.str();
}

enum class fill_kind { integers, uniform };

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

/// Runs one matmul on the reference and on Target with 1 and 2 threads; checks canaries, thread
/// bit-identity, and equality (integers) or the error bound (uniform). Returns false on the first
/// failure.
template <class Target, class TA, class TC>
bool check_matmul(const mm_params& p, fill_kind kind, std::uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "(" << type_name<TA>() << ", " << type_name<TA>() << ", "
                                  << type_name<TC>() << ") " << describe(p) << " seed=" << seed);
  std::mt19937 rng(seed);
  const auto fill = [&](auto& g, int range) {
    if (kind == fill_kind::integers)
      g.fill(trellis_test::int_fill{rng, -range, range});
    else
      g.fill(trellis_test::uniform_fill{rng});
  };
  guarded<TA, 2> a(p.ta ? s2{p.k, p.m} : s2{p.m, p.k}, p.pad, p.misalign);
  guarded<TA, 2> b(p.tb ? s2{p.n, p.k} : s2{p.k, p.n}, p.pad, p.misalign);
  fill(a, 4);
  fill(b, 4);
  guarded<float, 2> bias32({1, p.n});
  fill(bias32, 8);
  guarded<bf16, 2> bias16({1, p.n});
  bias16.fill([&](const s2& i) { return bias32.get(i); });
  guarded<TC, 2> residual({p.m, p.n}, p.pad ? p.pad + 2 : 0);
  fill(residual, 8);
  guarded<TC, 2> c0({p.m, p.n});
  fill(c0, 8);

  any_view bias{};
  if (p.bias) {
    if (p.bias_bf16)
      bias = tensor_view<const bf16, 1>{bias16.data(), {p.n}};
    else
      bias = tensor_view<const float, 1>{bias32.data(), {p.n}};
  }
  const trellis::matmul_options opts{
      .transpose_a = p.ta,
      .transpose_b = p.tb,
      .alpha = p.alpha,
      .beta = p.beta,
      .epilogue = {p.act, bias, p.residual ? any_view(residual.cview()) : any_view{}}};
  const auto make_c = [&] {
    guarded<TC, 2> c({p.m, p.n}, p.pad, p.misalign);
    if (p.beta == 0.0f)
      c.fill_value(nan_f);  // β = 0 must not read C
    else
      c.fill([&](const s2& i) { return c0.get(i); });
    return c;
  };
  auto c_ref = make_c(), c1 = make_c(), c2 = make_c();
  trellis::matmul(trellis::reference{}, a.cview(), b.cview(), c_ref.view(), opts);
  trellis::matmul(with_threads<Target>(1), a.cview(), b.cview(), c1.view(), opts);
  trellis::matmul(with_threads<Target>(2), a.cview(), b.cview(), c2.view(), opts);

  bool ok = true;
  EXPECT_EQ(c1.damaged_canaries(), 0u) << "threads=1 wrote outside C";
  EXPECT_EQ(c2.damaged_canaries(), 0u) << "threads=2 wrote outside C";
  ok = ok && c1.damaged_canaries() == 0 && c2.damaged_canaries() == 0;
  std::size_t differ = 0;
  c1.for_each([&](const s2& i) { differ += !trellis_test::same_bits(c1.at(i), c2.at(i)); });
  EXPECT_EQ(differ, 0u) << "threads=1 and threads=2 differ";
  ok = ok && differ == 0;

  if (kind == fill_kind::integers) {
    std::size_t bad = 0;
    c1.for_each([&](const s2& i) {
      if (!(c1.get(i) == c_ref.get(i)) && bad++ < 5)
        ADD_FAILURE() << "C(" << i[0] << ", " << i[1] << ") = " << c1.get(i) << ", reference "
                      << c_ref.get(i);
    });
    EXPECT_EQ(bad, 0u) << "elements not exactly equal to the reference";
    return ok && bad == 0;
  }

  // Uniform inputs: the reference's pre-activation value α·A·B + bias, the magnitude |A|·|B|, and
  // the fp32 result (for a bf16 C: the reference computed into an fp32 C with the same C₀).
  guarded<float, 2> pre({p.m, p.n}), absab({p.m, p.n}), ref32({p.m, p.n});
  trellis::matmul(trellis::reference{}, a.cview(), b.cview(), pre.view(),
                  {.transpose_a = p.ta,
                   .transpose_b = p.tb,
                   .alpha = p.alpha,
                   .epilogue = {activation::none, bias, {}}});
  guarded<float, 2> abs_a(a.shape()), abs_b(b.shape());
  abs_a.fill([&](const s2& i) { return std::fabs(a.get(i)); });
  abs_b.fill([&](const s2& i) { return std::fabs(b.get(i)); });
  trellis::matmul(trellis::reference{}, abs_a.cview(), abs_b.cview(), absab.view(),
                  {.transpose_a = p.ta, .transpose_b = p.tb});
  ref32.fill([&](const s2& i) { return c0.get(i); });
  trellis::matmul(
      trellis::reference{}, a.cview(), b.cview(), ref32.view(),
      {.transpose_a = p.ta,
       .transpose_b = p.tb,
       .alpha = p.alpha,
       .beta = p.beta,
       .epilogue = {p.act, bias, p.residual ? any_view(residual.cview()) : any_view{}}});
  const double lipschitz =
      p.act == activation::none ? 1.0 : 1.13;  // max |act'| of gelu (1.129) and silu (1.1)
  std::size_t bad = 0;
  double worst = 0.0;
  c1.for_each([&](const s2& i) {
    const double ref = ref32.get(i), got = c1.get(i);
    const double pv = pre.get(i);
    double e = lipschitz *
               (std::fabs(p.alpha) * 2.0 * double(p.k) * u32 * absab.get(i) + u32 * std::fabs(pv));
    const double act_v = trellis::apply_activation(p.act, pv);
    if (p.act != activation::none)
      e += 1e-6 + 8.0 * u32 * std::fabs(act_v);  // vectorised transcendental
    const double r = p.residual ? residual.get(i) : 0.0;
    const double bc = p.beta != 0.0f ? double(p.beta) * c0.get(i) : 0.0;
    e += 2.0 * u32 * (std::fabs(act_v) + std::fabs(r) + std::fabs(bc)) + u32 * std::fabs(ref);
    if constexpr (std::is_same_v<TC, bf16>)
      e += (std::fabs(ref) + e) / 256.0;  // bf16 rounding of the result
    const double err = std::fabs(got - ref);
    worst = std::max(worst, err / e);
    if (!(err <= e) && bad++ < 5)
      ADD_FAILURE() << "C(" << i[0] << ", " << i[1] << ") = " << got << ", reference " << ref
                    << ", |error| " << err << " > bound " << e;
  });
  EXPECT_EQ(bad, 0u) << "elements outside the error bound (worst error/bound " << worst << ")";
  if (std::getenv("TRELLIS_TEST_VERBOSE"))
    std::printf("%s %s %s: worst error/bound %g\n", type_name<TA>(), type_name<TC>(),
                describe(p).c_str(), worst);
  return ok && bad == 0;
}

const std::size_t tail_sizes[] = {1, 7, 15, 16, 17, 63, 64, 65, 127, 129};

/// A deterministic sample of the tail sweep (one combination in `every`), with the layout and
/// epilogue options cycling so each appears with many shapes.
std::vector<mm_params> tail_sweep(int every, int phase) {
  std::vector<mm_params> out;
  int c = 0;
  for (int i = 0; i < 10; ++i)
    for (int j = 0; j < 10; ++j)
      for (int l = 0; l < 10; ++l) {
        if ((i + 3 * j + 7 * l + phase) % every != 0) continue;
        mm_params p{tail_sizes[i], tail_sizes[j], tail_sizes[l]};
        p.ta = c & 1;
        p.tb = (c >> 1) & 1;
        p.pad = (c >> 2) & 1 ? 3 : 0;
        p.misalign = (c >> 3) & 1;
        p.beta = c % 3 == 0 ? 0.0f : c % 3 == 1 ? 1.0f : -2.0f;
        p.alpha = c % 4 == 0 ? 1.0f : c % 4 == 1 ? 2.0f : c % 4 == 2 ? -0.5f : 1.0f;
        p.bias = c % 5 != 0;
        p.bias_bf16 = c % 7 == 3;
        p.residual = c % 5 >= 2;
        out.push_back(p);
        ++c;
      }
  return out;
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
