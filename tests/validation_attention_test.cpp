// validation: every error path of attention's front door (ops/attention.hpp, core/validate.hpp),
// and zero sizes. Every check must raise trellis::error "<op>: <argument>: expected ..., got ..."
// and leave every buffer (with canaries in and around it) untouched, on every target; the
// documented aliases are accepted.

#include <array>
#include <cstdint>
#include <cmath>
#include <string>

#include "validation_support.hpp"

namespace {

using trellis::bf16;
using trellis::epilogue;
using trellis::tensor_view;
using trellis_test::expect_error;
using trellis_test::guarded;
using trellis_test::inf_f;
using trellis_test::nan_f;
using trellis_test::untouched;

TARGET_TEST_SUITE(Attention);

// ---------------------------------------------------------------------------------------------------
// attention: q, o [B=1, H=4, Sq=3, D=8]; k, v [1, Hkv=2, Skv=5, 8]

using s4 = std::array<std::size_t, 4>;

struct attention_operands {
  guarded<float, 4> q{{1, 4, 3, 8}}, k{{1, 2, 5, 8}}, v{{1, 2, 5, 8}}, o{{1, 4, 3, 8}, 3};
  attention_operands() {
    q.fill_value(0.25f);
    k.fill_value(0.5f);
    v.fill_value(1.5f);
    o.fill_value(nan_f);
  }
  untouched watch() const {
    untouched w;
    w << q << k << v << o;
    return w;
  }
};

template <class T>
tensor_view<const T, 4> cv4(const T* p, s4 shape) {
  return {p, shape};
}

TARGET_TEST(Attention, NullPointers) {
  attention_operands t;
  expect_error(
      [&] {
        trellis::attention(tg, cv4<float>(nullptr, t.q.shape()), t.k.cview(), t.v.cview(),
                           t.o.view());
      },
      "attention", "q", t.watch(), "nullptr");
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), cv4<float>(nullptr, t.k.shape()), t.v.cview(),
                           t.o.view());
      },
      "attention", "k", t.watch(), "nullptr");
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), t.k.cview(), cv4<float>(nullptr, t.v.shape()),
                           t.o.view());
      },
      "attention", "v", t.watch(), "nullptr");
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(),
                           tensor_view<float, 4>{nullptr, t.o.shape()});
      },
      "attention", "o", t.watch(), "nullptr");
}

TARGET_TEST(Attention, ShapeMismatches) {
  attention_operands t;
  guarded<float, 1> pool({4096});
  const float* p = pool.data();
  const auto kk = t.k.cview();
  const auto vv = t.v.cview();
  const auto call = [&](auto q, auto k, auto v, auto o) {
    return [&tg, q, k, v, o] { trellis::attention(tg, q, k, v, o); };
  };
  const auto w = t.watch();
  // k: batch, head dim, kv heads that do not divide the query heads (also 0 of them).
  expect_error(call(t.q.cview(), cv4(p, {2, 2, 5, 8}), cv4(p + 1000, {2, 2, 5, 8}), t.o.view()),
               "attention", "k", w, "extent 1 in axis 0 (batch = q's axis 0)");
  expect_error(call(t.q.cview(), cv4(p, {1, 2, 5, 7}), cv4(p + 1000, {1, 2, 5, 7}), t.o.view()),
               "attention", "k", w, "head dim");
  expect_error(call(t.q.cview(), cv4(p, {1, 3, 5, 8}), cv4(p + 1000, {1, 3, 5, 8}), t.o.view()),
               "attention", "k", w, "divides the 4 query heads");
  expect_error(call(t.q.cview(), cv4(p, {1, 0, 5, 8}), cv4(p + 1000, {1, 0, 5, 8}), t.o.view()),
               "attention", "k", w, "divides");
  expect_error(call(t.q.cview(), cv4(p, {1, 8, 5, 8}), cv4(p + 1000, {1, 8, 5, 8}), t.o.view()),
               "attention", "k", w, "divides");
  // v must have k's shape, axis by axis.
  for (std::size_t axis = 0; axis < 4; ++axis) {
    SCOPED_TRACE(axis);
    s4 shape = t.v.shape();
    shape[axis] += 1;
    expect_error(call(t.q.cview(), kk, cv4(p, shape), t.o.view()), "attention", "v", w,
                 "in axis " + std::to_string(axis) + " (the shape of k)");
  }
  // o must have q's shape, axis by axis.
  guarded<float, 1> opool({2048});
  untouched wo = t.watch();
  wo << opool;
  for (std::size_t axis = 0; axis < 4; ++axis) {
    SCOPED_TRACE(axis);
    s4 shape = t.o.shape();
    shape[axis] = axis == 1 ? 2 : shape[axis] + 1;
    expect_error(call(t.q.cview(), kk, vv, tensor_view<float, 4>{opool.data(), shape}), "attention",
                 "o", wo, "in axis " + std::to_string(axis) + " (the shape of q)");
  }
}

TARGET_TEST(Attention, NonUnitLastStride) {
  attention_operands t;
  guarded<float, 1> pool({4096});
  untouched w = t.watch();
  w << pool;
  const auto strided = [&](s4 shape, std::size_t offset) {
    const s4 strides{shape[1] * shape[2] * shape[3] * 2, shape[2] * shape[3] * 2, shape[3] * 2, 2};
    return tensor_view<float, 4>{pool.data() + offset, shape, strides};
  };
  const auto q = t.q.cview();
  const auto k = t.k.cview();
  const auto v = t.v.cview();
  expect_error(
      [&] {
        trellis::attention(tg, tensor_view<const float, 4>(strided(q.shape(), 0)), k, v,
                           t.o.view());
      },
      "attention", "q", w, "stride 1 in the last axis, got strides {192, 48, 16, 2}");
  expect_error(
      [&] {
        trellis::attention(tg, q, tensor_view<const float, 4>(strided(k.shape(), 0)), v,
                           t.o.view());
      },
      "attention", "k", w, "stride 1 in the last axis");
  expect_error(
      [&] {
        trellis::attention(tg, q, k, tensor_view<const float, 4>(strided(k.shape(), 0)),
                           t.o.view());
      },
      "attention", "v", w, "stride 1 in the last axis");
  expect_error([&] { trellis::attention(tg, q, k, v, strided(q.shape(), 0)); }, "attention", "o", w,
               "stride 1 in the last axis");
  // A head dim of 1 may have any stride.
  guarded<float, 4> q1({1, 4, 3, 1}), k1({1, 2, 5, 1}), v1({1, 2, 5, 1}), o1({1, 4, 3, 1});
  v1.fill_value(2.0f);
  const auto o1v = o1.view();
  trellis::attention(tg, q1.cview(), k1.cview(), v1.cview(),
                     tensor_view<float, 4>{o1v.data(), o1v.shape(), {12, 3, 1, 7}});
  o1.for_each([&](const auto& i) { EXPECT_EQ(o1.get(i), 2.0f); });
}

TARGET_TEST(Attention, SelfOverlappingOutput) {
  attention_operands t;
  const auto o = t.o.view();
  for (s4 strides : {s4{96, 24, 0, 1}, s4{96, 0, 8, 1}, s4{0, 24, 8, 1}, s4{96, 24, 4, 1}}) {
    SCOPED_TRACE(testing::Message() << strides[1] << " " << strides[2]);
    if (strides[0] == 0) continue;  // batch 1: any stride is fine there
    expect_error(
        [&] {
          trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(),
                             tensor_view<float, 4>{o.data(), o.shape(), strides});
        },
        "attention", "o", t.watch(), "own address");
  }
}

TARGET_TEST(Attention, OutputOverlapsInput) {
  guarded<float, 1> pool({1024});
  pool.fill_value(0.5f);
  untouched w;
  w << pool;
  float* p = pool.data();
  const s4 qs{1, 4, 3, 8}, ks{1, 2, 5, 8};     // 96 and 80 elements
  const tensor_view<float, 4> o{p + 200, qs};  // 200..295
  expect_error(
      [&] {
        trellis::attention(tg, cv4<float>(p + 200, qs), cv4<float>(p, ks), cv4<float>(p + 100, ks),
                           o);
      },
      "attention", "o", w, "disjoint from q");
  expect_error(
      [&] {
        trellis::attention(tg, cv4<float>(p + 400, qs), cv4<float>(p + 250, ks),
                           cv4<float>(p + 100, ks), o);
      },
      "attention", "o", w, "disjoint from k");
  expect_error(
      [&] {
        trellis::attention(tg, cv4<float>(p + 400, qs), cv4<float>(p, ks), cv4<float>(p + 121, ks),
                           o);
      },
      "attention", "o", w, "disjoint from v");
  expect_error(
      [&] {
        trellis::attention(tg, cv4<float>(p + 295, qs), cv4<float>(p, ks), cv4<float>(p + 100, ks),
                           o);
      },
      "attention", "o", w, "disjoint from q");
  // Touching but disjoint is fine.
  trellis::attention(tg, cv4<float>(p + 296, qs), cv4<float>(p, ks), cv4<float>(p + 120, ks), o);
}

TARGET_TEST(Attention, NonFiniteScale) {
  attention_operands t;
  for (float bad : {nan_f, inf_f, -inf_f}) {
    expect_error(
        [&] {
          trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(), {.scale = bad});
        },
        "attention", "options.scale", t.watch(), "a finite value");
  }
}

TARGET_TEST(Attention, ZeroSizes) {
  // Skv = 0: every row sees no key → zeros, also with causal.
  for (bool causal : {false, true}) {
    guarded<float, 4> q({2, 2, 3, 4}), k({2, 1, 0, 4}), v({2, 1, 0, 4}), o({2, 2, 3, 4});
    q.fill_value(1.0f);
    o.fill_value(nan_f);
    trellis::attention(tg, q.cview(), k.cview(), v.cview(), o.view(), {.causal = causal});
    o.for_each([&](const auto& i) { EXPECT_EQ(o.get(i), 0.0f); });
    EXPECT_EQ(o.damaged_canaries(), 0u);
  }
  // Sq = 0, B = 0, H = Hkv = 0 and D = 0: nothing to write, nullptr allowed.
  trellis::attention(tg, cv4<float>(nullptr, {1, 2, 0, 4}), cv4<float>(nullptr, {1, 1, 0, 4}),
                     cv4<float>(nullptr, {1, 1, 0, 4}),
                     tensor_view<float, 4>{nullptr, {1, 2, 0, 4}});
  trellis::attention(tg, cv4<float>(nullptr, {0, 2, 3, 4}), cv4<float>(nullptr, {0, 1, 5, 4}),
                     cv4<float>(nullptr, {0, 1, 5, 4}),
                     tensor_view<float, 4>{nullptr, {0, 2, 3, 4}});
  trellis::attention(tg, cv4<float>(nullptr, {1, 0, 3, 4}), cv4<float>(nullptr, {1, 0, 5, 4}),
                     cv4<float>(nullptr, {1, 0, 5, 4}),
                     tensor_view<float, 4>{nullptr, {1, 0, 3, 4}});
  trellis::attention(tg, cv4<float>(nullptr, {1, 2, 3, 0}), cv4<float>(nullptr, {1, 1, 5, 0}),
                     cv4<float>(nullptr, {1, 1, 5, 0}),
                     tensor_view<float, 4>{nullptr, {1, 2, 3, 0}});
}

// ---------------------------------------------------------------------------------------------------
// attention options: key_lengths, mask, window, lse (q, o [1, 4, 3, 8]; k, v [1, 2, 5, 8])

TARGET_TEST(Attention, KeyLengths) {
  attention_operands t;
  const std::int32_t good[2] = {5, 0}, bad_high[1] = {6}, bad_low[1] = {-1};
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(),
                           {.key_lengths = tensor_view<const std::int32_t, 1>{good, {2}}});
      },
      "attention", "options.key_lengths", t.watch(), "one key length per batch");
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(),
                           {.key_lengths = tensor_view<const std::int32_t, 1>{nullptr, {1}}});
      },
      "attention", "options.key_lengths", t.watch(), "nullptr");
  for (const std::int32_t* bad : {bad_high, bad_low})
    expect_error(
        [&] {
          trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(),
                             {.key_lengths = tensor_view<const std::int32_t, 1>{bad, {1}}});
        },
        "attention", "options.key_lengths", t.watch(), "lengths in [0, 5]");
  // Length 0: every row is 0.
  trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(),
                     {.key_lengths = tensor_view<const std::int32_t, 1>{good + 1, {1}}});
  t.o.for_each([&](const auto& i) { EXPECT_EQ(t.o.get(i), 0.0f); });
}

TARGET_TEST(Attention, Mask) {
  attention_operands t;
  guarded<float, 4> wrong4({1, 4, 3, 4}), batch2({2, 1, 3, 5}), heads2({1, 2, 3, 5}), good({1, 4, 3, 5});
  guarded<float, 2> wrong2({5, 3}), strided({3, 10});
  guarded<float, 1> rank1({5});
  for (auto* g : {&wrong4, &batch2, &heads2, &good}) g->fill_value(0.0f);
  const auto with_mask = [&](trellis::any_view m) {
    return [&t, &tg, m] {
      trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(), {.mask = m});
    };
  };
  expect_error(with_mask(wrong4.cview()), "attention", "options.mask", t.watch(), "[Sq, Skv] or [B, H, Sq, Skv]");
  expect_error(with_mask(batch2.cview()), "attention", "options.mask", t.watch(), "1 or 1");
  expect_error(with_mask(heads2.cview()), "attention", "options.mask", t.watch(), "1 or 4");
  expect_error(with_mask(wrong2.cview()), "attention", "options.mask", t.watch(), "[3, 5]");
  expect_error(with_mask(rank1.cview()), "attention", "options.mask", t.watch(), "got shape [5]");
  expect_error(with_mask(tensor_view<const float, 2>{strided.data(), {3, 5}, {10, 2}}), "attention",
               "options.mask", t.watch(), "stride 1 in the last axis");
  expect_error(with_mask(tensor_view<const float, 2>{nullptr, {3, 5}}), "attention", "options.mask",
               t.watch(), "nullptr");
  // A mask overlapping o.
  expect_error(with_mask(tensor_view<const float, 2>{t.o.data(), {3, 5}}), "attention", "o", t.watch(),
               "disjoint from options.mask");
  // A −inf mask masks everything: o = 0.
  good.fill_value(-inf_f);
  with_mask(good.cview())();
  t.o.for_each([&](const auto& i) { EXPECT_EQ(t.o.get(i), 0.0f); });
}

TARGET_TEST(Attention, Window) {
  attention_operands t;
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(), {.window = 2});
      },
      "attention", "options.window", t.watch(), "options.causal = true");
  expect_error(
      [&] {
        trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(),
                           {.causal = true, .window = 0});
      },
      "attention", "options.window", t.watch(), "at least 1");
}

TARGET_TEST(Attention, LogSumExp) {
  attention_operands t;
  guarded<float, 3> lse({1, 4, 3}), wrong({1, 4, 2});
  guarded<bf16, 3> lse16({1, 4, 3});
  lse.fill_value(nan_f);
  const auto watch = [&] {
    untouched w = t.watch();
    w << lse << wrong << lse16;
    return w;
  };
  const auto with_lse = [&](trellis::any_output_view l) {
    return [&t, &tg, l] {
      trellis::attention(tg, t.q.cview(), t.k.cview(), t.v.cview(), t.o.view(), {.lse = l});
    };
  };
  expect_error(with_lse(wrong.view()), "attention", "options.lse", watch(), "[B, H, Sq]");
  expect_error(with_lse(lse16.view()), "attention", "options.lse", watch(), "element type f32");
  expect_error(with_lse(tensor_view<float, 3>{nullptr, {1, 4, 3}}), "attention", "options.lse", watch(),
               "nullptr");
  expect_error(with_lse(tensor_view<float, 3>{lse.data(), {1, 4, 3}, {0, 1, 1}}), "attention",
               "options.lse", watch(), "own address");
  expect_error(with_lse(tensor_view<float, 3>{t.o.data(), {1, 4, 3}}), "attention", "options.lse",
               watch(), "disjoint from o");
  // q·k = 0.25·0.5·8 = 1 for every key, scale 1/√8: lse = 1/√8 + ln 5.
  with_lse(lse.view())();
  lse.for_each([&](const auto& i) { EXPECT_NEAR(lse.get(i), 1.0 / std::sqrt(8.0) + std::log(5.0), 1e-6); });
  EXPECT_EQ(lse.damaged_canaries(), 0u);
}

}  // namespace
