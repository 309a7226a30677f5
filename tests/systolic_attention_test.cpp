// Flash attention forward on the NeuronCore model (kernels/attention.hpp through the front door,
// systolic/attention.hpp): values against trellis::reference within the bound the kernel's numerics imply,
// exact one-hot cases (huge logits, causal alignment), rejected options, the instruction mix (masks only on
// diagonal tiles, fully masked tiles skipped, K/V read once per kv head group) and timing-only runs.
//
// Error bound (per output element o[b, h, i, e]; derived here, computed per row in bound_for_row()):
//   Inputs: q, k, v are rounded to bf16 on the way in (u_in = 2⁻⁸, bf16's unit roundoff with its 8-bit significand, for general fp32 inputs; 0 for bf16 inputs,
//   or fp32 inputs that hold bf16 values). QKᵀ multiplies bf16 values exactly in fp32 and accumulates d of
//   them in fp32, so each logit x_j = scale·q·k_j is off by at most
//     δ_j = |scale|·(2u_in + u_in² + γ_d·(1 + u_in)²)·Σ_e |q_e||k_je|  +  2⁻²²·(|x_j| + |m|)
//   (γ_d = d·2⁻²⁴/(1 − d·2⁻²⁴); the last term: fp32 rounding of scale·s and of its sum with −m). Softmax is
//   shift-invariant, so with δ = max_j δ_j every normalised weight is within a factor e^{±2δ} of the exact w_j.
//   P is then rounded to bf16 (u = 2⁻⁸) and exp is fp32 (≤ 2⁻²³); the row sum l, the P·V accumulation, the
//   α-rescales and the division are fp32 over n visible keys: together a relative ρ = u + 2⁻²¹ + (n + 16)·2⁻²⁴
//   per weight. With v rounded by u_in:
//     |o_e − o*_e| ≤ [(e^{2δ}·(1 + ρ) − 1)·(1 + u_in) + u_in] · Σ_j w_j |v_je|   (+ 2⁻²³|o*| for the reference's
//   own fp32 rounding, + 2⁻⁸(|o*| + bound) when o is bf16).
//   The inputs are chosen so the bound means something: bf16-valued q, k in [−2, 2] (logit spread ≈ 1.3, so
//   weights are far from uniform) make δ ≈ 10⁻⁵ and the bound ≈ 2⁻⁸·Σ w|v| (P's rounding), while a wrong key, a wrong mask
//   edge or a wrong head moves an output by a whole weight times |v|. One case uses general fp32 values.
//   A row that sees no key must be exactly 0 (and its lse −inf).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <trellis/reference.hpp>
#include <trellis/systolic.hpp>

#include "systolic_support.hpp"

namespace {

using namespace systolic_test;
using trellis::attention_options;
using trellis::bf16;
using trellis::tensor_view;
using trellis::systolic::kernels::attention_policy;
using trellis::systolic::kernels::flash_attention_fwd;

struct problem {
  std::size_t batch = 2, heads = 4, kv_heads = 4, seq_q = 7, seq_kv = 7, dim = 32;
  bool causal = false;
  std::optional<float> scale{};
  std::optional<std::size_t> window{};
  std::vector<std::int32_t> key_lengths{};  ///< empty: none
  bool lse = false;
  bool general_fp32 = false;  ///< fp32 inputs that are not bf16 values (the DMA rounds them)
  std::size_t mask_rank = 0;  ///< additive mask: 0 none, 2 [Sq, Skv], 4 [B or 1, H or 1, Sq, Skv]
  bool mask_per_batch = true, mask_per_head = true;  ///< rank 4: B (not 1) and H (not 1) on those axes
  bool mask_bf16 = false;     ///< the mask's element type
  std::string name() const {
    return "B=" + std::to_string(batch) + " H=" + std::to_string(heads) + " Hkv=" + std::to_string(kv_heads) +
           " Sq=" + std::to_string(seq_q) + " Skv=" + std::to_string(seq_kv) + " D=" + std::to_string(dim) +
           (causal ? " causal" : "") + (window ? " window=" + std::to_string(*window) : "") +
           (key_lengths.empty() ? "" : " key_lengths") + (lse ? " lse" : "") +
           (mask_rank == 0 ? ""
                           : " mask[" + std::string(mask_rank == 2 ? "" : mask_per_batch ? "B," : "1,") +
                                 (mask_rank == 2 ? "" : mask_per_head ? "H," : "1,") + "Sq,Skv]" +
                                 (mask_bf16 ? " bf16" : " f32"));
  }
};

/// Host tensors of one problem, with canaries after o and lse.
template <class T, class TO>
struct data {
  static constexpr std::size_t canary = 37;
  std::vector<T> q, k, v;
  std::vector<TO> o;
  std::vector<float> lse, expected, expected_lse;
  std::vector<float> mask_f32;   // the additive mask (one of the two), rows mask_ld apart
  std::vector<bf16> mask_bf16;
  std::size_t mask_ld = 0;
  problem p;

  explicit data(const problem& pr, std::uint32_t seed) : p(pr) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> qk(-2.0f, 2.0f), vals(-1.0f, 1.0f);
    auto fill = [&](std::vector<T>& x, std::size_t n, auto& dist) {
      x.resize(n);
      for (auto& e : x) {
        const float f = dist(rng);
        e = T(p.general_fp32 ? f : float(bf16(f)));
      }
    };
    fill(q, p.batch * p.heads * p.seq_q * p.dim, qk);
    fill(k, p.batch * p.kv_heads * p.seq_kv * p.dim, qk);
    fill(v, p.batch * p.kv_heads * p.seq_kv * p.dim, vals);
    o.assign(p.batch * p.heads * p.seq_q * p.dim + canary, TO(std::numeric_limits<float>::quiet_NaN()));
    for (std::size_t i = 0; i < canary; ++i) o[o.size() - 1 - i] = TO(123.0f);
    lse.assign(p.batch * p.heads * p.seq_q + canary, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t i = 0; i < canary; ++i) lse[lse.size() - 1 - i] = 321.0f;
    expected.assign(p.batch * p.heads * p.seq_q * p.dim, 0.0f);
    expected_lse.assign(p.batch * p.heads * p.seq_q, 0.0f);
    if (p.mask_rank != 0) fill_mask(rng);
  }

  std::size_t mask_batches() const { return p.mask_rank == 4 && p.mask_per_batch ? p.batch : 1; }
  std::size_t mask_heads() const { return p.mask_rank == 4 && p.mask_per_head ? p.heads : 1; }

  // bf16 values in [−2, 2] (the same in either type), about one in eight −inf, and the second row of the first
  // slice all −inf: a row the mask hides wholly (0, lse −inf). Rows are padded (a stride of Skv + 3).
  void fill_mask(std::mt19937& rng) {
    mask_ld = p.seq_kv + 3;
    const std::size_t rows = mask_batches() * mask_heads() * p.seq_q;
    std::uniform_real_distribution<float> value(-2.0f, 2.0f);
    std::vector<float> m(rows * mask_ld, 0.0f);
    for (std::size_t r = 0; r < rows; ++r)
      for (std::size_t j = 0; j < p.seq_kv; ++j)
        m[r * mask_ld + j] = (rng() % 8 == 0 || r == 1) ? -INFINITY : float(bf16(value(rng)));
    if (p.mask_bf16) {
      for (float e : m) mask_bf16.push_back(bf16(e));
    } else {
      mask_f32 = m;
    }
  }

  template <class M>
  trellis::any_view mask_view_of(const std::vector<M>& m) const {
    if (p.mask_rank == 2) return tensor_view<const M, 2>{m.data(), {p.seq_q, p.seq_kv}, {mask_ld, 1}};
    return tensor_view<const M, 4>{m.data(),
                                   {mask_batches(), mask_heads(), p.seq_q, p.seq_kv},
                                   {mask_heads() * p.seq_q * mask_ld, p.seq_q * mask_ld, mask_ld, 1}};
  }
  trellis::any_view mask_view() const {
    if (p.mask_rank == 0) return {};
    return p.mask_bf16 ? mask_view_of(mask_bf16) : mask_view_of(mask_f32);
  }

  tensor_view<const T, 4> qv() const { return {q.data(), {p.batch, p.heads, p.seq_q, p.dim}}; }
  tensor_view<const T, 4> kv() const { return {k.data(), {p.batch, p.kv_heads, p.seq_kv, p.dim}}; }
  tensor_view<const T, 4> vv() const { return {v.data(), {p.batch, p.kv_heads, p.seq_kv, p.dim}}; }
  tensor_view<TO, 4> ov() { return {o.data(), {p.batch, p.heads, p.seq_q, p.dim}}; }

  attention_options options(bool for_model) {
    attention_options opts{.scale = p.scale, .causal = p.causal, .window = p.window};
    if (!p.key_lengths.empty()) opts.key_lengths = {p.key_lengths.data(), {p.batch}};
    opts.mask = mask_view();
    if (p.lse) opts.lse = tensor_view<float, 3>{for_model ? lse.data() : expected_lse.data(), {p.batch, p.heads, p.seq_q}};
    return opts;
  }

  void run_reference() {
    trellis::attention(trellis::reference{}, qv(), kv(), vv(),
                       tensor_view<float, 4>{expected.data(), {p.batch, p.heads, p.seq_q, p.dim}}, options(false));
  }
};

struct row_bound {
  std::vector<double> value;  ///< per e
  double lse = 0;
  bool empty = false;         ///< the row sees no key
};

/// The bound of the file comment for row (b, h, i).
template <class T, class TO>
row_bound bound_for_row(const data<T, TO>& x, const attention_options& opts, std::size_t b, std::size_t h, std::size_t i) {
  const problem& p = x.p;
  const double u = 0x1p-8, u_in = (std::is_same_v<T, float> && p.general_fp32) ? 0x1p-8 : 0.0;
  const double scale = p.scale ? double(*p.scale) : 1.0 / std::sqrt(double(p.dim));
  const std::size_t hk = h / (p.heads / p.kv_heads);
  const auto keys = trellis::detail::visible_key_range(i, b, p.seq_q, p.seq_kv, opts);
  row_bound r;
  r.value.assign(p.dim, 0.0);
  if (keys.empty()) {
    r.empty = true;
    return r;
  }
  auto qe = [&](std::size_t e) { return double(float(x.q[((b * p.heads + h) * p.seq_q + i) * p.dim + e])); };
  auto ke = [&](std::size_t j, std::size_t e) { return double(float(x.k[((b * p.kv_heads + hk) * p.seq_kv + j) * p.dim + e])); };
  auto ve = [&](std::size_t j, std::size_t e) { return double(float(x.v[((b * p.kv_heads + hk) * p.seq_kv + j) * p.dim + e])); };
  const double gamma_d = double(p.dim) * 0x1p-24 / (1 - double(p.dim) * 0x1p-24);
  // An additive mask adds to the logits (its −inf entries hide keys) and rounds scale·s and the sum in fp32
  // before the exp (which then scales by 1): 2⁻²²·|scale·s| more in δ.
  const std::size_t mask_row = opts.mask ? trellis::detail::mask_row_offset(opts.mask, b, h, i) : 0;
  auto mask = [&](std::size_t j) { return opts.mask ? double(opts.mask.load(mask_row + j)) : 0.0; };
  std::vector<double> logit(keys.last), abs_dot(keys.last);
  std::vector<std::size_t> seen;  // the keys the mask leaves
  double m = -INFINITY;
  for (std::size_t j = keys.first; j < keys.last; ++j) {
    if (mask(j) == -INFINITY) continue;
    double dot = 0, a = 0;
    for (std::size_t e = 0; e < p.dim; ++e) {
      dot += qe(e) * ke(j, e);
      a += std::fabs(qe(e) * ke(j, e));
    }
    logit[j] = scale * dot + mask(j);
    abs_dot[j] = a;
    m = std::max(m, logit[j]);
    seen.push_back(j);
  }
  if (seen.empty()) {
    r.empty = true;
    return r;
  }
  double delta = 0, sum = 0;
  for (std::size_t j : seen) {
    delta = std::max(delta, std::fabs(scale) * (2 * u_in + u_in * u_in + gamma_d * (1 + u_in) * (1 + u_in)) * abs_dot[j] +
                                0x1p-22 * (std::fabs(logit[j]) + std::fabs(m)) +
                                (opts.mask ? 0x1p-22 * std::fabs(logit[j] - mask(j)) : 0.0));
    sum += std::exp(logit[j] - m);
  }
  const double n = double(seen.size());
  const double rho = u + 0x1p-21 + (n + 16) * 0x1p-24;
  const double factor = (std::exp(2 * delta) * (1 + rho) - 1) * (1 + u_in) + u_in;
  for (std::size_t e = 0; e < p.dim; ++e) {
    double wv = 0;
    for (std::size_t j : seen) wv += std::exp(logit[j] - m) / sum * std::fabs(ve(j, e));
    r.value[e] = factor * wv;
  }
  // lse = m + log Σ: the logits move by ≤ δ, the sum by a relative (n + 16)·2⁻²⁴, plus its own fp32 rounding.
  r.lse = delta + (n + 16) * 0x1p-24 + 0x1p-22 * (std::fabs(m) + std::fabs(std::log(sum)));
  return r;
}

/// Compares the model's outputs in x with the reference's (already computed), element by element.
template <class T, class TO>
void expect_within_bound(data<T, TO>& x) {
  const problem& p = x.p;
  const attention_options opts = x.options(false);
  std::size_t failures = 0;
  for (std::size_t b = 0; b < p.batch; ++b)
    for (std::size_t h = 0; h < p.heads; ++h)
      for (std::size_t i = 0; i < p.seq_q; ++i) {
        const row_bound r = bound_for_row(x, opts, b, h, i);
        const std::size_t row = (b * p.heads + h) * p.seq_q + i;
        for (std::size_t e = 0; e < p.dim; ++e) {
          const double got = double(float(x.o[row * p.dim + e])), want = double(x.expected[row * p.dim + e]);
          double bound = r.value[e] + 0x1p-23 * std::fabs(want);
          if (std::is_same_v<TO, bf16>) bound += 0x1p-8 * (std::fabs(want) + bound);
          const bool ok = r.empty ? got == 0.0 && !std::signbit(got) : std::fabs(got - want) <= bound;
          if (!ok && ++failures <= 5)
            ADD_FAILURE() << p.name() << ": o[" << b << "," << h << "," << i << "," << e << "] = " << got << ", reference "
                          << want << ", bound " << bound << (r.empty ? " (row sees no key: must be 0)" : "");
        }
        if (p.lse) {
          const double got = x.lse[row], want = x.expected_lse[row];
          const bool ok = r.empty ? got == -INFINITY : std::fabs(got - want) <= r.lse;
          if (!ok && ++failures <= 5)
            ADD_FAILURE() << p.name() << ": lse[" << b << "," << h << "," << i << "] = " << got << ", reference " << want
                          << ", bound " << r.lse;
        }
      }
  EXPECT_EQ(failures, 0u) << p.name();
  for (std::size_t c = 0; c < data<T, TO>::canary; ++c) {
    EXPECT_EQ(float(x.o[x.o.size() - 1 - c]), 123.0f) << p.name() << ": o's canary was overwritten";
    EXPECT_EQ(x.lse[x.lse.size() - 1 - c], 321.0f) << p.name() << ": lse's canary was overwritten";
  }
}

/// One problem through the front door on core<M>, checked against the reference.
template <class M, class T, class TO = float>
void check(const problem& p, std::uint32_t seed = 1) {
  SCOPED_TRACE(std::string(M::spec.name) + " " + p.name());
  data<T, TO> x(p, seed);
  core<M> nc;
  trellis::attention(nc, x.qv(), x.kv(), x.vv(), x.ov(), x.options(true));
  x.run_reference();
  expect_within_bound(x);
  EXPECT_EQ(nc.sbuf.bytes_in_use(), 0u);
  EXPECT_EQ(nc.psum.bytes_in_use(), 0u);
}

/// The same through the kernel with a policy of one's choosing (small blocks: several online-softmax steps).
template <class M, class T, class TO = float>
void check_policy(const problem& p, const attention_policy& policy, std::uint32_t seed = 2) {
  SCOPED_TRACE(std::string(M::spec.name) + " " + p.name() + " kv_block=" + std::to_string(policy.kv_block) +
               " key_chunk=" + std::to_string(policy.key_chunk) + " q_tile=" + std::to_string(policy.q_tile) +
               " resident_kv_bytes=" + std::to_string(policy.resident_kv_bytes));
  data<T, TO> x(p, seed);
  core<M> nc;
  const attention_options opts = x.options(true);
  const float scale = p.scale ? *p.scale : 1.0f / std::sqrt(float(p.dim));
  flash_attention_fwd(nc, trellis::systolic::attention_groups(x.qv(), x.kv(), x.vv(), x.ov(), opts),
                      {.scale = scale, .causal = p.causal, .window = p.window}, policy);
  x.run_reference();
  expect_within_bound(x);
}

template <class M>
class SystolicAttention : public ::testing::Test {};
using machines = ::testing::Types<trn1, trn2>;
TYPED_TEST_SUITE(SystolicAttention, machines);

// Sequence lengths off every tile size (1, 7, 129, 600), D ∈ {32, 64, 128}, Hkv ∈ {4, 2, 1} (MHA, GQA, MQA),
// causal or not, fp32 and bf16 inputs.
TYPED_TEST(SystolicAttention, MatchesReferenceAcrossShapes) {
  using M = TypeParam;
  const std::size_t dims[] = {32, 64, 128}, kv_heads[] = {4, 2, 1};
  std::size_t n = 0;
  for (std::size_t s : {1, 7, 129})
    for (bool causal : {false, true}) {
      const problem p{.kv_heads = kv_heads[n % 3], .seq_q = s, .seq_kv = s, .dim = dims[(n / 3 + n) % 3], .causal = causal};
      if (n % 2) check<M, bf16>(p, std::uint32_t(n));
      else check<M, float>(p, std::uint32_t(n));
      ++n;
    }
  // One long case per machine: 5 query tiles, 2 key chunks (one a 88-key tail), GQA.
  check<M, bf16>({.kv_heads = 2, .seq_q = 600, .seq_kv = 600, .dim = 64, .causal = true}, 7);
}

TYPED_TEST(SystolicAttention, UnequalLengthsUseTheLibrarysCausalAlignment) {
  using M = TypeParam;
  // Sq < Skv: queries are the last Sq positions. Sq > Skv: the first Sq − Skv rows see no key and are 0.
  check<M, bf16>({.batch = 1, .kv_heads = 2, .seq_q = 100, .seq_kv = 300, .dim = 64, .causal = true, .lse = true});
  check<M, float>({.batch = 1, .kv_heads = 1, .seq_q = 300, .seq_kv = 100, .dim = 32, .causal = true, .lse = true});
  check<M, bf16>({.batch = 1, .kv_heads = 4, .seq_q = 7, .seq_kv = 129, .dim = 32, .causal = false});
}

TYPED_TEST(SystolicAttention, KeyLengthsLseAndBf16Output) {
  using M = TypeParam;
  // Batch 0 sees 90 keys, batch 1 none (all zero, lse −inf); causal rows are limited by both.
  check<M, bf16, bf16>({.kv_heads = 2, .seq_q = 129, .seq_kv = 129, .dim = 64, .causal = true, .key_lengths = {90, 0},
                        .lse = true});
  check<M, bf16, bf16>({.kv_heads = 1, .seq_q = 7, .seq_kv = 200, .dim = 128, .key_lengths = {200, 13}, .lse = true});
  check<M, float>({.kv_heads = 2, .seq_q = 7, .seq_kv = 200, .dim = 32, .causal = true, .key_lengths = {3, 199}});
  check<M, bf16>({.batch = 1, .kv_heads = 4, .seq_q = 129, .seq_kv = 0, .dim = 32, .lse = true});  // no keys at all
}

TYPED_TEST(SystolicAttention, GeneralFp32InputsAreRoundedToBf16WithinTheirBound) {
  using M = TypeParam;
  // q, k, v that are not bf16 values: the DMA rounds them, and the bound carries u_in = 2⁻⁸ for each.
  check<M, float>({.batch = 1, .kv_heads = 2, .seq_q = 129, .seq_kv = 129, .dim = 64, .causal = true,
                   .general_fp32 = true});
  // A negative scale: the kernel tracks the row minimum of the raw scores and masks with +inf.
  check<M, bf16>({.batch = 1, .kv_heads = 1, .seq_q = 129, .seq_kv = 129, .dim = 32, .causal = true, .scale = -0.3f});
}

// Several online-softmax steps per query tile (the α-rescaling path), streamed and resident K/V, smaller query tiles.
TYPED_TEST(SystolicAttention, SmallBlocksExerciseTheOnlineSoftmax) {
  using M = TypeParam;
  const problem causal{.batch = 1, .kv_heads = 2, .seq_q = 300, .seq_kv = 600, .dim = 64, .causal = true, .lse = true};
  check_policy<M, bf16>(causal, {.key_chunk = 128, .kv_block = 256});                           // resident K/V
  check_policy<M, float>(causal, {.key_chunk = 256, .kv_block = 256, .resident_kv_bytes = 0});  // streamed
  check_policy<M, bf16>({.batch = 1, .kv_heads = 1, .seq_q = 200, .seq_kv = 200, .dim = 32, .causal = true},
                        {.q_tile = 64, .key_chunk = 128, .kv_block = 128, .resident_kv_bytes = 0});
  check_policy<M, bf16>({.batch = 1, .kv_heads = 2, .seq_q = 300, .seq_kv = 100, .dim = 32, .causal = true, .lse = true},
                        {.q_tile = 96, .key_chunk = 128, .kv_block = 128});
  // S evicted to SBUF before max and exp (the trn1 default) or read from PSUM (the trn2 default), on both.
  const bool evict_default = M::spec.ports.vector_scalar_share_psum;
  check_policy<M, float>(causal, {.key_chunk = 256, .kv_block = 512, .evict_scores = !evict_default});
}

// A sliding window (query i sees keys i + (Skv − Sq) − window < j ≤ i + (Skv − Sq); the library takes it with
// causal only): query tiles
// start at the block holding their first visible key, and chunks straddling a tile's window edge are masked.
TYPED_TEST(SystolicAttention, SlidingWindows) {
  using M = TypeParam;
  check<M, bf16>({.kv_heads = 2, .seq_q = 300, .seq_kv = 300, .dim = 64, .causal = true, .window = 100, .lse = true});
  check<M, float>({.batch = 1, .kv_heads = 1, .seq_q = 129, .seq_kv = 700, .dim = 32, .causal = true, .window = 513});
  check<M, bf16>({.batch = 1, .kv_heads = 2, .seq_q = 7, .seq_kv = 200, .dim = 32, .causal = true, .window = 1,
                  .key_lengths = {150}});
  // Windows wholly past some rows' key lengths: those rows see no key and are 0.
  check<M, bf16, bf16>({.kv_heads = 1, .seq_q = 200, .seq_kv = 200, .dim = 32, .causal = true, .window = 50,
                        .key_lengths = {200, 120}, .lse = true});
  // Several blocks per tile, streamed and resident, with the first block after key 0.
  const problem long_window{.batch = 1, .kv_heads = 2, .seq_q = 600, .seq_kv = 900, .dim = 64, .causal = true,
                            .window = 300, .lse = true};
  check_policy<M, bf16>(long_window, {.key_chunk = 128, .kv_block = 256});
  check_policy<M, float>(long_window, {.key_chunk = 128, .kv_block = 128, .resident_kv_bytes = 0});
}

// Scale 0: every visible key weighs the same; with masking, S is scaled before it is masked (0·−inf would be NaN).
TYPED_TEST(SystolicAttention, ScaleZeroWithMasking) {
  using M = TypeParam;
  check<M, bf16>({.batch = 1, .heads = 2, .kv_heads = 1, .seq_q = 5, .seq_kv = 9, .dim = 32, .scale = 0.0f});
  check<M, bf16>({.kv_heads = 2, .seq_q = 129, .seq_kv = 200, .dim = 32, .causal = true, .scale = 0.0f, .lse = true});
  check<M, float>({.batch = 1, .kv_heads = 1, .seq_q = 300, .seq_kv = 300, .dim = 64, .causal = true, .scale = 0.0f,
                   .window = 70});
}

// An additive mask, f32 or bf16, [Sq, Skv] or [B or 1, H or 1, Sq, Skv] with padded rows: DMA'd a chunk at a time
// and added to scale·S. Its −inf entries hide keys (one row of each slice is hidden wholly: 0, lse −inf), and
// it combines with causal masking, windows, key lengths, scale 0, a negative scale and several blocks.
TYPED_TEST(SystolicAttention, AdditiveMasks) {
  using M = TypeParam;
  check<M, bf16>({.kv_heads = 2, .seq_q = 129, .seq_kv = 200, .dim = 32, .lse = true, .mask_rank = 2});
  check<M, float>({.kv_heads = 2, .seq_q = 7, .seq_kv = 600, .dim = 64, .causal = true, .lse = true, .mask_rank = 4,
                   .mask_bf16 = true});
  check<M, bf16, bf16>({.kv_heads = 1, .seq_q = 130, .seq_kv = 130, .dim = 32, .causal = true, .window = 40,
                        .key_lengths = {130, 77}, .lse = true, .mask_rank = 4, .mask_per_batch = false});
  check<M, bf16>({.kv_heads = 2, .seq_q = 129, .seq_kv = 129, .dim = 32, .scale = 0.0f, .lse = true, .mask_rank = 4,
                  .mask_per_head = false});
  check<M, bf16>({.batch = 1, .kv_heads = 1, .seq_q = 129, .seq_kv = 129, .dim = 32, .causal = true, .scale = -0.3f,
                  .mask_rank = 2, .mask_bf16 = true});
  check<M, float>({.batch = 1, .kv_heads = 2, .seq_q = 129, .seq_kv = 129, .dim = 64, .general_fp32 = true,
                   .mask_rank = 2});
  const problem blocks{.batch = 1, .kv_heads = 2, .seq_q = 300, .seq_kv = 700, .dim = 64, .causal = true, .lse = true,
                       .mask_rank = 4};
  check_policy<M, bf16>(blocks, {.key_chunk = 128, .kv_block = 256});
  check_policy<M, float>(blocks, {.key_chunk = 256, .kv_block = 512, .resident_kv_bytes = 0, .mask_bufs = 1});
}

// A row masked wholly by a finite mask (−FLT_MAX, as some frameworks write "masked") is not empty: as in the
// reference, every key weighs the same after the add (the logits differences vanish at that magnitude), so the
// row is the mean of v. The mask is added to the scaled S in fp32 for this reason (dividing it by the scale
// instead would overflow to −inf and give 0).
TYPED_TEST(SystolicAttention, FiniteMaskedRowsAverageTheirKeys) {
  using M = TypeParam;
  const problem p{.batch = 1, .heads = 1, .kv_heads = 1, .seq_q = 3, .seq_kv = 5, .dim = 32, .mask_rank = 2};
  data<bf16, float> x(p, 4);
  std::fill(x.mask_f32.begin(), x.mask_f32.end(), 0.0f);
  for (std::size_t j = 0; j < p.seq_kv; ++j) x.mask_f32[1 * x.mask_ld + j] = -std::numeric_limits<float>::max();
  core<M> nc;
  trellis::attention(nc, x.qv(), x.kv(), x.vv(), x.ov(), x.options(true));
  x.run_reference();
  for (std::size_t e = 0; e < p.dim; ++e) {
    double mean = 0;
    for (std::size_t j = 0; j < p.seq_kv; ++j) mean += double(float(x.v[j * p.dim + e])) / double(p.seq_kv);
    EXPECT_NEAR(x.o[1 * p.dim + e], mean, 1e-6) << e;
    EXPECT_NEAR(x.expected[1 * p.dim + e], mean, 1e-6) << e;
  }
}

// One head per group (MHA): the software pipeline runs two steps ahead, across query tiles of one step each and
// across streamed K/V blocks; every buffer it reuses must have been released by then.
TYPED_TEST(SystolicAttention, MhaPipelinesAcrossTilesAndBlocks) {
  using M = TypeParam;
  const problem mha{.batch = 1, .heads = 2, .kv_heads = 2, .seq_q = 600, .seq_kv = 600, .dim = 32, .lse = true};
  check<M, bf16>(mha);  // 5 query tiles of one step each
  check_policy<M, bf16>(mha, {.key_chunk = 128, .kv_block = 128, .resident_kv_bytes = 0});  // 5 streamed blocks
}

/// q_i = [c_i, 0, ...], k_j = [f(j), 0, ...], scale 1: logits c_i·f(j), exact in bf16 and fp32. With gaps of
/// ≥ 100 between a row's best key and the rest, the softmax is one-hot to far below fp32 resolution, so the
/// output must be exactly the best visible key's v row — which pins down every mask edge.
template <class M>
void check_one_hot(std::size_t seq_q, std::size_t seq_kv, bool causal, float c_scale, bool alternate,
                   const attention_policy& policy, bool expect_huge) {
  const std::size_t d = 32;
  SCOPED_TRACE(std::string(M::spec.name) + " one-hot Sq=" + std::to_string(seq_q) + " Skv=" + std::to_string(seq_kv) +
               (causal ? " causal" : ""));
  problem p{.batch = 1, .heads = 2, .kv_heads = 1, .seq_q = seq_q, .seq_kv = seq_kv, .dim = d, .causal = causal,
            .scale = 1.0f};
  data<bf16, float> x(p, 5);
  std::fill(x.q.begin(), x.q.end(), bf16(0.0f));
  std::fill(x.k.begin(), x.k.end(), bf16(0.0f));
  for (std::size_t h = 0; h < 2; ++h)
    for (std::size_t i = 0; i < seq_q; ++i) x.q[(h * seq_q + i) * d] = bf16(h == 0 ? c_scale : -c_scale);
  for (std::size_t j = 0; j < seq_kv; ++j)  // f(j) = ±(j + 1): exact in bf16 up to 256
    x.k[j * d] = bf16(float(j + 1) * (alternate && j % 2 ? -1.0f : 1.0f));
  core<M> nc;
  const attention_options opts = x.options(true);
  flash_attention_fwd(nc, trellis::systolic::attention_groups(x.qv(), x.kv(), x.vv(), x.ov(), opts),
                      {.scale = 1.0f, .causal = causal}, policy);
  x.run_reference();
  double largest = 0;
  for (std::size_t h = 0; h < 2; ++h)
    for (std::size_t i = 0; i < seq_q; ++i) {
      const auto keys = trellis::detail::visible_key_range(i, 0, seq_q, seq_kv, opts);
      for (std::size_t j = keys.first; j < keys.last; ++j)
        largest = std::max(largest, std::fabs(double(float(x.q[(h * seq_q + i) * d])) * double(float(x.k[j * d]))));
      for (std::size_t e = 0; e < d; ++e) {
        const float got = x.o[(h * seq_q + i) * d + e], want = x.expected[(h * seq_q + i) * d + e];
        ASSERT_TRUE(std::isfinite(got)) << h << "," << i << "," << e;
        ASSERT_NEAR(got, want, 1e-6 * std::fabs(want) + 1e-30) << h << "," << i << "," << e;
      }
    }
  if (expect_huge) {
    EXPECT_GE(largest, 1e4);  // the logits really are huge
  }
}

TYPED_TEST(SystolicAttention, OneHotRowsPinTheMaskEdgesAndSurviveHugeLogits) {
  using M = TypeParam;
  // Logits ±100·(j + 1) up to ±1e4 (head 0 prefers the last visible even key, head 1 the last odd one).
  check_one_hot<M>(100, 100, false, 100.0f, true, {}, true);
  check_one_hot<M>(100, 100, true, 100.0f, true, {}, false);
  // Rising logits: each row's output is the v of its last visible key; several steps per tile.
  check_one_hot<M>(130, 250, true, 100.0f, false, {.key_chunk = 128, .kv_block = 128}, false);
  check_one_hot<M>(250, 130, true, 100.0f, false, {.key_chunk = 128, .kv_block = 128, .resident_kv_bytes = 0}, false);
}

TEST(SystolicAttentionRules, RejectsWhatTheModelCannotRunWithoutWriting) {
  problem p{.batch = 1, .heads = 1, .kv_heads = 1, .seq_q = 4, .seq_kv = 4, .dim = 32};
  data<float, float> x(p, 3);
  core<trn2> nc;
  problem wide{.batch = 1, .heads = 1, .kv_heads = 1, .seq_q = 2, .seq_kv = 2, .dim = 256};
  data<float, float> y(wide, 3);
  EXPECT_EQ(error_of([&] { trellis::attention(nc, y.qv(), y.kv(), y.vv(), y.ov()); }),
            "attention: q: head dim 256 exceeds 128 on the NeuronCore model (trn2) (the head dim lies on the "
            "partitions of Qᵀ and Kᵀ)");
  EXPECT_EQ(nc.records().size(), 0u);
  for (std::size_t i = 0; i < 2 * 256; ++i) ASSERT_TRUE(std::isnan(y.o[i])) << "no partial write";
  // Policies the kernel cannot run.
  auto groups = trellis::systolic::attention_groups(x.qv(), x.kv(), x.vv(), x.ov(), {});
  EXPECT_NE(error_of([&] { flash_attention_fwd(nc, groups, {.scale = 1.0f}, {.key_chunk = 100}); }).find("key_chunk 100"),
            std::string::npos);
  EXPECT_NE(error_of([&] { flash_attention_fwd(nc, groups, {.scale = 1.0f}, {.kv_block = 700}); }).find("kv_block 700"),
            std::string::npos);
  EXPECT_NE(error_of([&] { flash_attention_fwd(nc, groups, {.scale = 1.0f}, {.stat_bufs = 2}); }).find("stat_bufs >= 3"),
            std::string::npos);
  EXPECT_EQ(nc.records().size(), 0u);
}

std::size_t count_op(const core_state& nc, opcode op) {
  return std::size_t(std::count_if(nc.records().begin(), nc.records().end(), [&](const auto& r) { return r.op == op; }));
}
std::size_t count_exps(const core_state& nc) {  // one exp-with-row-sum activation per computed S chunk
  return std::size_t(std::count_if(nc.records().begin(), nc.records().end(), [](const auto& r) {
    return r.op == opcode::activation && r.attributes.func == activation_function::exp && r.attributes.reduce;
  }));
}

TEST(SystolicAttentionMix, CausalMasksOnlyDiagonalTilesAndSkipsMaskedOnes) {
  // S = 1024, one head: 8 query tiles of 128; tile t sees keys [0, 128·(t + 1)), i.e. 1, 1, 1, 1, 2, 2, 2, 2
  // chunks of 512, exactly one of which straddles the diagonal. Without causal: 2 chunks per tile, no mask.
  problem p{.batch = 1, .heads = 1, .kv_heads = 1, .seq_q = 1024, .seq_kv = 1024, .dim = 64, .causal = true};
  data<bf16, float> x(p, 4);
  core<trn2> causal{{.functional = false}}, full{{.functional = false}};
  trellis::attention(causal, x.qv(), x.kv(), x.vv(), x.ov(), {.causal = true});
  trellis::attention(full, x.qv(), x.kv(), x.vv(), x.ov());
  EXPECT_EQ(count_op(causal, opcode::affine_select), 8u);
  EXPECT_EQ(count_exps(causal), 12u);
  EXPECT_EQ(count_op(full, opcode::affine_select), 0u);
  EXPECT_EQ(count_exps(full), 16u);
  // Each S chunk is one QKᵀ matmul; each 128-key piece one transpose and one PV matmul.
  EXPECT_EQ(count_op(full, opcode::nc_matmul), 16u + 8u * 8u);
  EXPECT_EQ(count_op(full, opcode::nc_transpose), 8u * 8u);
  EXPECT_EQ(count_op(causal, opcode::nc_matmul), 12u + 36u);  // Σ (t + 1) pieces over 8 tiles = 36
  // trn2 has DMA transposes for bf16 inputs: no Tensor Engine transposes of Q or K. The skipped work is exact:
  // QKᵀ over Σ 128·(t + 1) = 36·128 keys instead of 64·128, and 36 P·V pieces instead of 64.
  EXPECT_DOUBLE_EQ(causal.report().model_flops, full.report().model_flops * 36.0 / 64.0);
}

/// Bytes the DMAs read from [base, base + bytes).
double bytes_read_from(const core_state& nc, const void* base, std::size_t bytes) {
  const auto lo = reinterpret_cast<std::uintptr_t>(base), hi = lo + bytes;
  double total = 0;
  for (const auto& r : nc.records())
    if (r.op == opcode::dma_copy)
      for (const auto& o : r.operands)
        if (!o.written && o.space == memory_space::hbm && o.address >= lo && o.address < hi) total += double(o.bytes());
  return total;
}

TEST(SystolicAttentionMix, GqaReadsEachKvHeadOncePerGroup) {
  for (std::size_t kv_heads : {1, 2, 4}) {
    problem p{.batch = 2, .heads = 4, .kv_heads = kv_heads, .seq_q = 600, .seq_kv = 600, .dim = 64};
    data<bf16, float> x(p, 6);
    const std::size_t kv_bytes = x.k.size() * sizeof(bf16);
    core<trn2> resident{{.functional = false}}, streamed{{.functional = false}};
    trellis::attention(resident, x.qv(), x.kv(), x.vv(), x.ov());
    EXPECT_EQ(bytes_read_from(resident, x.k.data(), kv_bytes), double(kv_bytes)) << kv_heads;
    EXPECT_EQ(bytes_read_from(resident, x.v.data(), kv_bytes), double(kv_bytes)) << kv_heads;
    EXPECT_EQ(bytes_read_from(resident, x.q.data(), x.q.size() * sizeof(bf16)), double(x.q.size() * sizeof(bf16)));
    // Streamed: once per query tile (5 of them) for all the group's heads, not once per head.
    flash_attention_fwd(streamed, trellis::systolic::attention_groups(x.qv(), x.kv(), x.vv(), x.ov(), {}),
                        {.scale = 0.125f}, {.resident_kv_bytes = 0});
    EXPECT_EQ(bytes_read_from(streamed, x.k.data(), kv_bytes), 5.0 * double(kv_bytes)) << kv_heads;
    EXPECT_EQ(bytes_read_from(streamed, x.v.data(), kv_bytes), 5.0 * double(kv_bytes)) << kv_heads;
  }
}

TEST(SystolicAttentionMix, Trn1TransposesOnTheTensorEngine) {
  // No DMA transpose on v2: Qᵀ is one Tensor Engine transpose per (tile, head), Kᵀ one per 128 keys.
  problem p{.batch = 1, .heads = 2, .kv_heads = 1, .seq_q = 256, .seq_kv = 256, .dim = 64};
  data<bf16, float> x(p, 8);
  core<trn1> nc{{.functional = false}};
  trellis::attention(nc, x.qv(), x.kv(), x.vv(), x.ov());
  const std::size_t q_t = 2 * 2, k_t = 2, p_t = 2 * 2 * 2;  // Q: 2 tiles × 2 heads; K: 2 pieces; P: 2 × 2 × 2
  EXPECT_EQ(count_op(nc, opcode::nc_transpose), q_t + k_t + p_t);
  for (const auto& r : nc.records())
    if (r.op == opcode::dma_copy) {
      EXPECT_FALSE(r.attributes.transpose);
    }
}

TEST(SystolicAttentionTiming, TimingOnlyRunsReportTheSameTimeAsFunctionalOnes) {
  problem p{.batch = 1, .heads = 2, .kv_heads = 1, .seq_q = 200, .seq_kv = 300, .dim = 64, .causal = true};
  data<bf16, float> x(p, 9);
  core<trn2> functional, timing_only{{.functional = false}};
  trellis::attention(functional, x.qv(), x.kv(), x.vv(), x.ov(), {.causal = true});
  trellis::attention(timing_only, x.qv(), x.kv(), x.vv(), x.ov(), {.causal = true});
  const auto r = timing_only.report();
  EXPECT_GT(r.total_ns, 0.0);
  EXPECT_EQ(r.total_ns, functional.report().total_ns);
  EXPECT_GT(r.model_flops, 0.0);
  for (const auto& e : r.engines) EXPECT_GT(e.busy_ns, 0.0) << e.name;  // GpSimd: the diagonal masks
}

}  // namespace
