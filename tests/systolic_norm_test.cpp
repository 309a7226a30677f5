// layernorm and rmsnorm on the NeuronCore model (trellis::layernorm(nc, ...), kernels/norm.hpp) against
// trellis::reference: integer-valued rows where every step is exact first, then random rows within bounds
// derived from the kernel's fp32 steps; ragged rows and hidden sizes, γ/β present or absent, residual and
// residual_out, bf16 in/out, cancellation-prone rows, folded and unfoldable leading axes, in place; the
// rule errors; and a timing-only run with its instruction mix.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <trellis/reference.hpp>
#include <trellis/systolic/kernels/norm.hpp>
#include <trellis/systolic/norm.hpp>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using trellis::any_output_view;
using trellis::any_view;
using trellis::bf16;
using trellis::tensor_view;
using trellis::systolic::kernels::layernorm_tiled;
using trellis::systolic::kernels::norm_operands;
using trellis::systolic::kernels::norm_policy;
using trellis::systolic::kernels::rmsnorm_tiled;

constexpr double u = 0x1p-24;  // unit roundoff of fp32

enum class op { layer, rms };

/// A problem in float (each value already representable in the element type it is stored as).
struct problem {
  std::size_t rows = 0, hidden = 0;
  std::vector<float> x, r, gamma, beta;  // r, gamma, beta empty when absent
  bool residual_out = false;
  float eps = 1e-5f;
};

template <class T>
std::vector<T> as(const std::vector<float>& v) {
  std::vector<T> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = T(v[i]);
  return out;
}

template <class T>
float rounded(float v) {
  return float(T(v));
}

/// The kernel's error bound for one output element (see the derivation at each term). s is the row of
/// s = x + r in fp32 (what both the kernel and the reference normalise), j the element.
struct bound_model {
  op kind;
  std::size_t hidden;
  float eps;
  std::size_t chunk = 512;  // the default policy's bn_stats chunk

  // Per row: computed once.
  double mean = 0, var = 0, max_abs = 0, rstd = 0, d_mean = 0, e_rstd = 0;

  void row(const float* s) {
    const double h = double(hidden);
    mean = 0;
    max_abs = 0;
    for (std::size_t j = 0; j < hidden; ++j) {
      mean += s[j];
      max_abs = std::max(max_abs, std::fabs(double(s[j])));
    }
    mean = kind == op::layer ? mean / h : 0.0;
    var = 0;
    for (std::size_t j = 0; j < hidden; ++j) var += (s[j] - mean) * (s[j] - mean);
    var /= h;
    rstd = 1.0 / std::sqrt(var + double(eps));
    if (kind == op::layer) {
      // bn_stats sums each half (even/odd elements) of a ≤ 512 chunk in fp32: c ≤ 256 terms, so its mean is
      // off by ≤ (c − 1)·u·Σ|s|/c + u·|mean| ≤ c·u·max|s|. bn_aggr folds G = 2·chunks halves with Chan's
      // update, ≤ 4 roundings of magnitude ≤ max|s| each: d_mean ≤ (c + 4G + 2)·u·max|s|.
      const double c = std::ceil(double(std::min(chunk, hidden)) / 2.0);
      const double g = 2.0 * std::ceil(h / double(chunk));
      d_mean = (c + 4 * g + 2) * u * max_abs;
      // The variance: each half's Σ(s − m̂)² has relative error ≤ (c + 2)·u and exceeds the true M2 by
      // c·(m − m̂)²; the between-halves terms n·(m̂ᵢ − μ̂)² differ from n·(mᵢ − μ)² by
      // ≤ 4·d_mean·σ + 4·d_mean² (averaged) and bn_aggr's accumulation adds ≤ (G + 6)·u relative. So
      //   |v̂ − v| ≤ (c + 4G + 8)·u·v + 4·d_mean·σ + 5·d_mean².
      const double d_var = (c + 4 * g + 8) * u * var + 4 * d_mean * std::sqrt(var) + 5 * d_mean * d_mean;
      // rstd = rsqrt(v̂ + eps): the add and the reciprocal square root round ≤ 3 times (≤ 4u).
      const double ve = var + double(eps);
      e_rstd = ve > d_var ? std::sqrt(ve / (ve - d_var)) - 1 + 4 * u : INFINITY;
    } else {
      // Σ s² in one activation: H squares rounded (u) summed in order in fp32 ((H − 1)·u), ·fl(1/H) (2u),
      // + eps (u): relative ≤ (H + 4)·u; rsqrt rounds twice.
      const double d = (h + 4) * u;
      e_rstd = std::sqrt(1 / (1 - d)) - 1 + 3 * u;
      d_mean = 0;
    }
  }

  /// |kernel − exact| for element j with |γ| = g, |β| = b.
  double at(float s_j, double g, double b) const {
    const double centred = std::fabs(double(s_j) - mean);
    // (s − μ̂)·r̂ (2 roundings), ·γ, +β (1 each): the mean's error passes through rstd; the rstd's scales it.
    const double normalised = rstd * (1 + e_rstd) * (centred + d_mean);
    return g * (rstd * d_mean + centred * rstd * e_rstd) * (1 + e_rstd) + 4 * u * (g * normalised + b);
  }
};

/// Runs op on core<M> through the front door, and the reference with fp32 y, and compares: y within the
/// bound (+ the rounding of a bf16 y: half an ulp of bf16, ≤ 2^-8 relative), residual_out exactly, and the
/// canaries around y untouched.
template <class M, class TX, class TY, class TP = float, class TR = float, class TS = TR>
void check(op kind, const problem& p, bool exact = false) {
  SCOPED_TRACE(std::string(M::spec.name) + (kind == op::layer ? " layernorm " : " rmsnorm ") + std::to_string(p.rows) +
               "x" + std::to_string(p.hidden));
  const std::size_t n = p.rows * p.hidden, canary = 8;
  const std::vector<TX> x = as<TX>(p.x);
  const std::vector<TR> r = as<TR>(p.r);
  const std::vector<TP> gamma = as<TP>(p.gamma), beta = as<TP>(p.beta);
  std::vector<TY> y_store(n + 2 * canary, TY(-7.0f));
  std::vector<TS> s_out(p.residual_out ? n : 0, TS(std::numeric_limits<float>::quiet_NaN()));
  std::vector<float> y_ref(n);
  std::vector<TY> y_ref_same(n);
  std::vector<TS> s_ref(s_out.size());

  const tensor_view<const TX, 2> xv{x.data(), {p.rows, p.hidden}};
  const tensor_view<TY, 2> yv{y_store.data() + canary, {p.rows, p.hidden}};
  const any_view gv = p.gamma.empty() ? any_view{} : any_view{tensor_view<const TP, 1>{gamma.data(), {p.hidden}}};
  const any_view bv = p.beta.empty() ? any_view{} : any_view{tensor_view<const TP, 1>{beta.data(), {p.hidden}}};
  const any_view rv = p.r.empty() ? any_view{} : any_view{tensor_view<const TR, 2>{r.data(), {p.rows, p.hidden}}};
  const auto sv = [&](std::vector<TS>& s) {
    return p.residual_out ? any_output_view{tensor_view<TS, 2>{s.data(), {p.rows, p.hidden}}} : any_output_view{};
  };

  core<M> nc;
  if (kind == op::layer) {
    trellis::layernorm(nc, xv, gv, bv, yv, {.eps = p.eps, .residual = rv, .residual_out = sv(s_out)});
    trellis::layernorm(trellis::reference{}, xv, gv, bv, tensor_view<float, 2>{y_ref.data(), {p.rows, p.hidden}},
                       {.eps = p.eps, .residual = rv, .residual_out = sv(s_ref)});
    if (exact)
      trellis::layernorm(trellis::reference{}, xv, gv, bv, tensor_view<TY, 2>{y_ref_same.data(), {p.rows, p.hidden}},
                         {.eps = p.eps, .residual = rv});
  } else {
    trellis::rmsnorm(nc, xv, gv, yv, {.eps = p.eps, .residual = rv, .residual_out = sv(s_out)});
    trellis::rmsnorm(trellis::reference{}, xv, gv, tensor_view<float, 2>{y_ref.data(), {p.rows, p.hidden}},
                     {.eps = p.eps, .residual = rv, .residual_out = sv(s_ref)});
    if (exact)
      trellis::rmsnorm(trellis::reference{}, xv, gv, tensor_view<TY, 2>{y_ref_same.data(), {p.rows, p.hidden}},
                       {.eps = p.eps, .residual = rv});
  }
  EXPECT_EQ(nc.sbuf.bytes_in_use(), 0u);
  EXPECT_EQ(nc.psum.bytes_in_use(), 0u);
  for (std::size_t i = 0; i < canary; ++i) {
    ASSERT_EQ(float(y_store[i]), -7.0f) << "canary before y";
    ASSERT_EQ(float(y_store[canary + n + i]), -7.0f) << "canary after y";
  }
  for (std::size_t i = 0; i < s_out.size(); ++i)
    ASSERT_EQ(float(s_out[i]), float(s_ref[i])) << "residual_out " << i / p.hidden << "," << i % p.hidden;

  bound_model bound{kind, p.hidden, p.eps};
  std::vector<float> s(p.hidden);
  constexpr bool y_bf16 = std::is_same_v<TY, bf16>;
  for (std::size_t row = 0; row < p.rows; ++row) {
    for (std::size_t j = 0; j < p.hidden; ++j) {
      const std::size_t i = row * p.hidden + j;
      s[j] = float(x[i]) + (p.r.empty() ? 0.0f : float(r[i]));  // the fp32 sum both sides normalise
    }
    bound.row(s.data());
    for (std::size_t j = 0; j < p.hidden; ++j) {
      const std::size_t i = row * p.hidden + j;
      const float got = float(y_store[canary + i]);
      if (exact) {
        ASSERT_EQ(got, float(y_ref_same[i])) << row << "," << j;
        continue;
      }
      const double g = p.gamma.empty() ? 1.0 : std::fabs(double(float(gamma[j])));
      const double b = p.beta.empty() ? 0.0 : std::fabs(double(float(beta[j])));
      double e = bound.at(s[j], g, b) + u * std::fabs(double(y_ref[i]));  // + the reference's own fp32 rounding
      if (y_bf16) e += 0x1p-8 * (std::fabs(double(y_ref[i])) + e);     // ≤ half an ulp of bf16
      ASSERT_LE(std::fabs(double(got) - double(y_ref[i])), e)
          << row << "," << j << ": got " << got << ", reference " << y_ref[i];
    }
  }
}

std::vector<float> uniform(std::mt19937& rng, std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (float& e : v) e = d(rng);
  return v;
}

template <class T>
std::vector<float> rounded_all(std::vector<float> v) {
  for (float& e : v) e = rounded<T>(e);
  return v;
}

/// Random rows: x (and r) in [−2, 2] (+ a per-row offset), γ in ±[0.5, 1.5], β in [−1, 1].
template <class TX, class TP = float, class TR = float>
problem random_problem(std::mt19937& rng, std::size_t rows, std::size_t hidden, bool gamma, bool beta, bool residual,
                       float offset = 0.0f) {
  problem p;
  p.rows = rows;
  p.hidden = hidden;
  p.x = uniform(rng, rows * hidden, -2.0f, 2.0f);
  for (float& v : p.x) v += offset;
  p.x = rounded_all<TX>(p.x);
  if (residual) p.r = rounded_all<TR>(uniform(rng, rows * hidden, -2.0f, 2.0f));
  if (gamma) {
    p.gamma = uniform(rng, hidden, 0.5f, 1.5f);
    for (std::size_t j = 0; j < hidden; j += 3) p.gamma[j] = -p.gamma[j];
    p.gamma = rounded_all<TP>(p.gamma);
  }
  if (beta) p.beta = rounded_all<TP>(uniform(rng, hidden, -1.0f, 1.0f));
  return p;
}

constexpr std::size_t ragged_rows[] = {1, 127, 129, 300};
constexpr std::size_t ragged_hidden[] = {1, 7, 512, 513, 1000, 4096};

// ---- exact ----------------------------------------------------------------------------------------------

/// Integer rows s = m ± a (a a power of two) with as many + as − among the even and among the odd elements
/// of every 512-element bn_stats chunk: every bn_stats half then sums integers exactly to count·m, its M2 is
/// count·a², bn_aggr's deltas are 0, var = a², and with eps = 0 rstd = 1/a exactly; y = ±γ + β in integers.
/// x is a random integer and r = s − x, so the residual path is exact too.
problem exact_layer_problem(std::mt19937& rng, std::size_t rows, std::size_t hidden, bool residual) {
  problem p;
  p.rows = rows;
  p.hidden = hidden;
  p.eps = 0.0f;
  p.x.resize(rows * hidden);
  std::uniform_int_distribution<int> mean(-50, 50), small(-8, 8), gamma(-3, 3), shift(0, 2);
  for (std::size_t row = 0; row < rows; ++row) {
    const float m = float(mean(rng)), a = float(1 << shift(rng));
    for (std::size_t c0 = 0; c0 < hidden; c0 += 512)
      for (std::size_t parity = 0; parity < 2; ++parity) {
        std::vector<std::size_t> idx;
        for (std::size_t j = c0 + parity; j < std::min(hidden, c0 + 512); j += 2) idx.push_back(j);
        std::shuffle(idx.begin(), idx.end(), rng);
        for (std::size_t k = 0; k < idx.size(); ++k) p.x[row * hidden + idx[k]] = k % 2 ? m + a : m - a;
      }
  }
  if (residual) {
    p.r.resize(p.x.size());
    for (std::size_t i = 0; i < p.x.size(); ++i) {
      const float xi = float(small(rng));
      p.r[i] = p.x[i] - xi;
      p.x[i] = xi;
    }
    p.residual_out = true;
  }
  for (std::size_t j = 0; j < hidden; ++j) {
    p.gamma.push_back(float(gamma(rng)));
    p.beta.push_back(float(small(rng)));
  }
  return p;
}

template <class M>
void exact_layernorm() {
  std::mt19937 rng(1);
  for (std::size_t rows : ragged_rows)
    for (std::size_t hidden : {4, 12, 512, 1000, 4096}) {  // every half-chunk even: ± can balance
      const problem p = exact_layer_problem(rng, rows, hidden, rows % 2 == 1);
      check<M, float, float>(op::layer, p, true);
      check<M, bf16, bf16, bf16, bf16>(op::layer, p, true);  // integers ≤ 64 in magnitude: exact in bf16
    }
}

TEST(SystolicNorm, LayernormExactOnIntegerRows) {
  exact_layernorm<trn1>();
  exact_layernorm<trn2>();
}

/// rmsnorm: s = ±a, H a power of two: Σ s² = H·a² exactly, ·(1/H) exact, rsqrt(a²) = 1/a; y = ±γ.
template <class M>
void exact_rmsnorm() {
  std::mt19937 rng(2);
  std::uniform_int_distribution<int> sign(0, 1), shift(0, 3), gamma(-5, 5), small(-8, 8);
  for (std::size_t rows : ragged_rows)
    for (std::size_t hidden : {1, 4, 512, 4096}) {
      problem p;
      p.rows = rows;
      p.hidden = hidden;
      p.eps = 0.0f;
      for (std::size_t row = 0; row < rows; ++row) {
        const float a = float(1 << shift(rng));
        for (std::size_t j = 0; j < hidden; ++j) p.x.push_back(sign(rng) ? a : -a);
      }
      for (std::size_t j = 0; j < hidden; ++j) p.gamma.push_back(float(gamma(rng)));
      if (rows != 127) {  // with a residual: x a small integer, r = s − x
        for (float& v : p.x) {
          const float xi = float(small(rng));
          p.r.push_back(v - xi);
          v = xi;
        }
        p.residual_out = true;
      }
      check<M, float, float>(op::rms, p, true);
      check<M, bf16, bf16, bf16, bf16>(op::rms, p, true);
    }
}

TEST(SystolicNorm, RmsnormExactOnIntegerRows) {
  exact_rmsnorm<trn1>();
  exact_rmsnorm<trn2>();
}

// ---- random, within the derived bounds ---------------------------------------------------------------

template <class M, class TX, class TY>
void random_sweep(op kind, unsigned seed) {
  std::mt19937 rng(seed);
  int variant = 0;
  for (std::size_t rows : ragged_rows)
    for (std::size_t hidden : ragged_hidden) {
      // Cycle through the optional operands: (γ, β) both, γ only, β only (layernorm), neither.
      const int v = variant++ % 4;
      const bool gamma = v == 0 || v == 1, beta = kind == op::layer && (v == 0 || v == 2);
      problem p = random_problem<TX>(rng, rows, hidden, gamma, beta, false);
      if (variant % 3 == 0) p.eps = 0.25f;  // large enough that a kernel dropping eps fails every bound
      check<M, TX, TY>(kind, p);
    }
}

TEST(SystolicNorm, LayernormRandomF32) {
  random_sweep<trn1, float, float>(op::layer, 10);
  random_sweep<trn2, float, float>(op::layer, 11);
}
TEST(SystolicNorm, LayernormRandomBf16) {
  random_sweep<trn1, bf16, bf16>(op::layer, 12);
  random_sweep<trn2, bf16, bf16>(op::layer, 13);
}
TEST(SystolicNorm, LayernormRandomBf16InF32Out) {
  random_sweep<trn1, bf16, float>(op::layer, 14);
  random_sweep<trn2, bf16, float>(op::layer, 15);
}
TEST(SystolicNorm, RmsnormRandomF32) {
  random_sweep<trn1, float, float>(op::rms, 16);
  random_sweep<trn2, float, float>(op::rms, 17);
}
TEST(SystolicNorm, RmsnormRandomBf16) {
  random_sweep<trn1, bf16, bf16>(op::rms, 18);
  random_sweep<trn2, bf16, bf16>(op::rms, 19);
}
TEST(SystolicNorm, RmsnormRandomBf16InF32Out) {
  random_sweep<trn1, bf16, float>(op::rms, 20);
  random_sweep<trn2, bf16, float>(op::rms, 21);
}

/// The fused residual: every dtype mix of x, r, residual_out and γ/β, with and without residual_out.
template <class M>
void residual_mixes(op kind) {
  std::mt19937 rng(30);
  for (std::size_t rows : {1, 129})
    for (std::size_t hidden : {7, 1000}) {
      const bool beta = kind == op::layer;
      check<M, float, float, float, float>(kind, random_problem<float>(rng, rows, hidden, true, beta, true));
      problem p = random_problem<bf16, bf16, bf16>(rng, rows, hidden, true, beta, true);
      p.residual_out = true;
      check<M, bf16, bf16, bf16, bf16>(kind, p);             // bf16 everything: s rounded only in residual_out
      check<M, bf16, float, float, bf16, float>(kind, p);    // bf16 x and r, fp32 y and residual_out
      p = random_problem<float, bf16, bf16>(rng, rows, hidden, true, beta, true);
      p.residual_out = true;
      check<M, float, float, bf16, bf16, bf16>(kind, p);     // fp32 x, bf16 r, γ/β and residual_out
      check<M, float, float, float, float, bf16>(kind, p);
    }
}

TEST(SystolicNorm, ResidualAndResidualOut) {
  residual_mixes<trn1>(op::layer);
  residual_mixes<trn2>(op::layer);
  residual_mixes<trn1>(op::rms);
  residual_mixes<trn2>(op::rms);
}

/// Rows of 1000 + noise of spread ~1 (and 1e4 + noise): E[s²] − E[s]² would lose every digit in fp32 (ulp of
/// 1e8 is 8); bn_stats' per-half centred sums keep the error at the bound's d_mean·rstd ≲ 256·u·|mean|/σ.
TEST(SystolicNorm, CancellationProneRows) {
  std::mt19937 rng(40);
  for (float offset : {1000.0f, 10000.0f}) {
    check<trn1, float, float>(op::layer, random_problem<float>(rng, 129, 1000, true, true, false, offset));
    check<trn2, float, float>(op::layer, random_problem<float>(rng, 129, 4096, true, true, false, offset));
    // bf16 x + fp32 r:
    check<trn2, bf16, float>(op::layer, random_problem<bf16>(rng, 3, 513, true, true, true, offset));
    check<trn2, float, float>(op::rms, random_problem<float>(rng, 129, 1000, true, false, false, offset));
  }
}

/// Hidden 8192 fp32 with γ, β and an fp32 residual + residual_out fits trn1's 192 KiB partitions (with 2 x
/// buffers: the front door's policy drops from 3 to 2 where 3 do not fit).
TEST(SystolicNorm, Hidden8192F32FitsTrn1) {
  using trellis::systolic::kernels::default_norm_policy;
  using trellis::systolic::kernels::norm_kind;
  core<trn1> probe{{.functional = false}};
  const region param = hbm<float>::shape_only({1, 8192}), rows = hbm<float>::shape_only({130, 8192});
  EXPECT_EQ(default_norm_policy(probe, norm_kind::layer, dtype::f32,
                                {.gamma = param, .beta = param, .residual = rows, .residual_out = rows}, 8192).bufs, 2u);
  EXPECT_EQ(default_norm_policy(probe, norm_kind::layer, dtype::bf16, {.gamma = param, .beta = param}, 4096).bufs, 3u);
  const region rows_bf16 = hbm<bf16>::shape_only({130, 8192});
  const norm_policy bf16_residual = default_norm_policy(
      probe, norm_kind::layer, dtype::bf16, {.gamma = param, .beta = param, .residual = rows_bf16, .residual_out = rows_bf16}, 8192);
  EXPECT_EQ(bf16_residual.bufs, 2u);
  EXPECT_EQ(bf16_residual.work_bufs, 2u);
  EXPECT_EQ(default_norm_policy(probe, norm_kind::layer, dtype::bf16,
                                {.gamma = param, .beta = param, .residual = rows_bf16, .residual_out = rows_bf16}, 4096)
                .work_bufs,
            3u);
  std::mt19937 rng(50);
  problem p = random_problem<float>(rng, 130, 8192, true, true, true);
  p.residual_out = true;
  check<trn1, float, float>(op::layer, p);
  check<trn1, float, float>(op::rms, p);
  check<trn1, bf16, bf16>(op::layer, random_problem<bf16>(rng, 130, 8192, true, true, false));
  problem q = random_problem<bf16, float, bf16>(rng, 130, 8192, true, true, true);
  q.residual_out = true;
  check<trn1, bf16, bf16, float, bf16, bf16>(op::layer, q);  // bf16 x, r and residual_out
}

// ---- views: folded and unfoldable leading axes, in place -------------------------------------------------

/// x [2, 3, 5, H] whose axis-1 slices are 9 rows apart (5 used): axis 2 cannot fold into axis 1, so the front
/// door runs the kernel once per (axis 0, axis 1) slice of 5 rows; a row-major x folds all 30 rows into one call.
TEST(SystolicNorm, LeadingAxesFoldOrLoop) {
  // Every row goes through the same instructions wherever it lies, so the folded / looped runs must equal a
  // run on the same rows copied into one contiguous [30, H] matrix bit for bit (that run is checked against
  // the reference by the tests above).
  std::mt19937 rng(60);
  const std::size_t h = 33, pad_rows = 4, rows = 30;
  const std::array<std::size_t, 4> shape{2, 3, 5, h};
  const std::array<std::size_t, 4> strides{3 * (5 + pad_rows) * h, (5 + pad_rows) * h, h, 1};
  std::vector<float> x = uniform(rng, 2 * 3 * (5 + pad_rows) * h, -2.0f, 2.0f), gamma = uniform(rng, h, 0.5f, 1.5f);
  std::vector<float> y(rows * h, 0.0f), x_flat(rows * h), y_flat(rows * h);
  const tensor_view<const float, 4> xv{x.data(), shape, strides};
  for (std::size_t row = 0; row < rows; ++row)
    for (std::size_t j = 0; j < h; ++j) x_flat[row * h + j] = xv(row / 15, row / 5 % 3, row % 5, j);
  const tensor_view<const float, 2> flat{x_flat.data(), {rows, h}};
  const any_view gv = tensor_view<const float, 1>{gamma.data(), {h}};
  core<trn2> nc, nc_flat;
  trellis::layernorm(nc, xv, gv, {}, tensor_view<float, 4>{y.data(), shape}, {});
  trellis::layernorm(nc_flat, flat, gv, {}, tensor_view<float, 2>{y_flat.data(), {rows, h}}, {});
  std::size_t loads_of_x = 0;  // one kernel call per (axis 0, axis 1) slice: 6 calls of 5 rows
  std::size_t memsets = 0;
  for (const auto& rec : nc.records()) {
    memsets += rec.op == opcode::memset;
    loads_of_x += rec.op == opcode::dma_copy && rec.operands[1].space == memory_space::hbm && rec.operands[1].rows == 5;
  }
  EXPECT_EQ(loads_of_x, 6u);
  EXPECT_EQ(memsets, 2u * 6);  // eps column and ones row, per call
  for (std::size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], y_flat[i]) << i;

  // Row-major x [2, 3, 5, H]: all 30 rows fold into one call.
  core<trn2> nc2, nc2_flat;
  trellis::rmsnorm(nc2, tensor_view<const float, 4>{x_flat.data(), shape}, gv, tensor_view<float, 4>{y.data(), shape}, {});
  trellis::rmsnorm(nc2_flat, flat, gv, tensor_view<float, 2>{y_flat.data(), {rows, h}}, {});
  std::size_t calls = 0;
  for (const auto& rec : nc2.records()) calls += rec.op == opcode::memset && rec.operands[0].cols == 1;
  EXPECT_EQ(calls, 1u);
  EXPECT_EQ(nc2.records().size(), nc2_flat.records().size());
  for (std::size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], y_flat[i]) << i;
}

/// y may be x itself, residual_out may be x (the front door allows both): the results equal those of a run
/// without aliasing bit for bit (each row is read before it is written).
TEST(SystolicNorm, InPlace) {
  std::mt19937 rng(70);
  const std::size_t rows = 300, h = 300;
  std::vector<float> x = uniform(rng, rows * h, -2.0f, 2.0f), r = uniform(rng, rows * h, -1.0f, 1.0f);
  const std::vector<float> x0 = x;
  std::vector<float> y_sep(rows * h), s_sep(rows * h);
  const any_view rv = tensor_view<const float, 2>{r.data(), {rows, h}};
  const tensor_view<const float, 2> x0v{x0.data(), {rows, h}};
  core<trn1> nc, nc_sep;
  const tensor_view<float, 2> xv{x.data(), {rows, h}};
  trellis::layernorm(nc, xv, {}, {}, xv, {.residual = rv});  // y = x
  trellis::layernorm(nc_sep, x0v, {}, {}, tensor_view<float, 2>{y_sep.data(), {rows, h}}, {.residual = rv});
  for (std::size_t i = 0; i < x.size(); ++i) ASSERT_EQ(x[i], y_sep[i]) << i;

  x = x0;
  std::vector<float> y(rows * h);
  core<trn1> nc2, nc2_sep;
  trellis::rmsnorm(nc2, xv, {}, tensor_view<float, 2>{y.data(), {rows, h}}, {.residual = rv, .residual_out = xv});
  trellis::rmsnorm(nc2_sep, x0v, {}, tensor_view<float, 2>{y_sep.data(), {rows, h}},
                   {.residual = rv, .residual_out = tensor_view<float, 2>{s_sep.data(), {rows, h}}});
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(x[i], s_sep[i]) << i;  // residual_out = x + r, written over x
    ASSERT_EQ(y[i], y_sep[i]) << i;
  }
}

// ---- errors ------------------------------------------------------------------------------------------------

TEST(SystolicNorm, FrontDoorValidatesBeforeAnyInstruction) {
  std::vector<float> x(4 * 8, 1.0f), y(4 * 8), r(4 * 8);
  core<trn2> nc;
  const tensor_view<const float, 2> xv{x.data(), {4, 8}};
  const tensor_view<float, 2> yv{y.data(), {4, 8}};
  EXPECT_NE(error_of([&] { trellis::layernorm(nc, xv, {}, {}, yv, {.eps = -1.0f}); }).find("options.eps"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              trellis::rmsnorm(nc, xv, {}, yv, {.residual_out = tensor_view<float, 2>{r.data(), {4, 8}}});
            }).find("options.residual_out"),
            std::string::npos);
  std::vector<float> g(7);
  EXPECT_NE(error_of([&] {
              trellis::layernorm(nc, xv, tensor_view<const float, 1>{g.data(), {7}}, {}, yv, {});
            }).find("gamma"),
            std::string::npos);
  EXPECT_TRUE(nc.records().empty());
  // Every option the front door knows (eps, residual, residual_out) is implemented: nothing is rejected.
  trellis::layernorm(nc, xv, {}, {}, yv,
                     {.eps = 0.5f, .residual = tensor_view<const float, 2>{x.data(), {4, 8}},
                      .residual_out = tensor_view<float, 2>{r.data(), {4, 8}}});
  EXPECT_FALSE(nc.records().empty());
}

/// Asks for a hidden size that cannot fit, reads the limit the error names, and runs exactly that limit.
template <class M, class TX, class TY>
void expect_limit_fits(trellis::systolic::kernels::norm_kind kind, bool gamma, bool residual, std::size_t bufs,
                       std::size_t work_bufs = 2) {
  SCOPED_TRACE(std::string(M::spec.name) + " bufs " + std::to_string(bufs));
  core<M> nc{{.functional = false}};
  const auto run = [&](std::size_t h) {
    norm_operands ops;
    if (gamma) ops.gamma = ops.beta = hbm<float>::shape_only({1, h});
    if (residual) ops.residual = ops.residual_out = hbm<bf16>::shape_only({256, h});
    if (kind == trellis::systolic::kernels::norm_kind::rms) ops.beta = {};
    const auto x = hbm<const TX>::shape_only({256, h});
    const auto y = hbm<TY>::shape_only({256, h});
    if (kind == trellis::systolic::kernels::norm_kind::layer) layernorm_tiled(nc, x, y, ops, {.bufs = bufs, .work_bufs = work_bufs});
    else rmsnorm_tiled(nc, x, y, ops, {.bufs = bufs, .work_bufs = work_bufs});
  };
  const std::string message = error_of([&] { run(60000); });
  const std::size_t at = message.find("hidden ≤ ");
  ASSERT_NE(at, std::string::npos) << message;
  const std::size_t fits = std::stoul(message.substr(at + std::string("hidden ≤ ").size()));
  EXPECT_EQ(error_of([&] { run(fits); }), "<no error>");
  EXPECT_NE(error_of([&] { run(fits + 1); }).find("bytes per partition of SBUF"), std::string::npos);
}

TEST(SystolicNorm, RuleErrors) {
  using trellis::systolic::kernels::norm_kind;
  core<trn1> nc{{.functional = false}};
  // 30000 fp32 values per row: 3 x buffers + γ + β = 20 bytes per element > 192 KiB per partition.
  const auto big = hbm<float>::shape_only({256, 30000});
  auto gamma = hbm<float>::shape_only({1, 30000});
  const std::string too_big = error_of([&] { layernorm_tiled(nc, hbm<const float>(big), big, {.gamma = gamma, .beta = gamma}); });
  EXPECT_NE(too_big.find("layernorm_tiled: hidden 30000 needs"), std::string::npos) << too_big;
  EXPECT_NE(too_big.find("196608"), std::string::npos) << too_big;
  EXPECT_NE(too_big.find("hidden ≤ 9"), std::string::npos) << too_big;  // ≈ (196608 − 560) / 20.1
  EXPECT_TRUE(nc.records().empty());
  // ... and the limit it names fits the allocator (whose first fit would fail loudly otherwise), one element
  // more does not: for every buffer set (bf16 x adds fp32 work tiles, a residual its tiles, rmsnorm the
  // squares), on both machines.
  expect_limit_fits<trn1, float, float>(norm_kind::layer, true, false, 3);
  expect_limit_fits<trn1, bf16, bf16>(norm_kind::layer, true, true, 3, 3);
  expect_limit_fits<trn1, bf16, float>(norm_kind::rms, true, true, 2);
  expect_limit_fits<trn2, float, float>(norm_kind::rms, false, true, 2);
  expect_limit_fits<trn2, bf16, bf16>(norm_kind::rms, true, false, 4);

  const auto x = hbm<const float>::shape_only({256, 1024});
  const auto y = hbm<float>::shape_only({256, 1024});
  EXPECT_NE(error_of([&] { rmsnorm_tiled(nc, x, y, {}, {.stats_chunk = 1024}); }).find("bn_stats free size"),
            std::string::npos);
  EXPECT_NE(error_of([&] { rmsnorm_tiled(nc, x, y, {}, {.rows_per_tile = 129}); }).find("rows lie on partitions"),
            std::string::npos);
  EXPECT_NE(error_of([&] { rmsnorm_tiled(nc, x, y, {}, {.bufs = 1}); }).find("policy.bufs 1 is below 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { rmsnorm_tiled(nc, hbm<const bf16>::shape_only({256, 1024}), y, {}, {.work_bufs = 1}); })
                .find("policy.work_bufs 1 is below 2"),
            std::string::npos);
  EXPECT_NE(error_of([&] { rmsnorm_tiled(nc, x, y, {.beta = hbm<float>::shape_only({1, 1024})}); }).find("beta"),
            std::string::npos);
  EXPECT_NE(error_of([&] { layernorm_tiled(nc, x, hbm<float>::shape_only({256, 1023})); }).find("y shape"),
            std::string::npos);
  EXPECT_NE(error_of([&] { layernorm_tiled(nc, x, y, {.residual_out = y}); }).find("residual_out needs a residual"),
            std::string::npos);
  EXPECT_NE(error_of([&] { layernorm_tiled(nc, x, y, {.gamma = hbm<float>::shape_only({1, 1000})}); }).find("gamma shape"),
            std::string::npos);
  // Engine choices are checked before any instruction: tensor_tensor does not run on the Scalar Engine.
  EXPECT_NE(error_of([&] {
              layernorm_tiled(nc, x, y, {.gamma = hbm<float>::shape_only({1, 1024})}, {.scale_unit = engine::scalar});
            }).find("layernorm_tiled: policy.scale_unit is the scalar engine; tensor_tensor runs on vector or gpsimd"),
            std::string::npos);
}

// ---- timing ------------------------------------------------------------------------------------------------

struct mix {
  std::map<opcode, std::size_t> ops;
  std::map<engine, std::size_t> units;
};

mix instruction_mix(const core_state& nc) {
  mix m;
  for (const auto& r : nc.records()) {
    ++m.ops[r.op];
    ++m.units[r.unit];
  }
  return m;
}

TEST(SystolicNorm, TimingOnlyReportAndInstructionMix) {
  const std::size_t rows = 1000, h = 4096, tiles = 8, chunks = 8, banks = h / 512;
  {
    core<trn2> nc{{.functional = false}};
    const auto y = hbm<bf16>::shape_only({rows, h});
    layernorm_tiled(nc, hbm<const bf16>::shape_only({rows, h}), y,
                    {.gamma = hbm<float>::shape_only({1, h}), .beta = hbm<float>::shape_only({1, h})});
    const auto rep = nc.report();
    EXPECT_GT(rep.total_ns, 0.0);
    const mix m = instruction_mix(nc);
    EXPECT_EQ(m.ops.at(opcode::bn_stats), tiles * chunks);
    EXPECT_EQ(m.ops.at(opcode::bn_aggr), tiles);
    EXPECT_EQ(m.ops.at(opcode::nc_matmul), 2 * banks);  // the γ and β broadcasts only
    EXPECT_EQ(m.units.at(engine::tensor), 2 * banks);   // the Tensor Engine does nothing else
    EXPECT_EQ(m.ops.at(opcode::dma_copy), 2 + 2 * tiles);  // γ, β rows; x in, y out per tile
    EXPECT_EQ(m.ops.at(opcode::tensor_scalar), tiles);  // (s − mean)·rstd, one two-op instruction
    EXPECT_EQ(m.ops.at(opcode::tensor_tensor), 2 * tiles);  // ·γ, +β
    EXPECT_EQ(m.units.at(engine::gpsimd), tiles);           // +β
    EXPECT_EQ(m.ops.at(opcode::activation), tiles);       // rstd
    EXPECT_EQ(rep.hbm_read_bytes, double(rows * h * 2 + 2 * h * 4));
    EXPECT_EQ(rep.hbm_written_bytes, double(rows * h * 2));
    EXPECT_EQ(nc.sbuf.bytes_in_use(), 0u);
  }
  {
    // The pipeline keeps the bounding engine busy: over 64 tiles the Vector Engine (bn_stats, ·γ) is active
    // ≥ 90 % of the run; issued one tile at a time (no software pipeline) it was ≈ 66 %.
    core<trn2> nc{{.functional = false}};
    layernorm_tiled(nc, hbm<const bf16>::shape_only({8192, h}), hbm<bf16>::shape_only({8192, h}),
                    {.gamma = hbm<float>::shape_only({1, h}), .beta = hbm<float>::shape_only({1, h})});
    const auto rep = nc.report();
    EXPECT_GE(rep.engines[1].utilisation, 0.9) << rep.table();
  }
  {
    core<trn1> nc{{.functional = false}};
    rmsnorm_tiled(nc, hbm<const float>::shape_only({rows, h}), hbm<float>::shape_only({rows, h}),
                  {.gamma = hbm<float>::shape_only({1, h}), .residual = hbm<float>::shape_only({rows, h}),
                   .residual_out = hbm<float>::shape_only({rows, h})});
    EXPECT_GT(nc.report().total_ns, 0.0);
    const mix m = instruction_mix(nc);
    EXPECT_EQ(m.ops.count(opcode::bn_stats), 0u);
    EXPECT_EQ(m.ops.at(opcode::nc_matmul), banks);
    EXPECT_EQ(m.ops.at(opcode::activation), 2 * tiles);      // Σ s² (with reduce), rstd
    EXPECT_EQ(m.ops.at(opcode::dma_copy), 1 + 4 * tiles);     // γ; x, r in, s, y out
    EXPECT_EQ(m.ops.at(opcode::tensor_tensor), 2 * tiles);    // x + r, ·γ
    // rmsnorm with a residual moves 4 tensors per row: the DMA engines are the bound (≥ 90 % busy).
    const auto rep = nc.report();
    double dma_busy = 0;
    for (const auto& e : rep.dma_engines) dma_busy += e.utilisation / double(rep.dma_engines.size());
    EXPECT_GE(dma_busy, 0.9) << rep.table();
  }
}

/// A functional run through the front door and a timing-only run of the kernel give the same time.
TEST(SystolicNorm, TimingOnlyTimesLikeFunctional) {
  std::mt19937 rng(80);
  const std::size_t rows = 300, h = 1000;
  std::vector<float> x = uniform(rng, rows * h, -1.0f, 1.0f), g = uniform(rng, h, 0.5f, 1.5f), y(rows * h);
  core<trn2> functional;
  trellis::layernorm(functional, tensor_view<const float, 2>{x.data(), {rows, h}},
                     tensor_view<const float, 1>{g.data(), {h}}, tensor_view<const float, 1>{g.data(), {h}},
                     tensor_view<float, 2>{y.data(), {rows, h}}, {});
  core<trn2> timing{{.functional = false}};
  layernorm_tiled(timing, hbm<const float>::shape_only({rows, h}), hbm<float>::shape_only({rows, h}),
                  {.gamma = hbm<float>::shape_only({1, h}), .beta = hbm<float>::shape_only({1, h})});
  EXPECT_EQ(functional.records().size(), timing.records().size());
  EXPECT_DOUBLE_EQ(functional.total_ns(), timing.total_ns());
}

/// The predicted times quoted in docs/systolic-model.md ("Kernels: layernorm and rmsnorm"), printed on demand:
///   TRELLIS_PRINT_NORM_TIMES=1 build/rel/tests/trellis_systolic_test --gtest_filter=SystolicNorm.PrintPredictedTimes
template <class M, class TX>
void print_times(bool layer, std::size_t rows, std::size_t h, bool residual) {
  using trellis::systolic::kernels::default_norm_policy;
  using trellis::systolic::kernels::norm_kind;
  core<M> nc{{.functional = false}};
  norm_operands ops{.gamma = hbm<float>::shape_only({1, h})};
  if (layer) ops.beta = hbm<float>::shape_only({1, h});
  if (residual) {
    ops.residual = hbm<TX>::shape_only({rows, h});
    ops.residual_out = hbm<TX>::shape_only({rows, h});
  }
  const norm_kind kind = layer ? norm_kind::layer : norm_kind::rms;
  const norm_policy policy = default_norm_policy(nc, kind, dtype_of<TX>, ops, h);
  if (layer) layernorm_tiled(nc, hbm<const TX>::shape_only({rows, h}), hbm<TX>::shape_only({rows, h}), ops, policy);
  else rmsnorm_tiled(nc, hbm<const TX>::shape_only({rows, h}), hbm<TX>::shape_only({rows, h}), ops, policy);
  const auto r = nc.report();
  double dma = 0;
  for (const auto& e : r.dma_engines) dma += e.utilisation / double(r.dma_engines.size());
  std::printf("| %s | %s %zu × %zu %s%s | %zu, %s | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", M::spec.name,
              layer ? "layernorm" : "rmsnorm", rows, h, std::is_same_v<TX, bf16> ? "bf16" : "fp32",
              residual ? " + r, r_out" : "", policy.bufs,
              std::is_same_v<TX, bf16> ? std::to_string(policy.work_bufs).c_str() : "—", r.total_ns / 1e3, 100 * r.engines[1].utilisation,
              100 * r.engines[2].utilisation, 100 * r.engines[3].utilisation, 100 * r.engines[0].utilisation, 100 * dma,
              100 * r.mbu, (r.hbm_read_bytes + r.hbm_written_bytes) / r.total_ns);
}

TEST(SystolicNorm, PrintPredictedTimes) {
  if (!std::getenv("TRELLIS_PRINT_NORM_TIMES")) GTEST_SKIP() << "set TRELLIS_PRINT_NORM_TIMES=1 to print the table";
  std::puts("| machine | op, shape | bufs, work_bufs | µs | Vector % | Scalar % | GpSimd % | Tensor % | DMA engines % | MBU % | HBM GB/s |");
  const auto all = [](auto machine) {
    using M = decltype(machine);
    print_times<M, bf16>(true, 8192, 4096, false);
    print_times<M, bf16>(false, 8192, 4096, false);
    print_times<M, bf16>(true, 8192, 4096, true);
    print_times<M, bf16>(false, 8192, 4096, true);
    print_times<M, bf16>(true, 2048, 8192, false);
    print_times<M, bf16>(false, 2048, 8192, false);
    print_times<M, bf16>(true, 2048, 8192, true);
    print_times<M, float>(true, 2048, 8192, false);
    print_times<M, float>(false, 2048, 8192, false);
  };
  all(trn1{});
  all(trn2{});
}

}  // namespace
