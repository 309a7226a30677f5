// reference: hand-computed cases for every op of the oracle target.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <trellis/ops/attention.hpp>
#include <trellis/ops/matmul.hpp>
#include <trellis/ops/norm.hpp>
#include <trellis/reference.hpp>
#include <vector>

#include "test_support.hpp"

namespace {

using trellis::bf16;
using trellis::epilogue;
using trellis::tensor_view;
using trellis_test::guarded;

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
const trellis::reference ref{};

template <class T = float>
guarded<T, 2> mat(std::size_t rows, std::size_t cols, std::initializer_list<float> values,
                  std::size_t pad = 0) {
  guarded<T, 2> g({rows, cols}, pad);
  auto it = values.begin();
  g.fill([&](const auto&) { return *it++; });
  return g;
}

template <class T>
void expect_matrix(const guarded<T, 2>& c, std::initializer_list<float> want, float tol = 0.0f) {
  auto it = want.begin();
  c.for_each([&](const std::array<std::size_t, 2>& i) {
    const float w = *it++;
    if (tol == 0.0f)
      EXPECT_EQ(c.get(i), w) << "at (" << i[0] << ", " << i[1] << ")";
    else
      EXPECT_NEAR(c.get(i), w, tol) << "at (" << i[0] << ", " << i[1] << ")";
  });
  EXPECT_EQ(c.damaged_canaries(), 0u);
}

// ---------------------------------------------------------------------------------------------------
// matmul

TEST(Matmul, PlainProduct) {
  auto a = mat(2, 3, {1, 2, 3, 4, 5, 6});
  auto b = mat(3, 2, {7, 8, 9, 10, 11, 12});
  guarded<float, 2> c({2, 2}, 3);
  c.fill_value(nan_f);  // beta = 0 must not read C
  trellis::matmul(ref, a.cview(), b.cview(), c.view());
  expect_matrix(c, {58, 64, 139, 154});
}

TEST(Matmul, Transposes) {
  auto a = mat(2, 3, {1, 2, 3, 4, 5, 6});
  auto at = mat(3, 2, {1, 4, 2, 5, 3, 6});
  auto b = mat(3, 2, {7, 8, 9, 10, 11, 12});
  auto bt = mat(2, 3, {7, 9, 11, 8, 10, 12});
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(testing::Message() << "transpose_a=" << ta << " transpose_b=" << tb);
      guarded<float, 2> c({2, 2});
      c.fill_value(nan_f);
      trellis::matmul(ref, ta ? at.cview() : a.cview(), tb ? bt.cview() : b.cview(), c.view(),
                      {.transpose_a = ta, .transpose_b = tb});
      expect_matrix(c, {58, 64, 139, 154});
    }
}

TEST(Matmul, TransposedViewsAreTheSameAsTransposeFlags) {
  auto at = mat(3, 2, {1, 4, 2, 5, 3, 6});
  auto bt = mat(2, 3, {7, 9, 11, 8, 10, 12});
  guarded<float, 2> c({2, 2});
  trellis::matmul(ref, at.cview().transposed(), bt.cview().transposed(), c.view());
  expect_matrix(c, {58, 64, 139, 154});
}

TEST(Matmul, AlphaBeta) {
  auto a = mat(2, 3, {1, 2, 3, 4, 5, 6});
  auto b = mat(3, 2, {7, 8, 9, 10, 11, 12});
  auto c = mat(2, 2, {2, 4, 6, 8}, 1);
  trellis::matmul(ref, a.cview(), b.cview(), c.view(), {.alpha = 2.0f, .beta = 0.5f});
  expect_matrix(c, {117, 130, 281, 312});
  // alpha = 0 with beta = 1 keeps C.
  trellis::matmul(ref, a.cview(), b.cview(), c.view(), {.alpha = 0.0f, .beta = 1.0f});
  expect_matrix(c, {117, 130, 281, 312});
}

TEST(Matmul, BetaZeroNeverReadsC) {
  auto a = mat(1, 1, {3});
  auto b = mat(1, 1, {5});
  guarded<float, 2> c({1, 1});
  c.fill_value(std::numeric_limits<float>::infinity());
  trellis::matmul(ref, a.cview(), b.cview(), c.view(), {.alpha = 1.0f, .beta = 0.0f});
  expect_matrix(c, {15});
  c.fill_value(nan_f);
  trellis::matmul(ref, a.cview(), b.cview(), c.view(), {.beta = -0.0f});
  expect_matrix(c, {15});
}

// act(α·A·B + bias) at one element where A·B = -0.5 (A = [1, -1], B = [0.5, 1]ᵀ).
struct act_case {
  trellis::activation act;
  float alpha, bias, want;
};

TEST(Matmul, EachActivation) {
  auto a = mat(1, 2, {1, -1});
  auto b = mat(2, 1, {0.5f, 1});
  // Known values: gelu_tanh(1) = 0.84119199, gelu_erf(1) = 0.84134475, silu(1) = 0.73105858,
  // gelu_tanh(-1) = -0.15880801, gelu_erf(-1) = -0.15865525, silu(-1) = -0.26894142.
  const act_case cases[] = {
      {trellis::activation::none, 2.0f, 0.25f, -0.75f},
      {trellis::activation::gelu_tanh, -2.0f, 0.0f, 0.84119199f},
      {trellis::activation::gelu_erf, -2.0f, 0.0f, 0.84134475f},
      {trellis::activation::silu, -2.0f, 0.0f, 0.73105858f},
      {trellis::activation::gelu_tanh, 2.0f, 0.0f, -0.15880801f},
      {trellis::activation::gelu_erf, 2.0f, 0.0f, -0.15865525f},
      {trellis::activation::silu, 2.0f, 0.0f, -0.26894142f},
      {trellis::activation::gelu_tanh, 1.0f, 1.5f, 0.84119199f},  // bias before the activation
      {trellis::activation::silu, 4.0f, 3.0f, 0.73105858f},
  };
  for (const auto& k : cases) {
    SCOPED_TRACE(testing::Message()
                 << trellis::to_string(k.act) << " alpha=" << k.alpha << " bias=" << k.bias);
    float bias_value = k.bias;
    tensor_view<const float, 1> bias{&bias_value, {1}};
    guarded<float, 2> c({1, 1});
    c.fill_value(nan_f);
    trellis::matmul(ref, a.cview(), b.cview(), c.view(),
                    {.alpha = k.alpha, .epilogue = {.act = k.act, .bias = bias}});
    EXPECT_NEAR(c.get({0, 0}), k.want, 1e-7f);
  }
  // The named constructors set the activation they name.
  EXPECT_EQ(epilogue::gelu().act, trellis::activation::gelu_tanh);
  EXPECT_EQ(epilogue::gelu_erf().act, trellis::activation::gelu_erf);
  EXPECT_EQ(epilogue::silu().act, trellis::activation::silu);
  EXPECT_FALSE(epilogue::none().bias.present());
}

TEST(Matmul, EpilogueOrder) {
  // C = act(α·A·B + bias) + residual + β·C₀ with A·B = -0.5, α = -4, bias = -1 → silu(1) + 3 +
  // 0.5·10.
  auto a = mat(1, 2, {1, -1});
  auto b = mat(2, 1, {0.5f, 1});
  auto bias = mat(1, 1, {-1});
  auto residual = mat(1, 1, {3});
  const tensor_view<const float, 1> bias1{bias.data(), {1}};
  auto c = mat(1, 1, {10});
  trellis::matmul(ref, a.cview(), b.cview(), c.view(),
                  {.alpha = -4.0f,
                   .beta = 0.5f,
                   .epilogue = epilogue::bias_silu(bias1).with_residual(residual.cview())});
  EXPECT_NEAR(c.get({0, 0}), 8.7310586f, 2e-6f);  // 0.7310586 + 3 + 5
  // Each of the plausible wrong orders gives a different number.
  EXPECT_GT(std::fabs(8.7310586f - (-4.0f * -0.5f + (-1.0f) + 3.0f + 5.0f)), 0.1f);
}

TEST(Matmul, BiasPerColumnResidualPerElementWithStrides) {
  auto a = mat(2, 2, {1, 0, 0, 1});
  auto b = mat(2, 3, {1, 2, 3, 4, 5, 6});
  // A strided bias (every other element) and a residual with a padded leading dimension.
  const float bias_storage[6] = {10, -1, 20, -1, 30, -1};
  const tensor_view<const float, 1> bias{bias_storage, {3}, {2}};
  auto residual = mat(2, 3, {100, 200, 300, 400, 500, 600}, 5);
  for (int act = 0; act < 2; ++act) {
    guarded<float, 2> c({2, 3}, 2, 1);
    c.fill_value(nan_f);
    const epilogue ep = act ? epilogue::bias_only(bias).with_residual(residual.cview())
                            : epilogue{.bias = bias, .residual = residual.cview()};
    trellis::matmul(ref, a.cview(), b.cview(), c.view(), {.epilogue = ep});
    expect_matrix(c, {111, 222, 333, 414, 525, 636});
  }
  // Residual alone.
  guarded<float, 2> c({2, 3});
  trellis::matmul(ref, a.cview(), b.cview(), c.view(),
                  {.epilogue = epilogue::residual_add(residual.cview())});
  expect_matrix(c, {101, 202, 303, 404, 505, 606});
}

TEST(Matmul, ResidualMayBeCItself) {
  auto a = mat(1, 2, {1, 2});
  auto b = mat(2, 2, {1, 0, 0, 1});
  auto c = mat(1, 2, {10, 20});
  trellis::matmul(ref, a.cview(), b.cview(), c.view(),
                  {.epilogue = epilogue::residual_add(c.cview())});
  expect_matrix(c, {11, 22});
  trellis::matmul(ref, a.cview(), b.cview(), c.view(),
                  {.beta = 1.0f, .epilogue = epilogue::residual_add(c.cview())});
  expect_matrix(c, {23, 46});  // AB + residual (C₀) + β·C₀
}

TEST(Matmul, Bf16InputsAndOutputs) {
  // 257 and 259 are bf16 ties: 257 → 256 (even), 259 → 260 (even).
  auto a = mat<bf16>(1, 2, {1, 1});
  auto b = mat<bf16>(2, 2, {256, 256, 1, 3});
  guarded<float, 2> c32({1, 2});
  c32.fill_value(nan_f);
  trellis::matmul(ref, a.cview(), b.cview(), c32.view());
  expect_matrix(c32, {257, 259});
  guarded<bf16, 2> c16({1, 2}, 1);
  c16.fill_value(nan_f);
  trellis::matmul(ref, a.cview(), b.cview(), c16.view());
  expect_matrix(c16, {256, 260});
  // bf16 epilogue operands with an fp32 matmul; β reads a bf16 C.
  auto af = mat(1, 2, {1, 1});
  auto bf = mat(2, 2, {1, 2, 3, 4});
  auto bias16 = mat<bf16>(1, 2, {0.5f, -0.5f});
  auto res16 = mat<bf16>(1, 2, {100, 200});
  const tensor_view<const bf16, 1> bias1{bias16.data(), {2}};
  guarded<float, 2> c({1, 2});
  trellis::matmul(ref, af.cview(), bf.cview(), c.view(),
                  {.epilogue = epilogue::bias_only(bias1).with_residual(res16.cview())});
  expect_matrix(c, {104.5f, 205.5f});
  auto cb = mat<bf16>(1, 2, {2, 4});
  trellis::matmul(ref, a.cview(), b.cview(), cb.view(), {.beta = 2.0f});
  expect_matrix(cb, {260, 268});  // 257 + 4 = 261 → 260; 259 + 8 = 267 → 268
}

TEST(Matmul, KZeroIsTheEpilogueAlone) {
  guarded<float, 2> a({2, 0}), b({0, 2});
  auto bias = mat(1, 2, {1, -2});
  const tensor_view<const float, 1> bias1{bias.data(), {2}};
  auto residual = mat(2, 2, {10, 20, 30, 40});
  auto c = mat(2, 2, {1, 2, 3, 4});
  trellis::matmul(
      ref, a.cview(), b.cview(), c.view(),
      {.beta = 2.0f, .epilogue = epilogue::bias_only(bias1).with_residual(residual.cview())});
  expect_matrix(c, {13, 22, 37, 46});
}

// ---------------------------------------------------------------------------------------------------
// attention

template <class T = float>
guarded<T, 4> t4(std::array<std::size_t, 4> shape, std::initializer_list<float> values) {
  guarded<T, 4> g(shape);
  auto it = values.begin();
  g.fill([&](const auto&) { return it == values.end() ? 0.0f : *it++; });
  return g;
}

template <class T>
std::vector<float> flat(const guarded<T, 4>& g) {
  std::vector<float> v;
  g.for_each([&](const auto& i) { v.push_back(g.get(i)); });
  return v;
}

TEST(Attention, ExplicitScaleOneKey) {
  const float ln3 = std::log(3.0f);
  auto q = t4({1, 1, 1, 1}, {1});
  auto k = t4({1, 1, 2, 1}, {ln3, 0});
  auto v = t4({1, 1, 2, 1}, {4, 8});
  guarded<float, 4> o({1, 1, 1, 1});
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());  // D = 1: scale 1
  EXPECT_NEAR(o.get({0, 0, 0, 0}), 5.0f, 1e-6f);                       // 3/4·4 + 1/4·8
}

TEST(Attention, DefaultAndExplicitScale) {
  const float h = std::log(3.0f) / 2;
  auto q = t4({1, 1, 1, 4}, {1, 1, 1, 1});
  auto k = t4({1, 1, 2, 4}, {h, h, h, h, 0, 0, 0, 0});  // q·k = 2·ln3, 0
  auto v = t4({1, 1, 2, 4}, {4, 0, 1, 2, 8, 4, 1, -2});
  guarded<float, 4> o({1, 1, 1, 4});
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());  // scale 1/√4: p = 3/4, 1/4
  const auto got = flat(o);
  const float want[] = {5, 1, 1, 1};
  for (int d = 0; d < 4; ++d) EXPECT_NEAR(got[d], want[d], 2e-6f) << d;
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(),
                     {.scale = 1.0f});  // p = 9/10, 1/10
  const auto got1 = flat(o);
  const float want1[] = {4.4f, 0.4f, 1.0f, 1.6f};
  for (int d = 0; d < 4; ++d) EXPECT_NEAR(got1[d], want1[d], 2e-6f) << d;
  EXPECT_EQ(o.damaged_canaries(), 0u);
}

TEST(Attention, CausalSquare) {
  // q = 0: uniform weights over the visible keys.
  auto q = t4({1, 1, 3, 1}, {0, 0, 0});
  auto k = t4({1, 1, 3, 1}, {5, -3, 2});
  auto v = t4({1, 1, 3, 1}, {1, 2, 4});
  guarded<float, 4> o({1, 1, 3, 1});
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.causal = true});
  const auto got = flat(o);
  EXPECT_FLOAT_EQ(got[0], 1.0f);
  EXPECT_FLOAT_EQ(got[1], 1.5f);
  EXPECT_FLOAT_EQ(got[2], 7.0f / 3.0f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());
  for (float x : flat(o)) EXPECT_FLOAT_EQ(x, 7.0f / 3.0f);
}

TEST(Attention, CausalFewerQueriesThanKeys) {
  // Sq = 2, Skv = 4: query i sees keys j ≤ i + 2.
  auto q = t4({1, 1, 2, 1}, {0, 0});
  auto k = t4({1, 1, 4, 1}, {1, 2, 3, 4});
  auto v = t4({1, 1, 4, 1}, {1, 2, 4, 8});
  guarded<float, 4> o({1, 1, 2, 1});
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.causal = true});
  const auto got = flat(o);
  EXPECT_FLOAT_EQ(got[0], 7.0f / 3.0f);
  EXPECT_FLOAT_EQ(got[1], 15.0f / 4.0f);
}

TEST(Attention, CausalMoreQueriesThanKeysGivesExactZeroRows) {
  // Sq = 4, Skv = 2: query i sees keys j ≤ i − 2, so rows 0 and 1 see nothing and must be exactly
  // 0.
  auto q = t4({1, 1, 4, 2}, {});
  auto k = t4({1, 1, 2, 2}, {});
  auto v = t4({1, 1, 2, 2}, {1, -1, 2, -3});
  guarded<float, 4> o({1, 1, 4, 2});
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.causal = true});
  const auto got = flat(o);
  const float want[] = {0, 0, 0, 0, 1, -1, 1.5f, -2};
  for (int e = 0; e < 8; ++e) {
    EXPECT_FALSE(std::isnan(got[e])) << e;
    EXPECT_EQ(got[e], want[e]) << e;
  }
  EXPECT_FALSE(std::signbit(got[0]));
  // And in bf16.
  auto q16 = t4<bf16>({1, 1, 4, 2}, {}), k16 = t4<bf16>({1, 1, 2, 2}, {});
  auto v16 = t4<bf16>({1, 1, 2, 2}, {1, -1, 2, -3});
  guarded<bf16, 4> o16({1, 1, 4, 2});
  o16.fill_value(nan_f);
  trellis::attention(ref, q16.cview(), k16.cview(), v16.cview(), o16.view(), {.causal = true});
  const auto got16 = flat(o16);
  for (int e = 0; e < 8; ++e) EXPECT_EQ(got16[e], want[e]) << e;
}

TEST(Attention, GroupedQueryHeads) {
  // H = 4, Hkv = 2: query heads 0, 1 read kv head 0; heads 2, 3 read kv head 1. q = 0: plain means.
  auto q = t4({1, 4, 1, 1}, {});
  auto k = t4({1, 2, 2, 1}, {});
  auto v = t4({1, 2, 2, 1}, {10, 20, 100, 300});
  guarded<float, 4> o({1, 4, 1, 1});
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());
  const auto got = flat(o);
  EXPECT_FLOAT_EQ(got[0], 15.0f);
  EXPECT_FLOAT_EQ(got[1], 15.0f);
  EXPECT_FLOAT_EQ(got[2], 200.0f);
  EXPECT_FLOAT_EQ(got[3], 200.0f);
}

TEST(Attention, MultiQueryAndBatches) {
  // Hkv = 1 (MQA) with two batches that must not mix.
  auto q = t4({2, 3, 1, 1}, {});
  auto k = t4({2, 1, 2, 1}, {});
  auto v = t4({2, 1, 2, 1}, {1, 3, -10, -30});
  guarded<float, 4> o({2, 3, 1, 1});
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());
  const auto got = flat(o);
  for (int h = 0; h < 3; ++h) {
    EXPECT_FLOAT_EQ(got[h], 2.0f);
    EXPECT_FLOAT_EQ(got[3 + h], -20.0f);
  }
}

TEST(Attention, HugeLogitsStayFinite) {
  // Logits 1e4, -1e4, 9900: the first key takes all the weight (e^-100 ≈ 4e-44 for the third).
  auto q = t4({1, 1, 2, 1}, {100, -100});
  auto k = t4({1, 1, 3, 1}, {100, -100, 99});
  auto v = t4({1, 1, 3, 1}, {1, 2, 3});
  guarded<float, 4> o({1, 1, 2, 1});
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());
  const auto got = flat(o);
  EXPECT_TRUE(std::isfinite(got[0]));
  EXPECT_FLOAT_EQ(got[0], 1.0f);
  EXPECT_FLOAT_EQ(got[1], 2.0f);  // -100·-100 = 1e4 for key 1
  // Two equal huge logits split evenly.
  auto k2 = t4({1, 1, 3, 1}, {100, 100, -100});
  trellis::attention(ref, q.cview(), k2.cview(), v.cview(), o.view());
  EXPECT_FLOAT_EQ(flat(o)[0], 1.5f);
}

TEST(Attention, Bf16InputsAndOutput) {
  auto q = t4<bf16>({1, 1, 1, 1}, {0});
  auto k = t4<bf16>({1, 1, 2, 1}, {1, 2});
  auto v = t4<bf16>({1, 1, 2, 1}, {256, 258});
  guarded<float, 4> o32({1, 1, 1, 1});
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o32.view());
  EXPECT_FLOAT_EQ(o32.get({0, 0, 0, 0}), 257.0f);
  guarded<bf16, 4> o16({1, 1, 1, 1});
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o16.view());
  EXPECT_EQ(o16.get({0, 0, 0, 0}), 256.0f);  // the tie 257 rounds to even
}

TEST(Attention, EmptyKeySequenceGivesZeros) {
  guarded<float, 4> q({1, 1, 2, 3}), k({1, 1, 0, 3}), v({1, 1, 0, 3}), o({1, 1, 2, 3});
  q.fill_value(1.0f);
  o.fill_value(nan_f);
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view());
  for (float x : flat(o)) EXPECT_EQ(x, 0.0f);
}

// q = 0 below: every visible, unmasked key gets the same weight, so o is the mean of their values.

TEST(Attention, KeyLengthsMaskPrefixPerBatch) {
  guarded<float, 4> q({2, 1, 2, 1}), k({2, 1, 4, 1}), v({2, 1, 4, 1}), o({2, 1, 2, 1});
  q.fill_value(0.0f);
  k.fill_value(1.0f);
  auto vv = t4({2, 1, 4, 1}, {1, 2, 4, 8, 16, 32, 64, 128});
  o.fill_value(nan_f);
  const std::int32_t len[2] = {3, 0};
  guarded<float, 3> lse({2, 1, 2});
  trellis::attention(ref, q.cview(), k.cview(), vv.cview(), o.view(),
                     {.key_lengths = trellis::tensor_view<const std::int32_t, 1>{len, {2}},
                      .lse = lse.view()});
  const auto got = flat(o);
  EXPECT_FLOAT_EQ(got[0], 7.0f / 3.0f);
  EXPECT_FLOAT_EQ(got[1], 7.0f / 3.0f);
  EXPECT_EQ(got[2], 0.0f);  // batch 1 sees no key
  EXPECT_EQ(got[3], 0.0f);
  EXPECT_FLOAT_EQ(lse.get({0, 0, 0}), std::log(3.0f));  // logits 0: ln Σ e⁰ = ln 3
  EXPECT_EQ(lse.get({1, 0, 1}), -std::numeric_limits<float>::infinity());
}

TEST(Attention, AdditiveMaskBroadcastAndMinusInf) {
  auto q = t4({1, 2, 2, 1}, {0, 0, 0, 0});
  auto k = t4({1, 1, 3, 1}, {0, 0, 0});
  auto v = t4({1, 1, 3, 1}, {1, 2, 4});
  const float ninf = -std::numeric_limits<float>::infinity();
  // [Sq, Skv]: row 0 keeps keys 0 and 2 with weights e^ln3 : e^0 = 3 : 1; row 1 masks everything.
  guarded<float, 2> m2({2, 3});
  const float ln3 = std::log(3.0f);
  const float mv[] = {ln3, ninf, 0.0f, ninf, ninf, ninf};
  int n = 0;
  m2.fill([&](const auto&) { return mv[n++]; });
  guarded<float, 4> o({1, 2, 2, 1});
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.mask = m2.cview()});
  const auto got = flat(o);
  for (int h = 0; h < 2; ++h) {
    EXPECT_NEAR(got[2 * h], 0.75 * 1 + 0.25 * 4, 1e-6);
    EXPECT_EQ(got[2 * h + 1], 0.0f);  // every key masked: 0, not NaN
  }
  // [1, H, Sq, Skv] in bf16: head 1 prefers key 1.
  guarded<trellis::bf16, 4> m4({1, 2, 2, 3});
  m4.fill([&](const auto& i) { return i[1] == 1 && i[3] == 1 ? 100.0f : 0.0f; });
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.mask = m4.cview()});
  const auto got4 = flat(o);
  EXPECT_FLOAT_EQ(got4[0], 7.0f / 3.0f);
  EXPECT_NEAR(got4[2], 2.0f, 1e-6);
}

TEST(Attention, SlidingWindow) {
  // Sq = 2, Skv = 5: query i's causal limit is i + 3; window 2 keeps keys (i + 1, i + 3].
  auto q = t4({1, 1, 2, 1}, {0, 0});
  auto k = t4({1, 1, 5, 1}, {0, 0, 0, 0, 0});
  auto v = t4({1, 1, 5, 1}, {1, 2, 4, 8, 16});
  guarded<float, 4> o({1, 1, 2, 1});
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.causal = true, .window = 2});
  auto got = flat(o);
  EXPECT_FLOAT_EQ(got[0], 6.0f);   // keys 2, 3
  EXPECT_FLOAT_EQ(got[1], 12.0f);  // keys 3, 4
  trellis::attention(ref, q.cview(), k.cview(), v.cview(), o.view(), {.causal = true, .window = 100});
  got = flat(o);
  EXPECT_FLOAT_EQ(got[0], 15.0f / 4.0f);  // the whole causal prefix
  EXPECT_FLOAT_EQ(got[1], 31.0f / 5.0f);
}

// ---------------------------------------------------------------------------------------------------
// norms

template <class T, std::size_t R>
std::vector<float> flatn(const guarded<T, R>& g) {
  std::vector<float> v;
  g.for_each([&](const auto& i) { v.push_back(g.get(i)); });
  return v;
}

void expect_near_all(const std::vector<float>& got, std::initializer_list<double> want,
                     double tol) {
  ASSERT_EQ(got.size(), want.size());
  auto it = want.begin();
  for (std::size_t e = 0; e < got.size(); ++e, ++it)
    EXPECT_NEAR(got[e], *it, tol) << "element " << e;
}

TEST(Norm, LayernormPlain) {
  auto x = mat(1, 4, {1, 2, 3, 4});
  guarded<float, 2> y({1, 4});
  y.fill_value(nan_f);
  trellis::layernorm(ref, x.cview(), {}, {}, y.view(), {.eps = 0.0f});
  expect_near_all(flatn(y), {-1.3416407865, -0.4472135955, 0.4472135955, 1.3416407865}, 1e-7);
}

TEST(Norm, LayernormGammaBeta) {
  auto x = mat(1, 4, {1, 2, 3, 4});
  const float g[] = {1, 2, 3, 4}, b[] = {0.5f, 0.5f, -1, 0};
  const tensor_view<const float, 1> gamma{g, {4}}, beta{b, {4}};
  guarded<float, 2> y({1, 4});
  trellis::layernorm(ref, x.cview(), gamma, beta, y.view(), {.eps = 0.0f});
  expect_near_all(
      flatn(y),
      {-1.3416407865 + 0.5, 2 * -0.4472135955 + 0.5, 3 * 0.4472135955 - 1, 4 * 1.3416407865}, 1e-6);
  trellis::layernorm(ref, x.cview(), gamma, {}, y.view(), {.eps = 0.0f});
  expect_near_all(flatn(y), {-1.3416407865, 2 * -0.4472135955, 3 * 0.4472135955, 4 * 1.3416407865},
                  1e-6);
  trellis::layernorm(ref, x.cview(), {}, beta, y.view(), {.eps = 0.0f});
  expect_near_all(flatn(y),
                  {-1.3416407865 + 0.5, -0.4472135955 + 0.5, 0.4472135955 - 1, 1.3416407865}, 1e-6);
}

TEST(Norm, RmsnormWithAndWithoutGamma) {
  auto x = mat(1, 4, {1, 2, 3, 4});
  guarded<float, 2> y({1, 4});
  trellis::rmsnorm(ref, x.cview(), {}, y.view(), {.eps = 0.0f});  // mean(x²) = 7.5
  expect_near_all(flatn(y), {0.3651483717, 0.7302967433, 1.0954451150, 1.4605934867}, 1e-7);
  const float g[] = {2, -1, 0, 1};
  trellis::rmsnorm(ref, x.cview(), tensor_view<const float, 1>{g, {4}}, y.view(), {.eps = 0.0f});
  expect_near_all(flatn(y), {0.7302967433, -0.7302967433, 0, 1.4605934867}, 1e-7);
}

TEST(Norm, EpsIsAddedToTheVariance) {
  auto x = mat(1, 2, {1, -1});  // mean 0, variance 1, mean square 1
  guarded<float, 2> y({1, 2});
  trellis::layernorm(ref, x.cview(), {}, {}, y.view(), {.eps = 3.0f});
  expect_near_all(flatn(y), {0.5, -0.5}, 0.0);
  trellis::rmsnorm(ref, x.cview(), {}, y.view(), {.eps = 3.0f});
  expect_near_all(flatn(y), {0.5, -0.5}, 0.0);
}

TEST(Norm, FusedResidualWithResidualOut) {
  auto x = mat(1, 4, {0, 1, 2, 3});
  auto r = mat(1, 4, {1, 1, 1, 1});
  guarded<float, 2> y({1, 4}), s({1, 4});
  s.fill_value(nan_f);
  trellis::layernorm(ref, x.cview(), {}, {}, y.view(),
                     {.eps = 0.0f, .residual = r.cview(), .residual_out = s.view()});
  expect_near_all(flatn(y), {-1.3416407865, -0.4472135955, 0.4472135955, 1.3416407865}, 1e-7);
  expect_near_all(flatn(s), {1, 2, 3, 4}, 0.0);
  // Without residual_out only y is written.
  s.fill_value(nan_f);
  trellis::rmsnorm(ref, x.cview(), {}, y.view(), {.eps = 0.0f, .residual = r.cview()});
  expect_near_all(flatn(y), {0.3651483717, 0.7302967433, 1.0954451150, 1.4605934867}, 1e-7);
  EXPECT_TRUE(std::isnan(s.get({0, 0})));
  // residual_out may be x itself (the usual in-place residual stream).
  trellis::rmsnorm(ref, x.cview(), {}, y.view(),
                   {.eps = 0.0f, .residual = r.cview(), .residual_out = x.view()});
  expect_near_all(flatn(x), {1, 2, 3, 4}, 0.0);
  expect_near_all(flatn(y), {0.3651483717, 0.7302967433, 1.0954451150, 1.4605934867}, 1e-7);
}

TEST(Norm, Rank3And1Inputs) {
  guarded<float, 3> x({2, 2, 2}, 3), y({2, 2, 2}, 1);
  const float values[] = {1, 3, -2, 2, 5, 7, 0, 10};
  int n = 0;
  x.fill([&](const auto&) { return values[n++]; });
  trellis::layernorm(ref, x.cview(), {}, {}, y.view(), {.eps = 0.0f});
  expect_near_all(flatn(y), {-1, 1, -1, 1, -1, 1, -1, 1}, 1e-7);
  EXPECT_EQ(y.damaged_canaries(), 0u);
  guarded<float, 1> x1({2}), y1({2});
  x1.fill([&](const auto& i) { return i[0] ? 4.0f : 3.0f; });
  trellis::rmsnorm(ref, x1.cview(), {}, y1.view(), {.eps = 0.0f});  // mean square 12.5
  expect_near_all(flatn(y1), {3 / std::sqrt(12.5), 4 / std::sqrt(12.5)}, 1e-7);
}

TEST(Norm, CancellationProneRows) {
  // 1e4 ± 0.125 (exact in fp32): mean 1e4, variance 1/64 — E[x²] − E[x]² in fp32 would lose it all.
  guarded<float, 2> x({2, 64}), y({2, 64});
  x.fill(
      [](const auto& i) { return 1e4f + ((i[1] % 2) ? 0.125f : -0.125f) * (i[0] ? 2.0f : 1.0f); });
  trellis::layernorm(ref, x.cview(), {}, {}, y.view(), {.eps = 0.0f});
  y.for_each([&](const auto& i) { EXPECT_NEAR(y.get(i), (i[1] % 2) ? 1.0 : -1.0, 1e-6); });
  // rmsnorm of the same rows: ≈ 1 everywhere.
  trellis::rmsnorm(ref, x.cview(), {}, y.view(), {.eps = 0.0f});
  y.for_each([&](const auto& i) { EXPECT_NEAR(y.get(i), 1.0, 1e-4); });
}

TEST(Norm, InPlace) {
  guarded<float, 2> x({2, 4}, 2);
  const float values[] = {1, 2, 3, 4, 4, 3, 2, 1};
  int n = 0;
  x.fill([&](const auto&) { return values[n++]; });
  trellis::layernorm(ref, x.cview(), {}, {}, x.view(), {.eps = 0.0f});
  expect_near_all(flatn(x),
                  {-1.3416407865, -0.4472135955, 0.4472135955, 1.3416407865, 1.3416407865,
                   0.4472135955, -0.4472135955, -1.3416407865},
                  1e-7);
  EXPECT_EQ(x.damaged_canaries(), 0u);
}

TEST(Norm, Bf16InputsAndOutputs) {
  auto x = mat<bf16>(1, 4, {1, 2, 3, 4});
  guarded<bf16, 2> y({1, 4});
  const bf16 g[] = {bf16(1.0f), bf16(1.0f), bf16(1.0f), bf16(2.0f)};
  trellis::layernorm(ref, x.cview(), tensor_view<const bf16, 1>{g, {4}}, {}, y.view(),
                     {.eps = 0.0f});
  const auto got = flatn(y);
  const double want[] = {-1.3416407865, -0.4472135955, 0.4472135955, 2 * 1.3416407865};
  for (int e = 0; e < 4; ++e) EXPECT_EQ(got[e], trellis::round_to_bf16(float(want[e]))) << e;
  guarded<float, 2> y32({1, 4});
  trellis::rmsnorm(ref, x.cview(), {}, y32.view(), {.eps = 0.0f});
  expect_near_all(flatn(y32), {0.3651483717, 0.7302967433, 1.0954451150, 1.4605934867}, 1e-7);
}

}  // namespace
