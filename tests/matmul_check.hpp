#pragma once
// The matmul oracle check shared by the target suites (cpu, systolic): inputs from a fill kind, the
// reference in fp64, exact equality for integer-valued inputs and a forward error bound that scales with
// K for uniform ones (DESIGN §5), canaries around C, NaN-prefilled C when β = 0.

#include <gtest/gtest.h>

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

#include <trellis/reference.hpp>

#include "test_support.hpp"

namespace trellis_test::matmul_check {

using trellis::activation;
using trellis::any_view;
using trellis::bf16;
using trellis::tensor_view;
using trellis_test::guarded;
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

inline std::string describe(const mm_params& p) {
  std::ostringstream s;
  s << "M=" << p.m << " N=" << p.n << " K=" << p.k << " ta=" << p.ta << " tb=" << p.tb
    << " pad=" << p.pad << " misalign=" << p.misalign << " alpha=" << p.alpha << " beta=" << p.beta
    << " act=" << trellis::to_string(p.act) << " bias=" << p.bias << (p.bias_bf16 ? "(bf16)" : "")
    << " residual=" << p.residual;
  return s.str();
}

enum class fill_kind { integers, uniform };

template <class T>
constexpr const char* type_name() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

/// Runs one matmul on the reference and through each of `runs` (callables (a, b, c, options) that compute
/// C = matmul(a, b) on a target); checks canaries, that every run gives the first run's bits, and equality
/// (integers) or the error bound (uniform) for the first. Returns false on the first failure.
template <class TA, class TC, class... Runs>
bool check_matmul_runs(const mm_params& p, fill_kind kind, std::uint32_t seed, const Runs&... runs) {
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
  auto c_ref = make_c();
  trellis::matmul(trellis::reference{}, a.cview(), b.cview(), c_ref.view(), opts);
  std::vector<guarded<TC, 2>> outputs;
  const auto run_one = [&](const auto& run) {
    outputs.push_back(make_c());
    run(a.cview(), b.cview(), outputs.back().view(), opts);
  };
  (run_one(runs), ...);
  const guarded<TC, 2>& c1 = outputs.front();

  bool ok = true;
  for (std::size_t r = 0; r < outputs.size(); ++r) {
    EXPECT_EQ(outputs[r].damaged_canaries(), 0u) << "run " << r << " wrote outside C";
    ok = ok && outputs[r].damaged_canaries() == 0;
    std::size_t differ = 0;
    c1.for_each([&](const s2& i) { differ += !trellis_test::same_bits(c1.at(i), outputs[r].at(i)); });
    EXPECT_EQ(differ, 0u) << "run " << r << " differs from run 0";
    ok = ok && differ == 0;
  }

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

inline constexpr std::size_t tail_sizes[] = {1, 7, 15, 16, 17, 63, 64, 65, 127, 129};

/// A deterministic sample of the tail sweep (one combination in `every`), with the layout and
/// epilogue options cycling so each appears with many shapes.
inline std::vector<mm_params> tail_sweep(int every, int phase) {
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

}  // namespace trellis_test::matmul_check
