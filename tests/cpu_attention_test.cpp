// cpu: attention against trellis::reference for both SIMD providers: sweeps over Sq, Skv, D, causal
// and not, GQA/MQA, Sq ≠ Skv alignment, fully masked rows (exactly 0), huge logits, bf16, padded
// and unaligned views; threads = 1 and 2 bit-identical.

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cpu_support.hpp"

namespace {

using trellis::bf16;
using trellis_test::guarded;
using trellis_test::with_threads;
using s4 = std::array<std::size_t, 4>;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr double u32 = 1.0 / (1 << 24);

struct att_params {
  std::size_t batch = 1, heads = 2, kv_heads = 2, sq, skv, dim;
  bool causal = false;
  std::optional<float> scale{};
  std::size_t pad = 0, misalign = 0;
  float magnitude = 1.0f;  // q and k are uniform in [-magnitude, magnitude]
  std::vector<std::int32_t> key_lengths{};  // per batch; empty: every key
  int mask = 0;             // 0 none, 1 [Sq, Skv], 2 [B, H, Sq, Skv], 3 [1, H, Sq, Skv]
  bool mask_bf16 = false;
  std::optional<std::size_t> window{};
  bool lse = false;
};

std::string describe(const att_params& p) {
  std::ostringstream s;
  s << "B=" << p.batch << " H=" << p.heads << " Hkv=" << p.kv_heads << " Sq=" << p.sq
    << " Skv=" << p.skv << " D=" << p.dim << " causal=" << p.causal
    << " scale=" << (p.scale ? std::to_string(*p.scale) : "default") << " pad=" << p.pad
    << " misalign=" << p.misalign << " |q|,|k|<=" << p.magnitude << " mask=" << p.mask
    << (p.mask_bf16 ? "(bf16)" : "") << " window=" << (p.window ? std::to_string(*p.window) : "none")
    << " lse=" << p.lse << " lengths=";
  for (auto n : p.key_lengths) s << n << ' ';
  return s.str();
}

template <class T>
const char* type_name() {
  return std::is_same_v<T, float> ? "f32" : "bf16";
}

/// Runs attention on the reference and on Target (1 and 2 threads) and checks canaries, thread
/// bit-identity, exact zeros for rows that see no key, and |o − ref| ≤ tolerance, where the
/// tolerance is 1e-5·(1 + |ref|) plus the first-order effect of the fp32 rounding of the logits
/// (which matters only for huge logits), plus one bf16 ulp for a bf16 output.
template <class Target, class T, class TO>
bool check_attention(const att_params& p, std::uint32_t seed) {
  SCOPED_TRACE(testing::Message() << "(" << type_name<T>() << " in, " << type_name<TO>() << " out) "
                                  << describe(p) << " seed=" << seed);
  std::mt19937 rng(seed);
  guarded<T, 4> q({p.batch, p.heads, p.sq, p.dim}, p.pad, p.misalign);
  guarded<T, 4> k({p.batch, p.kv_heads, p.skv, p.dim}, p.pad, p.misalign);
  guarded<T, 4> v({p.batch, p.kv_heads, p.skv, p.dim}, p.pad ? p.pad + 1 : 0, p.misalign);
  q.fill(trellis_test::uniform_fill{rng, -p.magnitude, p.magnitude});
  k.fill(trellis_test::uniform_fill{rng, -p.magnitude, p.magnitude});
  v.fill(trellis_test::uniform_fill{rng});
  // The additive mask: uniform in [-2, 2], one entry in 8 −inf, and query row 1 of head 0 all −inf
  // (a row every key of which is masked must be exactly 0, its lse −inf).
  const s4 mask_shape = p.mask == 1   ? s4{1, 1, p.sq, p.skv}
                        : p.mask == 2 ? s4{p.batch, p.heads, p.sq, p.skv}
                                      : s4{1, p.heads, p.sq, p.skv};
  guarded<float, 4> mask32(mask_shape, p.pad);
  guarded<bf16, 4> mask16(mask_shape, p.pad);
  const auto mask_value = [&](const s4& i) {
    if (i[1] == 0 && i[2] == 1) return -std::numeric_limits<float>::infinity();
    if (rng() % 8 == 0) return -std::numeric_limits<float>::infinity();
    return trellis::round_to_bf16(std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng));
  };
  if (p.mask) {
    mask32.fill(mask_value);
    mask16.fill([&](const s4& i) { return mask32.get(i); });
  }
  trellis::any_view mask{};
  if (p.mask == 1) {  // rank 2 [Sq, Skv]
    const auto& m = mask32;
    if (p.mask_bf16)
      mask = trellis::tensor_view<const bf16, 2>{mask16.data(), {p.sq, p.skv}, {mask16.strides()[2], 1}};
    else
      mask = trellis::tensor_view<const float, 2>{m.data(), {p.sq, p.skv}, {m.strides()[2], 1}};
  } else if (p.mask) {
    if (p.mask_bf16) mask = mask16.cview();
    else mask = mask32.cview();
  }
  const auto mask_at = [&](std::size_t b, std::size_t h, std::size_t i, std::size_t j) {
    if (!p.mask) return 0.0f;
    return mask32.get({p.mask == 2 ? b : 0, p.mask == 1 ? 0 : h, i, j});
  };
  trellis::tensor_view<const std::int32_t, 1> lengths{};
  if (!p.key_lengths.empty()) lengths = {p.key_lengths.data(), {p.key_lengths.size()}};
  guarded<float, 3> lse_ref({p.batch, p.heads, p.sq}), lse1({p.batch, p.heads, p.sq}, 1),
      lse2({p.batch, p.heads, p.sq}, 2);
  lse1.fill_value(nan_f);
  lse2.fill_value(nan_f);
  const auto with_lse = [&](guarded<float, 3>& l) {
    return trellis::attention_options{.scale = p.scale,
                                      .causal = p.causal,
                                      .key_lengths = lengths,
                                      .mask = mask,
                                      .window = p.window,
                                      .lse = p.lse ? trellis::any_output_view(l.view())
                                                   : trellis::any_output_view{}};
  };
  const auto make_o = [&] {
    guarded<TO, 4> o({p.batch, p.heads, p.sq, p.dim}, p.pad ? p.pad + 2 : 0, p.misalign);
    o.fill_value(nan_f);
    return o;
  };
  guarded<float, 4> ref({p.batch, p.heads, p.sq, p.dim});
  auto o1 = make_o(), o2 = make_o();
  trellis::attention(trellis::reference{}, q.cview(), k.cview(), v.cview(), ref.view(),
                     with_lse(lse_ref));
  trellis::attention(with_threads<Target>(1), q.cview(), k.cview(), v.cview(), o1.view(),
                     with_lse(lse1));
  trellis::attention(with_threads<Target>(2), q.cview(), k.cview(), v.cview(), o2.view(),
                     with_lse(lse2));
  if (p.lse) {
    EXPECT_EQ(lse1.damaged_canaries() + lse2.damaged_canaries(), 0u) << "wrote outside lse";
    std::size_t lse_differ = 0;
    lse1.for_each([&](const auto& i) { lse_differ += !trellis_test::same_bits(lse1.at(i), lse2.at(i)); });
    EXPECT_EQ(lse_differ, 0u) << "lse: threads=1 and threads=2 differ";
  }
  const trellis::attention_options opts = with_lse(lse_ref);

  EXPECT_EQ(o1.damaged_canaries(), 0u) << "threads=1 wrote outside o";
  EXPECT_EQ(o2.damaged_canaries(), 0u) << "threads=2 wrote outside o";
  std::size_t differ = 0;
  o1.for_each([&](const s4& i) { differ += !trellis_test::same_bits(o1.at(i), o2.at(i)); });
  EXPECT_EQ(differ, 0u) << "threads=1 and threads=2 differ";
  bool ok = differ == 0 && o1.damaged_canaries() == 0 && o2.damaged_canaries() == 0;

  const float scale = p.scale ? *p.scale : 1.0f / std::sqrt(float(p.dim));
  const std::size_t group = p.heads / p.kv_heads;
  std::size_t bad = 0;
  double worst = 0.0;
  for (std::size_t b = 0; b < p.batch; ++b)
    for (std::size_t h = 0; h < p.heads; ++h)
      for (std::size_t i = 0; i < p.sq; ++i) {
        const std::size_t hk = h / group;
        const auto keys = trellis::detail::visible_key_range(i, b, p.sq, p.skv, opts);
        // Logit rounding: |δs_j| ≤ scale·2D·u·Σ|q||k_j| + u·(|s_j| + |mask_j|); o moves by at
        // most max|δs|·2·max|v − o|. Keys masked with −inf do not count.
        double ds = 0.0;
        bool any_key = false;
        for (std::size_t j = keys.first; j < keys.last; ++j) {
          const float mj = mask_at(b, h, i, j);
          if (std::isinf(mj)) continue;
          any_key = true;
          double abs_dot = 0.0, dot = 0.0;
          for (std::size_t d = 0; d < p.dim; ++d) {
            abs_dot += std::fabs(double(q.get({b, h, i, d})) * k.get({b, hk, j, d}));
            dot += double(q.get({b, h, i, d})) * k.get({b, hk, j, d});
          }
          ds = std::max(ds, std::fabs(scale) * 2.0 * double(p.dim) * u32 * abs_dot +
                                u32 * (std::fabs(scale * dot) + std::fabs(mj)));
        }
        const std::size_t visible = any_key ? keys.last - keys.first : 0;
        if (p.lse) {
          const double got = lse1.get({b, h, i}), want = lse_ref.get({b, h, i});
          if (visible == 0) {
            if (!(got == -std::numeric_limits<double>::infinity()) && bad++ < 5)
              ADD_FAILURE() << "fully masked row " << i << ": lse = " << got;
          } else if (!(std::fabs(got - want) <= ds + 1e-5 * (1.0 + std::fabs(want))) && bad++ < 5) {
            ADD_FAILURE() << "lse(" << b << ", " << h << ", " << i << ") = " << got << ", reference "
                          << want;
          }
        }
        for (std::size_t d = 0; d < p.dim; ++d) {
          const s4 idx{b, h, i, d};
          const double got = o1.get(idx), want = ref.get(idx);
          if (visible == 0) {  // no key: exactly 0
            if (!(got == 0.0) && bad++ < 5)
              ADD_FAILURE() << "fully masked row " << i << " head " << h << ": o = " << got;
            continue;
          }
          double vmax = 0.0;
          for (std::size_t j = keys.first; j < keys.last; ++j)
            if (!std::isinf(mask_at(b, h, i, j))) vmax = std::max(vmax, std::fabs(double(v.get({b, hk, j, d})) - want));
          double tol = 1e-5 * (1.0 + std::fabs(want)) + 2.0 * ds * vmax;
          double err = std::fabs(got - want);
          if constexpr (std::is_same_v<TO, bf16>) {
            const double r16 = trellis::round_to_bf16(float(want));
            err = std::fabs(got - r16);
            tol += trellis_test::bf16_ulp(float(std::max(std::fabs(got), std::fabs(r16))));
          }
          worst = std::max(worst, err / tol);
          if (!(err <= tol) && bad++ < 5)
            ADD_FAILURE() << "o(" << b << ", " << h << ", " << i << ", " << d << ") = " << got
                          << ", reference " << want << ", |error| " << err << " > " << tol;
        }
      }
  EXPECT_EQ(bad, 0u) << "elements outside the tolerance (worst error/tolerance " << worst << ")";
  if (std::getenv("TRELLIS_TEST_VERBOSE"))
    std::printf("%s %s %s: worst error/tolerance %g\n", type_name<T>(), type_name<TO>(),
                describe(p).c_str(), worst);
  return ok && bad == 0;
}

const std::size_t seq_sizes[] = {1, 7, 16, 17, 64, 65, 129};
const std::size_t dims[] = {1, 7, 16, 64, 65, 128};

/// A deterministic sample of Sq × Skv × D (one in `every`), cycling causal, GQA/MQA, batch,
/// padding.
std::vector<att_params> sweep(int every, int phase) {
  std::vector<att_params> out;
  int c = 0;
  for (int i = 0; i < 7; ++i)
    for (int j = 0; j < 7; ++j)
      for (int l = 0; l < 6; ++l) {
        if ((i + 2 * j + 4 * l + phase) % every != 0) continue;
        att_params p{};
        p.sq = seq_sizes[i];
        p.skv = seq_sizes[j];
        p.dim = dims[l];
        p.causal = c % 2 == 1;
        p.heads = c % 3 == 0 ? 4 : 2;
        p.kv_heads = c % 3 == 0 ? 2 : c % 3 == 1 ? 1 : 2;  // GQA, MQA, MHA
        p.batch = c % 5 == 4 ? 2 : 1;
        p.pad = c % 4 == 3 ? 5 : 0;
        p.misalign = c % 7 == 2;
        out.push_back(p);
        ++c;
      }
  return out;
}

CPU_TEST_SUITE(Attention);

template <class Target, class T, class TO>
void run_sweep(int phase) {
  int failures = 0;
  for (const att_params& p : sweep(5, phase))
    if (!check_attention<Target, T, TO>(p, 100u + unsigned(p.sq * 31 + p.skv * 7 + p.dim)) &&
        ++failures >= 3) {
      ADD_FAILURE() << "stopping after 3 failing shapes";
      return;
    }
}

CPU_TEST(Attention, SweepF32) { run_sweep<Target, float, float>(0); }
CPU_TEST(Attention, SweepF32Phase2) { run_sweep<Target, float, float>(2); }
CPU_TEST(Attention, SweepBf16InF32Out) { run_sweep<Target, bf16, float>(1); }
CPU_TEST(Attention, SweepBf16InBf16Out) { run_sweep<Target, bf16, bf16>(3); }

CPU_TEST(Attention, GroupedAndMultiQuery) {
  for (std::size_t kv_heads : {1, 2, 4, 8})
    for (bool causal : {false, true}) {
      att_params p{.batch = 2,
                   .heads = 8,
                   .kv_heads = kv_heads,
                   .sq = 17,
                   .skv = 33,
                   .dim = 24,
                   .causal = causal};
      if (!check_attention<Target, float, float>(p, 7u)) return;
      if (!check_attention<Target, bf16, bf16>(p, 8u)) return;
    }
}

CPU_TEST(Attention, CausalAlignmentAndFullyMaskedRows) {
  // Queries are the last Sq positions: with Sq > Skv the first Sq − Skv rows see nothing (exactly
  // 0).
  const std::pair<std::size_t, std::size_t> shapes[] = {
      {1, 129}, {7, 65}, {65, 7}, {129, 16}, {17, 16}, {16, 17}, {40, 1}, {100, 64}, {3, 200}};
  for (auto [sq, skv] : shapes) {
    att_params p{.heads = 2, .kv_heads = 1, .sq = sq, .skv = skv, .dim = 20, .causal = true};
    if (!check_attention<Target, float, float>(p, 11u)) return;
    if (!check_attention<Target, bf16, float>(p, 12u)) return;
    if (!check_attention<Target, bf16, bf16>(p, 13u)) return;
  }
}

CPU_TEST(Attention, HugeLogitsStayFinite) {
  // |q|, |k| up to 100 and D = 16, scale 1/4: logits up to ±4e4. No overflow, no NaN.
  for (bool causal : {false, true}) {
    att_params p{.sq = 33, .skv = 70, .dim = 16, .causal = causal, .magnitude = 100.0f};
    if (!check_attention<Target, float, float>(p, 21u)) return;
    if (!check_attention<Target, bf16, bf16>(p, 22u)) return;
    // An explicit scale that makes logits ±1e4 exactly representable extremes.
    p.scale = 1.0f;
    p.dim = 1;
    if (!check_attention<Target, float, float>(p, 23u)) return;
  }
}

CPU_TEST(Attention, ExplicitScale) {
  for (float scale : {0.0f, 0.01f, 1.0f, -0.5f, 3.0f}) {
    att_params p{.sq = 9, .skv = 40, .dim = 32, .causal = scale > 0.5f, .scale = scale};
    if (!check_attention<Target, float, float>(p, 31u)) return;
  }
}

CPU_TEST(Attention, PrefillAcrossKeyBlocks) {
  // Prefill tiles over several online-softmax key blocks (kb = 512) with a ragged last block, with and
  // without causal masking (blocks straddling the diagonal), GQA sharing one readied block across tiles.
  const auto kb = trellis::cpu_detail::attention_blocking::kb;
  int c = 0;
  for (std::size_t skv : {kb + 1, 2 * kb + 77})
    for (bool causal : {false, true}) {
      att_params p{.heads = 4, .kv_heads = 2, .sq = 61, .skv = skv, .dim = c % 2 ? 128u : 65u, .causal = causal};
      ++c;
      if (!check_attention<Target, float, float>(p, 60u + unsigned(c))) return;
      if (!check_attention<Target, bf16, bf16>(p, 70u + unsigned(c))) return;
    }
}

CPU_TEST(Attention, PrefillTilesPerTaskFollowThreads) {
  // A prefill task shares each readied key block among up to shared_tiles (query tile, head) pairs, fewer
  // on more threads (tiles_per_task): on these shapes 1 and 2 threads group the tiles differently (3 tasks
  // of 12, 12 and 4 pairs per kv head against 4 of 7) and must still agree bit for bit. With a sliding
  // window the tiles' key spans start at different keys, so the union a tile shares depends on the
  // grouping: its online-softmax steps must not (key blocks end on a fixed grid).
  using blk = trellis::cpu_detail::attention_blocking;
  const std::size_t q_tiles = 7, heads = 16, kv_heads = 4;
  const std::size_t pairs = kv_heads * (heads / kv_heads) * q_tiles;
  ASSERT_NE(blk::tiles_per_task(pairs, 1), blk::tiles_per_task(pairs, 2));
  const std::size_t sq = q_tiles * blk::qb - 5;
  for (int c = 0; c < 3; ++c) {
    // D = 8 keeps the check cheap (its cost is fixed by the 112 pairs the grouping needs); the grouping, not
    // the dtype, is under test, so bf16 runs on the windowed case only.
    att_params p{.heads = heads, .kv_heads = kv_heads, .sq = sq, .skv = blk::kb + 88, .dim = 8, .causal = c > 0};
    if (c == 2) {  // windowed: spans start inside key blocks, at keys that differ from tile to tile
      p.skv = 2 * blk::kb + 76;
      p.window = blk::kb + 1;
      p.key_lengths = {std::int32_t(p.skv)};
      p.mask = 3;
      p.lse = true;
    }
    if (!check_attention<Target, float, float>(p, 91u + unsigned(c))) return;
    if (c == 2 && !check_attention<Target, bf16, bf16>(p, 94u)) return;
  }
}

CPU_TEST(Attention, DecodeLongKv) {
  // One or a few query rows against a long KV cache (the split-KV path when there is one).
  for (std::size_t sq : {1, 3})
    for (bool causal : {false, true}) {
      att_params p{.heads = 4, .kv_heads = 1, .sq = sq, .skv = 2050, .dim = 64, .causal = causal};
      if (!check_attention<Target, float, float>(p, 41u)) return;
      if (!check_attention<Target, bf16, bf16>(p, 42u)) return;
    }
}

CPU_TEST(Attention, NestedParallelRegionIsSerialAndIdentical) {
  std::mt19937 rng(3);
  guarded<float, 4> q({1, 4, 40, 32}), k({1, 2, 90, 32}), v({1, 2, 90, 32});
  q.fill(trellis_test::uniform_fill{rng});
  k.fill(trellis_test::uniform_fill{rng});
  v.fill(trellis_test::uniform_fill{rng});
  guarded<float, 4> serial({1, 4, 40, 32}), all({1, 4, 40, 32});
  trellis::attention(with_threads<Target>(1), q.cview(), k.cview(), v.cview(), serial.view(),
                     {.causal = true});
  trellis::attention(Target{}, q.cview(), k.cview(), v.cview(), all.view(), {.causal = true});
  EXPECT_EQ(all.snapshot(), serial.snapshot());
  std::vector<guarded<float, 4>> per_thread(2, guarded<float, 4>({1, 4, 40, 32}));
#pragma omp parallel num_threads(2)
  {
    const int t = omp_get_thread_num();
    if (t < 2)
      trellis::attention(with_threads<Target>(2), q.cview(), k.cview(), v.cview(),
                         per_thread[std::size_t(t)].view(), {.causal = true});
  }
  for (const auto& o : per_thread) EXPECT_EQ(o.snapshot(), serial.snapshot());
}

}  // namespace

namespace {

CPU_TEST(Attention, KeyLengths) {
  // Padding per batch: 0 (a batch that sees nothing is 0, lse −inf), short, a whole block, all.
  for (bool causal : {false, true})
    for (std::size_t sq : {std::size_t(3), std::size_t(70)}) {
      att_params p{.batch = 4, .heads = 4, .kv_heads = 2, .sq = sq, .skv = 150, .dim = 40,
                   .causal = causal};
      p.key_lengths = {0, 17, 128, 150};
      p.lse = true;
      if (!check_attention<Target, float, float>(p, 51u)) return;
      if (!check_attention<Target, bf16, bf16>(p, 52u)) return;
    }
}

CPU_TEST(Attention, AdditiveMask) {
  // Every mask shape and dtype, with −inf entries and a fully masked row, prefill and decode.
  for (int kind : {1, 2, 3})
    for (bool m16 : {false, true})
      for (std::size_t sq : {std::size_t(2), std::size_t(33)}) {
        att_params p{.batch = 2, .heads = 4, .kv_heads = 1, .sq = sq, .skv = 140, .dim = 24,
                     .causal = kind == 2, .pad = 3};
        p.mask = kind;
        p.mask_bf16 = m16;
        p.lse = true;
        if (!check_attention<Target, float, float>(p, 61u + unsigned(kind))) return;
        if (!check_attention<Target, bf16, float>(p, 64u + unsigned(kind))) return;
      }
}

CPU_TEST(Attention, SlidingWindow) {
  // Window 1 (the diagonal only), within a block, across blocks; Sq ≠ Skv both ways.
  const std::pair<std::size_t, std::size_t> shapes[] = {{200, 200}, {17, 300}, {4, 700}, {90, 40}};
  for (auto [sq, skv] : shapes)
    for (std::size_t window : {1, 7, 130}) {
      att_params p{.heads = 2, .kv_heads = 1, .sq = sq, .skv = skv, .dim = 32, .causal = true};
      p.window = window;
      p.lse = true;
      if (!check_attention<Target, float, float>(p, 71u)) return;
      if (!check_attention<Target, bf16, bf16>(p, 72u)) return;
    }
}

CPU_TEST(Attention, AllOptionsTogether) {
  for (std::size_t sq : {std::size_t(1), std::size_t(16), std::size_t(100)}) {
    att_params p{.batch = 2, .heads = 8, .kv_heads = 2, .sq = sq, .skv = 1100, .dim = 64,
                 .causal = true, .magnitude = 3.0f};
    p.key_lengths = {1100, 600};
    p.mask = 2;
    p.window = 513;
    p.lse = true;
    if (!check_attention<Target, float, float>(p, 81u)) return;
    if (!check_attention<Target, bf16, bf16>(p, 82u)) return;
  }
}

CPU_TEST(Attention, DecodeFromKvCacheBuffer) {
  // Sq = 1 against a [B, Hkv, S_max, D] cache holding NaN past each batch's current length: those
  // keys are never read. Lengths straddle the 512-key decode chunks.
  const std::size_t b_n = 3, h = 8, hkv = 2, s_max = 1500, d = 64;
  std::mt19937 rng(91);
  guarded<float, 4> q({b_n, h, 1, d}), k({b_n, hkv, s_max, d}), v({b_n, hkv, s_max, d});
  const std::vector<std::int32_t> len = {1, 513, 1024};
  q.fill(trellis_test::uniform_fill{rng});
  k.fill([&](const s4& i) {
    return i[2] < std::size_t(len[i[0]]) ? std::uniform_real_distribution<float>(-1, 1)(rng) : nan_f;
  });
  v.fill([&](const s4& i) {
    return i[2] < std::size_t(len[i[0]]) ? std::uniform_real_distribution<float>(-1, 1)(rng) : nan_f;
  });
  const trellis::tensor_view<const std::int32_t, 1> lengths{len.data(), {b_n}};
  guarded<float, 4> ref({b_n, h, 1, d}), o1({b_n, h, 1, d}), o2({b_n, h, 1, d});
  trellis::attention(trellis::reference{}, q.cview(), k.cview(), v.cview(), ref.view(),
                     {.key_lengths = lengths});
  trellis::attention(with_threads<Target>(1), q.cview(), k.cview(), v.cview(), o1.view(),
                     {.key_lengths = lengths});
  trellis::attention(with_threads<Target>(2), q.cview(), k.cview(), v.cview(), o2.view(),
                     {.key_lengths = lengths});
  EXPECT_EQ(o1.snapshot(), o2.snapshot());
  std::size_t bad = 0;
  // Uniform q, k in [-1, 1], D = 64, scale 1/8: logits ≤ 8, errors ≤ 1e-5·(1 + |o|) (see the sweep).
  o1.for_each([&](const s4& i) {
    if (!(std::fabs(o1.get(i) - ref.get(i)) <= 1e-5 * (1.0 + std::fabs(ref.get(i)))) && bad++ < 5)
      ADD_FAILURE() << "o(" << i[0] << ", " << i[1] << ", 0, " << i[3] << ") = " << o1.get(i)
                    << ", reference " << ref.get(i);
  });
  EXPECT_EQ(bad, 0u);
}

CPU_TEST(Attention, DecodeInPlaceKernelShapes) {
  // The in-place decode kernel (Sq ≤ 16): D across the vector tails, the 2-vector score steps and the
  // 8/4/1-vector P·V pieces, GQA groups of 1, 4 and 8 (query-row groups of 1…4 and slabs of more than
  // 4 rows), Sq up to 16, keys across the 16-key score blocks, the
  // 32-key P·V blocks and the 512-key chunks, with and without padding and misalignment. D = 64 and 128 run
  // the kernels specialised for them (with_dim), the others the run-time-D kernels.
  const std::size_t dims_[] = {1, 7, 16, 64, 65, 80, 128, 130};
  int c = 0;
  for (std::size_t dim : dims_)
    for (std::size_t kv_heads : {8, 2, 1})
      for (std::size_t sq : {1, 3, 16}) {
        att_params p{.batch = 1, .heads = 8, .kv_heads = kv_heads, .sq = sq, .skv = std::size_t(c % 2 ? 1031 : 45),
                     .dim = dim, .causal = c % 3 == 1};
        p.pad = c % 4 == 3 ? 3 : 0;
        p.misalign = c % 5 == 2;
        ++c;
        if (!check_attention<Target, float, float>(p, 200u + unsigned(c))) return;
        // bf16 on a cycle of 7, coprime to the cycles above, so it meets every D with and without padding,
        // misalignment and causality.
        if (c % 7 < 2 && !check_attention<Target, bf16, bf16>(p, 300u + unsigned(c))) return;
      }
}

CPU_TEST(Attention, DecodeLongKvNaNPastLengths) {
  // Sq = 1 and 4, groups of 1, 4 and 8, D = 128 and 72, a 3000-key cache with NaN past each batch's length
  // (lengths inside a chunk, on a chunk boundary, and 0): the kernel and its prefetches stay in the span.
  for (std::size_t kv_heads : {8, 2, 1})
    for (std::size_t dim : {128, 72})
      for (std::size_t sq : {1, 4}) {
        const std::size_t b_n = 3, h = 8, s_max = 3000;
        std::mt19937 rng(unsigned(400 + kv_heads + dim + sq));
        guarded<float, 4> q({b_n, h, sq, dim}), k({b_n, kv_heads, s_max, dim}), v({b_n, kv_heads, s_max, dim});
        const std::vector<std::int32_t> len = {2500, 1024, 0};
        q.fill(trellis_test::uniform_fill{rng});
        const auto cache = [&](const s4& i) {
          return i[2] < std::size_t(len[i[0]]) ? std::uniform_real_distribution<float>(-1, 1)(rng) : nan_f;
        };
        k.fill(cache);
        v.fill(cache);
        const trellis::tensor_view<const std::int32_t, 1> lengths{len.data(), {b_n}};
        guarded<float, 4> ref({b_n, h, sq, dim}), o1({b_n, h, sq, dim}), o2({b_n, h, sq, dim});
        const trellis::attention_options opts{.causal = sq > 1, .key_lengths = lengths};
        trellis::attention(trellis::reference{}, q.cview(), k.cview(), v.cview(), ref.view(), opts);
        trellis::attention(with_threads<Target>(1), q.cview(), k.cview(), v.cview(), o1.view(), opts);
        trellis::attention(with_threads<Target>(2), q.cview(), k.cview(), v.cview(), o2.view(), opts);
        EXPECT_EQ(o1.snapshot(), o2.snapshot());
        EXPECT_EQ(o1.damaged_canaries(), 0u);
        std::size_t bad = 0;
        // Uniform q, k in [-1, 1], scale 1/√D: logits ≤ √D ≈ 11, errors ≤ 1e-5·(1 + |o|) as in the sweep.
        o1.for_each([&](const s4& i) {
          const double want = i[0] == 2 ? 0.0 : ref.get(i);  // a batch with no key: exactly 0
          if (!(std::fabs(o1.get(i) - want) <= 1e-5 * (1.0 + std::fabs(want))) && bad++ < 5)
            ADD_FAILURE() << "Hkv=" << kv_heads << " D=" << dim << " Sq=" << sq << ": o(" << i[0] << ", "
                          << i[1] << ", " << i[2] << ", " << i[3] << ") = " << o1.get(i) << ", reference " << want;
        });
        if (bad) return;
      }
}

}  // namespace
