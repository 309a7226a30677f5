// cpu: layernorm and rmsnorm against trellis::reference for both SIMD providers: γ/β present or
// absent, fused residual with and without residual_out, bf16 in/out, hidden sizes across the vector
// tails, padded rows, unaligned pointers, rank 3, in-place, cancellation-prone rows; threads 1 and
// 2 identical.

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

using trellis::any_output_view;
using trellis::any_view;
using trellis::bf16;
using trellis::tensor_view;
using trellis_test::guarded;
using trellis_test::with_threads;
using s2 = std::array<std::size_t, 2>;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

enum class alias { none, y_is_x, residual_out_is_x, residual_out_is_r, y_is_r };

struct norm_params {
  bool layer = true;
  std::size_t rows = 3, hidden = 64;
  bool rank3 = false;  // view [2, rows/2, hidden]
  bool gamma = true, beta = true, param_bf16 = false;
  bool residual = false, residual_bf16 = false, residual_out = false;
  std::size_t pad = 0, misalign = 0;
  float eps = 1e-5f;
  bool cancellation = false;  // rows of 1e4 + noise with std 0.1
  bool outlier_head = false;  // rows whose first 16 elements are 1e4 + noise, the rest noise
  alias aliasing = alias::none;
};

const char* to_string(alias a) {
  switch (a) {
    case alias::none:
      return "none";
    case alias::y_is_x:
      return "y=x";
    case alias::residual_out_is_x:
      return "residual_out=x";
    case alias::residual_out_is_r:
      return "residual_out=r";
    case alias::y_is_r:
      return "y=r";
  }
  return "?";
}

std::string describe(const norm_params& p) {
  std::ostringstream s;
  s << (p.layer ? "layernorm" : "rmsnorm") << " rows=" << p.rows << " hidden=" << p.hidden
    << " rank3=" << p.rank3 << " gamma=" << p.gamma << " beta=" << p.beta
    << (p.param_bf16 ? " (bf16 params)" : "") << " residual=" << p.residual
    << (p.residual_bf16 ? "(bf16)" : "") << " residual_out=" << p.residual_out << " pad=" << p.pad
    << " misalign=" << p.misalign << " eps=" << p.eps << " cancellation=" << p.cancellation << " outlier_head=" << p.outlier_head
    << " alias=" << to_string(p.aliasing);
  return s.str();
}

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

/// A [rows, hidden] guarded buffer seen as rank 2 or as [2, rows/2, hidden].
template <std::size_t Rank, class T>
tensor_view<T, Rank> shaped(T* data, const norm_params& p, std::size_t row_stride) {
  if constexpr (Rank == 2) {
    return {data, {p.rows, p.hidden}, {row_stride, 1}};
  } else {
    return {data, {2, p.rows / 2, p.hidden}, {p.rows / 2 * row_stride, row_stride, 1}};
  }
}

template <class Target, class Out, std::size_t Rank, class TX>
void call_norm(const Target& target, const norm_params& p, tensor_view<const TX, Rank> x,
               any_view gamma, any_view beta, tensor_view<Out, Rank> y, any_view residual,
               any_output_view residual_out) {
  if (p.layer)
    trellis::layernorm(target, x, gamma, beta, y,
                       {.eps = p.eps, .residual = residual, .residual_out = residual_out});
  else
    trellis::rmsnorm(target, x, gamma, y,
                     {.eps = p.eps, .residual = residual, .residual_out = residual_out});
}

/// Runs the norm on the reference and on Target (1 and 2 threads). For the CPU runs every output
/// lives in its own guarded buffer (or aliases an input as `p.aliasing` says); the reference always
/// gets separate fp32 outputs. Checks canaries, thread bit-identity, residual_out exactly, and y
/// within tol·(|γ|·(1 + |x̂|) + |β|) with tol = 1e-5 (1e-3 for cancellation-prone rows), plus one
/// bf16 ulp for bf16 y.
template <class Target, class TX, class TY, std::size_t Rank = 2>
bool check_norm(const norm_params& p, std::uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "(x " << type_name<TX>() << ", y " << type_name<TY>() << ") "
                                  << describe(p) << " seed=" << seed);
  std::mt19937 rng(seed);
  const s2 shape{p.rows, p.hidden};
  guarded<TX, 2> x(shape, p.pad, p.misalign);
  if (p.cancellation)
    x.fill([&](const s2&) {
      return 1e4f + std::uniform_real_distribution<float>(-0.1732f, 0.1732f)(rng);
    });
  else if (p.outlier_head)
    x.fill([&](const s2& i) {
      return (i[1] < 16 ? 1e4f : 0.0f) + std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    });
  else
    x.fill(trellis_test::uniform_fill{rng, -2.0f, 2.0f});
  guarded<float, 2> g32({1, p.hidden}), b32({1, p.hidden});
  g32.fill(trellis_test::uniform_fill{rng, 0.5f, 1.5f});
  b32.fill(trellis_test::uniform_fill{rng, -0.5f, 0.5f});
  guarded<bf16, 2> g16({1, p.hidden}), b16({1, p.hidden});
  g16.fill([&](const s2& i) { return g32.get(i); });
  b16.fill([&](const s2& i) { return b32.get(i); });
  if (p.param_bf16) {  // the reference and the CPU see the same values either way
    g32.fill([&](const s2& i) { return g16.get(i); });
    b32.fill([&](const s2& i) { return b16.get(i); });
  }
  const auto param = [&](bool present, guarded<float, 2>& f, guarded<bf16, 2>& h) -> any_view {
    if (!present) return {};
    if (p.param_bf16) return tensor_view<const bf16, 1>{h.data(), {p.hidden}};
    return tensor_view<const float, 1>{f.data(), {p.hidden}};
  };
  const any_view gamma = param(p.gamma, g32, g16), beta = param(p.beta, b32, b16);

  guarded<float, 2> r32(shape, p.pad ? p.pad + 1 : 0, p.misalign);
  guarded<bf16, 2> r16(shape, p.pad ? p.pad + 1 : 0, p.misalign);
  r32.fill(trellis_test::uniform_fill{rng, -1.0f, 1.0f});
  if (p.cancellation) {
    // Multiples of 2^-10 keep x + r exact in fp32 near 1e4 (whose ulp is 2^-10): the CPU normalises
    // the fp32 sum, the reference the exact one, and this test is about the statistics, not that
    // rounding.
    r32.fill([&](const s2& i) { return std::round(r32.get(i) * 1024.0f) / 1024.0f; });
  }
  r16.fill([&](const s2& i) { return r32.get(i); });
  const auto residual_view = [&](auto& r32b, auto& r16b) -> any_view {
    if (!p.residual) return {};
    if (p.residual_bf16)
      return shaped<Rank>(static_cast<const bf16*>(r16b.data()), p, r16b.strides()[0]);
    return shaped<Rank>(static_cast<const float*>(r32b.data()), p, r32b.strides()[0]);
  };

  // Reference: separate fp32 outputs.
  guarded<float, 2> y_ref(shape), s_ref(shape);
  const auto xv = shaped<Rank>(static_cast<const TX*>(x.data()), p, x.strides()[0]);
  call_norm(trellis::reference{}, p, xv, gamma, beta,
            shaped<Rank>(y_ref.data(), p, y_ref.strides()[0]), residual_view(r32, r16),
            p.residual_out ? any_output_view(shaped<Rank>(s_ref.data(), p, s_ref.strides()[0]))
                           : any_output_view{});

  struct run_result {
    std::vector<float> y, s;
    std::size_t damaged = 0;
    std::vector<std::uint32_t> y_bits;
  };
  const auto run_cpu = [&](int threads) {
    // Fresh copies of every buffer the call may write, so aliasing runs do not disturb the others.
    guarded<TX, 2> xc = x;
    guarded<float, 2> rc32 = r32;
    guarded<bf16, 2> rc16 = r16;
    guarded<TY, 2> yc(shape, p.pad ? p.pad + 2 : 0, p.misalign);
    yc.fill_value(nan_f);
    guarded<float, 2> sc32(shape, 1);
    guarded<bf16, 2> sc16(shape, 1);
    sc32.fill_value(nan_f);
    sc16.fill_value(nan_f);
    const bool s_is_bf16 = std::is_same_v<TX, bf16>;  // residual_out in x's type
    any_output_view s_out{};
    if (p.residual_out) {
      if (s_is_bf16)
        s_out = shaped<Rank>(sc16.data(), p, sc16.strides()[0]);
      else
        s_out = shaped<Rank>(sc32.data(), p, sc32.strides()[0]);
    }
    const auto xcv = shaped<Rank>(static_cast<const TX*>(xc.data()), p, xc.strides()[0]);
    run_result out;
    const Target target = with_threads<Target>(threads);
    const any_view rv = residual_view(rc32, rc16);
    std::vector<float> y_values, s_values;
    if constexpr (std::is_same_v<TX, TY>) {
      if (p.aliasing == alias::y_is_x) {
        call_norm(target, p, xcv, gamma, beta, shaped<Rank>(xc.data(), p, xc.strides()[0]), rv,
                  s_out);
        xc.for_each([&](const s2& i) {
          out.y.push_back(xc.get(i));
          out.y_bits.push_back(trellis_test::bits_of(xc.at(i)));
        });
        out.damaged = xc.damaged_canaries();
      }
    }
    if (p.aliasing == alias::residual_out_is_x) {
      call_norm(target, p, xcv, gamma, beta, shaped<Rank>(yc.data(), p, yc.strides()[0]), rv,
                shaped<Rank>(xc.data(), p, xc.strides()[0]));
      xc.for_each([&](const s2& i) { out.s.push_back(xc.get(i)); });
    } else if (p.aliasing == alias::residual_out_is_r) {
      const any_output_view s_r =
          p.residual_bf16 ? any_output_view(shaped<Rank>(rc16.data(), p, rc16.strides()[0]))
                          : any_output_view(shaped<Rank>(rc32.data(), p, rc32.strides()[0]));
      call_norm(target, p, xcv, gamma, beta, shaped<Rank>(yc.data(), p, yc.strides()[0]), rv, s_r);
      if (p.residual_bf16)
        rc16.for_each([&](const s2& i) { out.s.push_back(rc16.get(i)); });
      else
        rc32.for_each([&](const s2& i) { out.s.push_back(rc32.get(i)); });
    } else if (p.aliasing == alias::y_is_r) {
      if constexpr (std::is_same_v<TY, float>) {
        call_norm(target, p, xcv, gamma, beta, shaped<Rank>(rc32.data(), p, rc32.strides()[0]), rv,
                  s_out);
        rc32.for_each([&](const s2& i) {
          out.y.push_back(rc32.get(i));
          out.y_bits.push_back(trellis_test::bits_of(rc32.at(i)));
        });
        out.damaged = rc32.damaged_canaries();
      } else {
        call_norm(target, p, xcv, gamma, beta, shaped<Rank>(rc16.data(), p, rc16.strides()[0]), rv,
                  s_out);
        rc16.for_each([&](const s2& i) {
          out.y.push_back(rc16.get(i));
          out.y_bits.push_back(trellis_test::bits_of(rc16.at(i)));
        });
        out.damaged = rc16.damaged_canaries();
      }
    } else if (p.aliasing == alias::none) {
      call_norm(target, p, xcv, gamma, beta, shaped<Rank>(yc.data(), p, yc.strides()[0]), rv,
                s_out);
    }
    if (out.y.empty()) {
      yc.for_each([&](const s2& i) {
        out.y.push_back(yc.get(i));
        out.y_bits.push_back(trellis_test::bits_of(yc.at(i)));
      });
      out.damaged = yc.damaged_canaries();
    }
    if (out.s.empty() && p.residual_out) {
      if (s_is_bf16)
        sc16.for_each([&](const s2& i) { out.s.push_back(sc16.get(i)); });
      else
        sc32.for_each([&](const s2& i) { out.s.push_back(sc32.get(i)); });
      out.damaged += s_is_bf16 ? sc16.damaged_canaries() : sc32.damaged_canaries();
    }
    // The inputs that are not outputs must be unchanged.
    if (p.aliasing != alias::y_is_x && p.aliasing != alias::residual_out_is_x) {
      EXPECT_EQ(xc.snapshot(), x.snapshot()) << "x changed";
    }
    return out;
  };
  const run_result c1 = run_cpu(1), c2 = run_cpu(2);
  EXPECT_EQ(c1.damaged, 0u) << "wrote outside the outputs";
  EXPECT_EQ(c1.y_bits, c2.y_bits) << "threads=1 and threads=2 differ";
  bool ok = c1.damaged == 0 && c1.y_bits == c2.y_bits;

  // residual_out: the fp32 sum x + r rounded to its type, exactly.
  if (p.residual_out) {
    std::size_t bad = 0, e = 0;
    s_ref.for_each([&](const s2& i) {
      float want = s_ref.get(i);
      if (std::is_same_v<TX, bf16> && p.aliasing != alias::residual_out_is_r)
        want = trellis::round_to_bf16(want);
      if (p.aliasing == alias::residual_out_is_r && p.residual_bf16)
        want = trellis::round_to_bf16(want);
      if (!(c1.s[e] == want) && bad++ < 5)
        ADD_FAILURE() << "residual_out(" << i[0] << ", " << i[1] << ") = " << c1.s[e]
                      << ", expected " << want;
      ++e;
    });
    ok = ok && bad == 0;
  }

  // y against the reference.
  const double tol_rel = p.cancellation ? 1e-3 : 1e-5;
  std::size_t bad = 0, e = 0;
  double worst = 0.0;
  for (std::size_t row = 0; row < p.rows; ++row) {
    // x̂ from the reference's own output: x̂ = (y − β)/γ.
    for (std::size_t j = 0; j < p.hidden; ++j, ++e) {
      const double want = y_ref.get({row, j});
      const double gj = p.gamma ? g32.get({0, j}) : 1.0,
                   bj = p.layer && p.beta ? b32.get({0, j}) : 0.0;
      const double xhat = (want - bj) / gj;
      double tol = tol_rel * (std::fabs(gj) * (1.0 + std::fabs(xhat)) + std::fabs(bj));
      const double got = c1.y[e];
      double err = std::fabs(got - want);
      if constexpr (std::is_same_v<TY, bf16>) {
        const double r16v = trellis::round_to_bf16(float(want));
        err = std::fabs(got - r16v);
        tol += trellis_test::bf16_ulp(float(std::max(std::fabs(got), std::fabs(r16v))));
      }
      worst = std::max(worst, err / tol);
      if (!(err <= tol) && bad++ < 5)
        ADD_FAILURE() << "y(" << row << ", " << j << ") = " << got << ", reference " << want
                      << ", |error| " << err << " > " << tol;
    }
  }
  EXPECT_EQ(bad, 0u) << "elements outside the tolerance (worst error/tolerance " << worst << ")";
  if (std::getenv("TRELLIS_TEST_VERBOSE"))
    std::printf("%s %s %s: worst error/tolerance %g\n", type_name<TX>(), type_name<TY>(),
                describe(p).c_str(), worst);
  return ok && bad == 0;
}

const std::size_t hidden_sizes[] = {1, 7, 16, 17, 64, 65, 1000, 1025, 4096};

CPU_TEST_SUITE(Norm);

/// Every hidden size with a cycling mix of options; `layer` picks the op.
template <class Target, class TX, class TY>
void run_sweep(bool layer, std::uint32_t seed) {
  int c = 0;
  for (std::size_t hidden : hidden_sizes)
    for (int variant = 0; variant < 4; ++variant, ++c) {
      norm_params p{};
      p.layer = layer;
      p.hidden = hidden;
      p.rows = hidden >= 1000 ? 3 : 9;
      p.gamma = variant != 1;
      p.beta = variant != 2;
      p.param_bf16 = c % 3 == 2;
      p.residual = variant >= 2;
      p.residual_bf16 = c % 5 == 3;
      p.residual_out = variant == 3;
      p.pad = c % 4 == 1 ? 3 : 0;
      p.misalign = c % 6 == 5;
      p.eps = variant == 0   ? 1e-5f
              : variant == 1 ? 1e-6f
              : variant == 2 ? (hidden > 1 ? 0.0f : 1e-6f)
                             : 0.5f;
      if (!check_norm<Target, TX, TY>(p, seed + unsigned(c))) return;
    }
}

CPU_TEST(Norm, LayernormF32) { run_sweep<Target, float, float>(true, 1); }
CPU_TEST(Norm, LayernormBf16) { run_sweep<Target, bf16, bf16>(true, 2); }
CPU_TEST(Norm, LayernormBf16InF32Out) { run_sweep<Target, bf16, float>(true, 3); }
CPU_TEST(Norm, RmsnormF32) { run_sweep<Target, float, float>(false, 4); }
CPU_TEST(Norm, RmsnormBf16) { run_sweep<Target, bf16, bf16>(false, 5); }
CPU_TEST(Norm, RmsnormBf16InF32Out) { run_sweep<Target, bf16, float>(false, 6); }

CPU_TEST(Norm, CancellationProneRows) {
  // Mean 1e4, std 0.1: E[x²] − E[x]² in fp32 would have no correct digit left.
  for (bool layer : {true, false})
    for (std::size_t hidden : {7, 64, 1025, 4096}) {
      norm_params p{.layer = layer, .rows = 4, .hidden = hidden, .eps = 0.0f, .cancellation = true};
      if (!check_norm<Target, float, float>(p, 70u)) return;
      if (!check_norm<Target, float, float>({.layer = layer,
                                             .rows = 4,
                                             .hidden = hidden,
                                             .residual = true,
                                             .residual_out = true,
                                             .eps = 0.0f,
                                             .cancellation = true},
                                            71u))
        return;
    }
}

CPU_TEST(Norm, RowsWhoseFirstVectorIsFarFromTheMean) {
  // The one-pass statistics shift by the mean of the first vector; here that lies far from the row's
  // mean, so the row must take the two-pass path and still meet the ordinary bound.
  for (bool layer : {true, false})
    for (std::size_t hidden : {17, 64, 1025, 4096}) {
      norm_params p{.layer = layer, .rows = 3, .hidden = hidden, .outlier_head = true};
      if (!check_norm<Target, float, float>(p, 72u)) return;
    }
}

CPU_TEST(Norm, Rank3Views) {
  for (bool layer : {true, false}) {
    norm_params p{.layer = layer,
                  .rows = 6,
                  .hidden = 33,
                  .residual = true,
                  .residual_out = true,
                  .pad = 2,
                  .misalign = 1};
    if (!check_norm<Target, float, float, 3>(p, 80u)) return;
  }
}

CPU_TEST(Norm, InPlaceAndDocumentedAliases) {
  for (bool layer : {true, false})
    for (alias a :
         {alias::y_is_x, alias::residual_out_is_x, alias::residual_out_is_r, alias::y_is_r})
      for (std::size_t hidden : {17, 1025}) {
        norm_params p{.layer = layer, .rows = 5, .hidden = hidden, .pad = 1};
        p.residual = a != alias::y_is_x;
        p.residual_out = a == alias::residual_out_is_x || a == alias::residual_out_is_r;
        p.aliasing = a;
        if (!check_norm<Target, float, float>(p, 90u)) return;
        p.residual_bf16 = p.residual;  // so that y = r and residual_out = r have x's type
        if (!check_norm<Target, bf16, bf16>(p, 91u)) return;
      }
}

CPU_TEST(Norm, ManyRowsAcrossThreads) {
  norm_params p{.rows = 301, .hidden = 96, .residual = true, .residual_out = true};
  check_norm<Target, float, float>(p, 100u);
  p.layer = false;
  check_norm<Target, bf16, bf16>(p, 101u);
}

CPU_TEST(Norm, GroupsOfLongRows) {
  // Cached outputs with rows longer than trellis's column chunk (1024) are written in groups of rows, a
  // column chunk at a time across the group: several whole groups and a partial one (4096: 16 rows a
  // group), a chunk tail (2500 = 2·1024 + 452), padded and misaligned rows (γ and β then copied to x's
  // alignment), bf16 rows converted into per-row buffers, γ or β absent, rows whose statistics take the
  // two-pass path, and y = x in place.
  for (bool layer : {true, false}) {
    if (!check_norm<Target, float, float>({.layer = layer, .rows = 37, .hidden = 4096}, 120u)) return;
    // x one element off γ and β's alignment: γ and β are copied to match it.
    if (!check_norm<Target, float, float>({.layer = layer, .rows = 19, .hidden = 4096, .misalign = 1}, 125u)) return;
    if (!check_norm<Target, bf16, bf16>(
            {.layer = layer, .rows = 53, .hidden = 2500, .beta = false, .pad = 3, .misalign = 1}, 121u))
      return;
    if (!check_norm<Target, float, float>({.layer = layer, .rows = 29, .hidden = 2500, .gamma = false}, 122u)) return;
    if (!check_norm<Target, float, float>({.layer = layer, .rows = 21, .hidden = 4096, .outlier_head = true}, 123u))
      return;
  }
  // bf16 rows widened into the group's buffer, split over two threads (≥ 1 MiB of x each) at a row that is
  // not the first of a group on one thread: threads 1 and 2 must still agree bit for bit.
  if (!check_norm<Target, bf16, float>({.rows = 1100, .hidden = 1025}, 126u)) return;
  norm_params p{.rows = 40, .hidden = 2500, .pad = 1};
  p.aliasing = alias::y_is_x;
  check_norm<Target, float, float>(p, 124u);
}

CPU_TEST(Norm, OutputsPlacedJustAheadOfTheInputs) {
  // y a few bytes past x modulo 4 KiB (as consecutive buffers from one allocator lie) makes trellis walk
  // its rows backward, and γ and β within 1 KiB of y are copied away from it (see norm_blocking::alias_ring).
  // Neither may change a value: every output must equal, bit for bit, the one written to a separate buffer.
  // Cached groups of long rows, a row with a vector tail, rows shorter than a vector, and streamed outputs
  // (past 16 MiB, whose head aligns y rather than x); layernorm with γ and β and with β alone, rmsnorm.
  struct placement_case {
    std::size_t rows, hidden;
  };
  std::mt19937 rng(130);
  for (const placement_case c : {placement_case{19, 4096}, {5, 1000}, {9, 7}, {1030, 4100}})
    for (const std::size_t lead : {1u, 4u, 16u, 100u})
      for (const int op : {0, 1, 2}) {  // layernorm with γ and β, layernorm with β alone, rmsnorm
        const bool layer = op < 2;
        SCOPED_TRACE(testing::Message() << (op == 0 ? "layernorm " : op == 1 ? "layernorm without gamma " : "rmsnorm ")
                                        << c.rows << "x" << c.hidden
                                        << ", y " << 4 * lead << " bytes past x modulo 4 KiB");
        const std::size_t n = c.rows * c.hidden, ring = 1024;  // floats in 4 KiB
        const auto whole_rings = [&](std::size_t floats) { return (floats + ring - 1) / ring * ring; };
        // One arena: γ, β and x at one place in the ring (one float past the arena's start), then y, lead
        // floats further on.
        const std::size_t g_at = 1, b_at = g_at + whole_rings(c.hidden), x_base = b_at + whole_rings(c.hidden);
        const std::size_t y_at = x_base + whole_rings(n) + lead;
        std::vector<float> arena(y_at + n + ring, nan_f);
        for (std::size_t j = 0; j < c.hidden; ++j) {
          arena[g_at + j] = std::uniform_real_distribution<float>(0.5f, 1.5f)(rng);
          arena[b_at + j] = std::uniform_real_distribution<float>(-0.5f, 0.5f)(rng);
        }
        for (std::size_t i = 0; i < n; ++i) arena[x_base + i] = std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng);
        const std::vector<float> before = arena;
        const tensor_view<const float, 2> x{arena.data() + x_base, {c.rows, c.hidden}};
        const tensor_view<const float, 1> g{arena.data() + g_at, {c.hidden}}, b{arena.data() + b_at, {c.hidden}};
        // The separate output lies half the ring from x (and γ, β): a forward walk, γ and β read in place.
        std::vector<float> far(n + ring, nan_f);
        const auto address = [](const void* q) { return reinterpret_cast<std::uintptr_t>(q); };
        float* y_far = far.data() + (address(x.data()) + 4 * ring / 2 - address(far.data())) % (4 * ring) / 4;
        const Target target = with_threads<Target>(1);
        const auto run = [&](float* y) {
          const tensor_view<float, 2> yv{y, {c.rows, c.hidden}};
          if (layer) trellis::layernorm(target, x, op == 0 ? any_view(g) : any_view{}, b, yv);
          else trellis::rmsnorm(target, x, g, yv);
        };
        run(y_far);
        run(arena.data() + y_at);
        std::size_t differ = 0, damaged = 0;
        for (std::size_t i = 0; i < arena.size(); ++i) {
          const bool in_y = i >= y_at && i < y_at + n;
          if (in_y && trellis_test::bits_of(arena[i]) != trellis_test::bits_of(y_far[i - y_at]) && differ++ < 5)
            ADD_FAILURE() << "y[" << (i - y_at) << "] = " << arena[i] << " next to x, " << y_far[i - y_at] << " apart";
          if (!in_y && trellis_test::bits_of(arena[i]) != trellis_test::bits_of(before[i])) ++damaged;
        }
        EXPECT_EQ(differ, 0u);
        EXPECT_EQ(damaged, 0u) << "wrote outside y";
        if (differ || damaged) return;
      }
}

CPU_TEST(Norm, LargeOutputsStreamed) {
  // Outputs past trellis's streaming threshold (16 MiB) go out through non-temporal stores: rows that
  // start off the 64-byte alignment (padded and contiguous), a hidden size with a tail, the fused
  // residual with an fp32 residual_out (streamed too), and y = x in place.
  for (bool layer : {true, false}) {
    norm_params p{.layer = layer, .rows = 1030, .hidden = 4100, .residual = !layer, .residual_out = !layer,
                  .pad = 3, .misalign = 1};
    if (!check_norm<Target, float, float>(p, 110u)) return;
    // Contiguous rows off the alignment: each row's partial last vector is held and completed by the next
    // row's head (stream_carry), across the two threads' shares too.
    p.pad = 0;
    if (!check_norm<Target, float, float>(p, 112u)) return;
  }
  norm_params p{.rows = 1030, .hidden = 4100, .pad = 5};
  p.aliasing = alias::y_is_x;
  check_norm<Target, float, float>(p, 111u);
}

}  // namespace
