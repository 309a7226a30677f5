// validation: every error path of matmul's front door (ops/matmul.hpp, core/validate.hpp), and zero
// sizes. Every check must raise trellis::error "<op>: <argument>: expected ..., got ..." and leave
// every buffer (with canaries in and around it) untouched, on every target; the documented aliases
// are accepted.

#include <array>
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

TARGET_TEST_SUITE(Matmul);

// ---------------------------------------------------------------------------------------------------
// matmul: a [M=3, K=4], b [K=4, N=5], c [3, 5]

constexpr std::size_t M = 3, K = 4, N = 5;

struct matmul_operands {
  guarded<float, 2> a{{M, K}}, b{{K, N}}, c{{M, N}, 2}, bias{{1, N}}, residual{{M, N}};
  matmul_operands() {
    a.fill_value(1.0f);
    b.fill_value(2.0f);
    c.fill_value(nan_f);
    bias.fill_value(0.5f);
    residual.fill_value(3.0f);
  }
  tensor_view<const float, 1> bias1() const { return {bias.data(), {N}}; }
  untouched watch() const {
    untouched w;
    w << a << b << c << bias << residual;
    return w;
  }
};

TARGET_TEST(Matmul, NullPointers) {
  matmul_operands t;
  expect_error(
      [&] {
        trellis::matmul(tg, tensor_view<const float, 2>{nullptr, {M, K}}, t.b.cview(), t.c.view());
      },
      "matmul", "a", t.watch(), "non-null");
  expect_error(
      [&] {
        trellis::matmul(tg, t.a.cview(), tensor_view<const float, 2>{nullptr, {K, N}}, t.c.view());
      },
      "matmul", "b", t.watch(), "nullptr");
  expect_error(
      [&] {
        trellis::matmul(tg, t.a.cview(), t.b.cview(), tensor_view<float, 2>{nullptr, {M, N}});
      },
      "matmul", "c", t.watch(), "nullptr");
  expect_error(
      [&] {
        trellis::matmul(
            tg, t.a.cview(), t.b.cview(), t.c.view(),
            {.epilogue = epilogue::bias_only(tensor_view<const float, 1>{nullptr, {N}})});
      },
      "matmul", "epilogue.bias", t.watch(), "nullptr");
  expect_error(
      [&] {
        trellis::matmul(
            tg, t.a.cview(), t.b.cview(), t.c.view(),
            {.epilogue = epilogue::residual_add(tensor_view<const float, 2>{nullptr, {M, N}})});
      },
      "matmul", "epilogue.residual", t.watch(), "nullptr");
}

TARGET_TEST(Matmul, ShapeMismatches) {
  matmul_operands t;
  guarded<float, 2> b5({K + 1, N}), bt_bad({N, K - 1}), c_rows({M - 1, N}), c_cols({M, N + 1});
  guarded<float, 2> at({K, M}), bt({N, K});
  untouched w = t.watch();
  w << b5 << bt_bad << c_rows << c_cols;
  expect_error([&] { trellis::matmul(tg, t.a.cview(), b5.cview(), t.c.view()); }, "matmul", "b", w,
               "extent 4 in axis 0 (K = columns of a), got shape [5, 5]");
  expect_error(
      [&] { trellis::matmul(tg, t.a.cview(), bt_bad.cview(), t.c.view(), {.transpose_b = true}); },
      "matmul", "b", w, "extent 4 in axis 1");
  expect_error(
      [&] { trellis::matmul(tg, at.cview(), b5.cview(), t.c.view(), {.transpose_a = true}); },
      "matmul", "b", w, "K = rows of a (transpose_a)");
  expect_error([&] { trellis::matmul(tg, t.a.cview(), t.b.cview(), c_rows.view()); }, "matmul", "c",
               w, "extent 3 in axis 0");
  expect_error([&] { trellis::matmul(tg, t.a.cview(), t.b.cview(), c_cols.view()); }, "matmul", "c",
               w, "extent 5 in axis 1");
  expect_error(
      [&] { trellis::matmul(tg, t.a.cview(), bt.cview(), c_cols.view(), {.transpose_b = true}); },
      "matmul", "c", w, "N = rows of b (transpose_b)");
  expect_error(
      [&] { trellis::matmul(tg, at.cview(), t.b.cview(), c_rows.view(), {.transpose_a = true}); },
      "matmul", "c", w, "M = columns of a (transpose_a)");
  // Forgetting transpose_b on a weight stored [N, K] is a shape error, not a silent wrong answer.
  expect_error([&] { trellis::matmul(tg, t.a.cview(), bt.cview(), t.c.view()); }, "matmul", "b", w);
}

TARGET_TEST(Matmul, SelfOverlappingOutput) {
  matmul_operands t;
  untouched w = t.watch();
  for (auto strides : {std::array<std::size_t, 2>{0, 1}, {1, 1}, {N, 0}, {2, 1}, {1, 2}}) {
    SCOPED_TRACE(testing::Message() << "strides {" << strides[0] << ", " << strides[1] << "}");
    expect_error(
        [&] {
          trellis::matmul(tg, t.a.cview(), t.b.cview(),
                          tensor_view<float, 2>{t.c.data(), {M, N}, strides});
        },
        "matmul", "c", w, "own address");
  }
}

TARGET_TEST(Matmul, OutputOverlapsInput) {
  // One buffer holds c and, at various offsets, a or b.
  guarded<float, 1> pool({64});
  pool.fill_value(1.0f);
  untouched w;
  w << pool;
  const tensor_view<float, 2> c{pool.data() + 20, {M, N}};  // elements 20..34
  for (std::size_t start : {20u, 9u, 34u, 30u}) {
    SCOPED_TRACE(start);
    const tensor_view<const float, 2> a{pool.data() + start, {M, K}};  // 12 elements
    const tensor_view<const float, 2> b{pool.data() + start, {K, N}};  // 20 elements
    guarded<float, 2> other_a({M, K}), other_b({K, N});
    expect_error([&] { trellis::matmul(tg, a, other_b.cview(), c); }, "matmul", "c", w,
                 "disjoint from a");
    expect_error([&] { trellis::matmul(tg, other_a.cview(), b, c); }, "matmul", "c", w,
                 "disjoint from b");
  }
  // Just past the end / just before the start is fine.
  const tensor_view<const float, 2> a_after{pool.data() + 35, {M, K}};
  const tensor_view<const float, 2> b_before{pool.data(), {K, N}};
  trellis::matmul(tg, a_after, b_before, c);
}

TARGET_TEST(Matmul, NonFiniteAlphaBeta) {
  matmul_operands t;
  for (float bad : {nan_f, inf_f, -inf_f}) {
    SCOPED_TRACE(bad);
    expect_error([&] { trellis::matmul(tg, t.a.cview(), t.b.cview(), t.c.view(), {.alpha = bad}); },
                 "matmul", "options.alpha", t.watch(), "finite");
    expect_error([&] { trellis::matmul(tg, t.a.cview(), t.b.cview(), t.c.view(), {.beta = bad}); },
                 "matmul", "options.beta", t.watch(), "finite");
  }
}

TARGET_TEST(Matmul, BadBias) {
  matmul_operands t;
  const auto run = [&](trellis::any_view bias) {
    return [&tg, &t, bias] {
      trellis::matmul(tg, t.a.cview(), t.b.cview(), t.c.view(),
                      {.epilogue = epilogue::bias_gelu(bias)});
    };
  };
  expect_error(run(t.bias.cview()), "matmul", "epilogue.bias", t.watch(),
               "shape [5] (one value per column of C), got shape [1, 5]");
  expect_error(run(tensor_view<const float, 1>{t.bias.data(), {N - 1}}), "matmul", "epilogue.bias",
               t.watch(), "got shape [4]");
  expect_error(run(tensor_view<const float, 1>{t.residual.data(), {M}}), "matmul", "epilogue.bias",
               t.watch());
  // A bias inside C's memory.
  expect_error(run(tensor_view<const float, 1>{t.c.data() + 2, {N}}), "matmul", "c", t.watch(),
               "disjoint from epilogue.bias");
  // A broadcast (stride 0) bias and a bf16 bias are fine.
  trellis::matmul(
      tg, t.a.cview(), t.b.cview(), t.c.view(),
      {.epilogue = epilogue::bias_only(tensor_view<const float, 1>{t.bias.data(), {N}, {0}})});
  EXPECT_EQ(t.c.get({2, 4}), 8.5f);
  const bf16 b16[N] = {bf16(1.0f), bf16(1.0f), bf16(1.0f), bf16(1.0f), bf16(-1.0f)};
  trellis::matmul(tg, t.a.cview(), t.b.cview(), t.c.view(),
                  {.epilogue = epilogue::bias_only(tensor_view<const bf16, 1>{b16, {N}})});
  EXPECT_EQ(t.c.get({2, 4}), 7.0f);
}

TARGET_TEST(Matmul, BadResidual) {
  matmul_operands t;
  const auto run = [&](trellis::any_view r) {
    return [&tg, &t, r] {
      trellis::matmul(tg, t.a.cview(), t.b.cview(), t.c.view(),
                      {.epilogue = epilogue::residual_add(r)});
    };
  };
  expect_error(run(tensor_view<const float, 2>{t.residual.data(), {M, N - 1}}), "matmul",
               "epilogue.residual", t.watch(), "shape [3, 5] (the shape of C), got shape [3, 4]");
  expect_error(run(tensor_view<const float, 1>{t.residual.data(), {N}}), "matmul",
               "epilogue.residual", t.watch(), "got shape [5]");
  expect_error(run(tensor_view<const float, 3>{t.residual.data(), {1, M, N}}), "matmul",
               "epilogue.residual", t.watch());
  // Partly overlapping C, or the same memory with other strides, or another element type: not
  // allowed.
  const std::array<std::size_t, 2> c_strides = t.c.strides();
  expect_error(run(tensor_view<const float, 2>{t.c.data() + 1, {M, N}, c_strides}), "matmul", "c",
               t.watch(), "disjoint from epilogue.residual (or exactly the same view)");
  expect_error(run(tensor_view<const float, 2>{t.c.data(), {M, N}}), "matmul", "c", t.watch(),
               "epilogue.residual");
  expect_error(
      run(tensor_view<const bf16, 2>{reinterpret_cast<const bf16*>(t.c.data()), {M, N}, c_strides}),
      "matmul", "c", t.watch(), "epilogue.residual");
}

TARGET_TEST(Matmul, ResidualIdenticalToCIsAllowed) {
  matmul_operands t;
  t.c.fill_value(10.0f);
  trellis::matmul(tg, t.a.cview(), t.b.cview(), t.c.view(),
                  {.beta = 1.0f, .epilogue = epilogue::residual_add(t.c.cview())});
  t.c.for_each([&](const auto& i) { EXPECT_EQ(t.c.get(i), 8.0f + 10.0f + 10.0f); });
  EXPECT_EQ(t.c.damaged_canaries(), 0u);
  // Extent-1 axes may have any stride, also in an output.
  guarded<float, 2> row({1, N});
  trellis::matmul(tg, tensor_view<const float, 2>{t.a.data(), {1, K}}, t.b.cview(),
                  tensor_view<float, 2>{row.data(), {1, N}, {0, 1}});
  EXPECT_EQ(row.get({0, 3}), 8.0f);
}

TARGET_TEST(Matmul, ZeroSizes) {
  guarded<float, 2> c({M, N}, 1);
  c.fill_value(nan_f);
  untouched w;
  w << c;
  // M = 0 and N = 0 (null pointers are fine when there are no elements): nothing is written.
  guarded<float, 2> a({M, K}), b({K, N}), bias({1, N}), residual({M, N});
  trellis::matmul(tg, tensor_view<const float, 2>{nullptr, {0, K}}, b.cview(),
                  tensor_view<float, 2>{nullptr, {0, N}});
  trellis::matmul(
      tg, a.cview(), tensor_view<const float, 2>{nullptr, {K, 0}},
      tensor_view<float, 2>{c.data(), {M, 0}},
      {.beta = 1.0f, .epilogue = epilogue::bias_silu(tensor_view<const float, 1>{nullptr, {0}})});
  trellis::matmul(tg, tensor_view<const float, 2>{nullptr, {0, K}}, b.cview(),
                  tensor_view<float, 2>{c.data(), {0, N}},
                  {.epilogue = epilogue::bias_gelu(tensor_view<const float, 1>{bias.data(), {N}})
                                   .with_residual(tensor_view<const float, 2>{nullptr, {0, N}})});
  w.check();
  // K = 0: C = act(bias) + residual + β·C₀.
  bias.fill([](const auto& i) { return float(i[1]) - 2.0f; });
  residual.fill([](const auto& i) { return float(i[0]); });
  c.fill([](const auto& i) { return float(i[1] + 1); });
  const trellis::matmul_options opts{
      .beta = 0.5f,
      .epilogue = epilogue::bias_gelu_erf(tensor_view<const float, 1>{bias.data(), {N}})
                      .with_residual(residual.cview())};
  trellis::matmul(tg, tensor_view<const float, 2>{nullptr, {M, 0}},
                  tensor_view<const float, 2>{nullptr, {0, N}}, c.view(), opts);
  c.for_each([&](const auto& i) {
    const double x = double(i[1]) - 2.0;
    const double want =
        0.5 * x * (1 + std::erf(x / std::sqrt(2.0))) + double(i[0]) + 0.5 * double(i[1] + 1);
    EXPECT_NEAR(c.get(i), want, 1e-6 + 4e-7 * std::fabs(want)) << i[0] << "," << i[1];
  });
  EXPECT_EQ(c.damaged_canaries(), 0u);
  // bf16 inputs, K = 0, no epilogue, β = 0: zeros (over a NaN-filled C).
  guarded<bf16, 2> c16({M, N});
  c16.fill_value(nan_f);
  trellis::matmul(tg, tensor_view<const bf16, 2>{nullptr, {M, 0}},
                  tensor_view<const bf16, 2>{nullptr, {0, N}}, c16.view());
  c16.for_each([&](const auto& i) { EXPECT_EQ(c16.get(i), 0.0f); });
}

}  // namespace
