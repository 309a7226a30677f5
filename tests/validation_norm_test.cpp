// validation: every error path of the layernorm/rmsnorm front door (ops/norm.hpp,
// core/validate.hpp), the documented aliases, and zero sizes. Every check must raise trellis::error
// "<op>: <argument>: expected ..., got ..." and leave every buffer (with canaries in and around it)
// untouched, on every target; the documented aliases are accepted.

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

TARGET_TEST_SUITE(Norm);

// ---------------------------------------------------------------------------------------------------
// norms: x, y [rows=3, hidden=8]; both layernorm and rmsnorm share one validator.

constexpr std::size_t R = 3, H = 8;

struct norm_operands {
  guarded<float, 2> x{{R, H}, 1}, y{{R, H}, 2}, gamma{{1, H}}, beta{{1, H}}, r{{R, H}}, s{{R, H}};
  norm_operands() {
    x.fill([](const auto& i) { return float(i[1]) - float(i[0]); });
    y.fill_value(nan_f);
    gamma.fill_value(2.0f);
    beta.fill_value(-1.0f);
    r.fill_value(0.5f);
    s.fill_value(nan_f);
  }
  tensor_view<const float, 1> g1() const { return {gamma.data(), {H}}; }
  tensor_view<const float, 1> b1() const { return {beta.data(), {H}}; }
  untouched watch() const {
    untouched w;
    w << x << y << gamma << beta << r << s;
    return w;
  }
};

/// Calls layernorm (with beta) or rmsnorm with the same arguments.
template <class Target>
struct norm_caller {
  const Target& tg;
  bool layer;
  const char* name() const { return layer ? "layernorm" : "rmsnorm"; }
  template <class X, class Y>
  void operator()(const X& x, trellis::any_view gamma, trellis::any_view beta, const Y& y,
                  float eps = 1e-5f, trellis::any_view residual = {},
                  trellis::any_output_view residual_out = {}) const {
    if (layer)
      trellis::layernorm(tg, x, gamma, beta, y,
                         {.eps = eps, .residual = residual, .residual_out = residual_out});
    else
      trellis::rmsnorm(tg, x, gamma, y,
                       {.eps = eps, .residual = residual, .residual_out = residual_out});
  }
};

template <class Target, class F>
void for_both_norms(const Target& tg, F&& f) {
  for (bool layer : {true, false}) {
    SCOPED_TRACE(layer ? "layernorm" : "rmsnorm");
    f(norm_caller<Target>{tg, layer});
  }
}

TARGET_TEST(Norm, NullPointersAndShapes) {
  for_both_norms(tg, [](const auto& norm) {
    norm_operands t;
    const auto w = t.watch();
    const char* op = norm.name();
    expect_error(
        [&] {
          norm(tensor_view<const float, 2>{nullptr, {R, H}}, {}, {}, t.y.view());
        },
        op, "x", w, "nullptr");
    expect_error(
        [&] {
          norm(t.x.cview(), {}, {}, tensor_view<float, 2>{nullptr, {R, H}});
        },
        op, "y", w, "nullptr");
    expect_error(
        [&] {
          norm(t.x.cview(), {}, {}, tensor_view<float, 2>{t.y.data(), {R - 1, H}});
        },
        op, "y", w, "extent 3 in axis 0 (the shape of x)");
    expect_error(
        [&] {
          norm(t.x.cview(), {}, {}, tensor_view<float, 2>{t.y.data(), {R, H - 1}});
        },
        op, "y", w, "extent 8 in axis 1");
    expect_error(
        [&] {
          norm(t.x.cview(), tensor_view<const float, 1>{nullptr, {H}}, {}, t.y.view());
        },
        op, "gamma", w, "nullptr");
    expect_error([&] { norm(t.x.cview(), t.gamma.cview(), {}, t.y.view()); }, op, "gamma", w,
                 "shape [8] (one value per element of the normalised axis), got shape [1, 8]");
    expect_error(
        [&] {
          norm(t.x.cview(), tensor_view<const float, 1>{t.gamma.data(), {H - 1}}, {}, t.y.view());
        },
        op, "gamma", w, "got shape [7]");
    if (norm.layer) {
      expect_error(
          [&] {
            norm(t.x.cview(), t.g1(), tensor_view<const float, 1>{nullptr, {H}}, t.y.view());
          },
          op, "beta", w, "nullptr");
      expect_error(
          [&] {
            norm(t.x.cview(), t.g1(), tensor_view<const float, 1>{t.beta.data(), {1}}, t.y.view());
          },
          op, "beta", w, "got shape [1]");
    }
  });
}

TARGET_TEST(Norm, StridesAndOverlap) {
  for_both_norms(tg, [](const auto& norm) {
    norm_operands t;
    const auto w = t.watch();
    const char* op = norm.name();
    const std::size_t xs = t.x.strides()[0], ys = t.y.strides()[0];
    expect_error(
        [&] {
          norm(tensor_view<const float, 2>{t.x.data(), {R, H / 2}, {xs, 2}}, {}, {},
               tensor_view<float, 2>{t.y.data(), {R, H / 2}});
        },
        op, "x", w, "stride 1 in the last axis");
    expect_error(
        [&] {
          norm(tensor_view<const float, 2>{t.x.data(), {R, H / 2}}, {}, {},
               tensor_view<float, 2>{t.y.data(), {R, H / 2}, {ys, 2}});
        },
        op, "y", w, "stride 1 in the last axis");
    // Rows written on top of each other.
    expect_error(
        [&] {
          norm(t.x.cview(), {}, {}, tensor_view<float, 2>{t.y.data(), {R, H}, {0, 1}});
        },
        op, "y", w, "own address");
    expect_error(
        [&] {
          norm(t.x.cview(), {}, {}, tensor_view<float, 2>{t.y.data(), {R, H}, {H - 1, 1}});
        },
        op, "y", w, "own address");
    // y partly over x (shifted by one element or one row), or over γ/β.
    for (std::size_t shift : {std::size_t{1}, xs}) {
      expect_error(
          [&] {
            norm(t.x.cview(), {}, {}, tensor_view<float, 2>{t.x.data() + shift, {R, H}, {xs, 1}});
          },
          op, "y", w, "disjoint from x (or exactly the same view)");
    }
    expect_error(
        [&] {
          norm(t.x.cview(), {}, {}, tensor_view<float, 2>{t.x.data(), {R, H}});
        },
        op, "y", w, "disjoint from x");
    expect_error(
        [&] {
          norm(t.x.cview(), tensor_view<const float, 1>{t.y.data() + ys, {H}}, {}, t.y.view());
        },
        op, "y", w, "disjoint from gamma");
    if (norm.layer)
      expect_error(
          [&] {
            norm(t.x.cview(), t.g1(), tensor_view<const float, 1>{t.y.data() + 3, {H}}, t.y.view());
          },
          op, "y", w, "disjoint from beta");
  });
}

TARGET_TEST(Norm, BadEps) {
  for_both_norms(tg, [](const auto& norm) {
    norm_operands t;
    for (float bad : {-1e-6f, -0.5f, nan_f, inf_f, -inf_f}) {
      SCOPED_TRACE(bad);
      expect_error([&] { norm(t.x.cview(), t.g1(), t.b1(), t.y.view(), bad); }, norm.name(),
                   "options.eps", t.watch(), "finite");
    }
  });
}

TARGET_TEST(Norm, BadResidual) {
  for_both_norms(tg, [](const auto& norm) {
    norm_operands t;
    const auto w = t.watch();
    const char* op = norm.name();
    const auto x = t.x.cview();
    const auto y = t.y.view();
    expect_error([&] { norm(x, {}, {}, y, 1e-5f, {}, t.s.view()); }, op, "options.residual_out", w,
                 "only together with options.residual");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, tensor_view<const float, 2>{t.r.data(), {R, H - 1}});
        },
        op, "options.residual", w, "shape [3, 8] (the shape of x), got shape [3, 7]");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, tensor_view<const float, 1>{t.r.data(), {H}});
        },
        op, "options.residual", w);
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, tensor_view<const float, 2>{nullptr, {R, H}});
        },
        op, "options.residual", w, "nullptr");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, tensor_view<const float, 2>{t.r.data(), {R, H}, {2 * H, 2}});
        },
        op, "options.residual", w, "stride 1 in the last axis");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f,
               tensor_view<const float, 2>{t.y.data() + 1, {R, H}, t.y.strides()});
        },
        op, "y", w, "disjoint from options.residual (or exactly the same view)");
  });
}

TARGET_TEST(Norm, BadResidualOut) {
  for_both_norms(tg, [](const auto& norm) {
    norm_operands t;
    const auto w = t.watch();
    const char* op = norm.name();
    const auto x = t.x.cview();
    const auto y = t.y.view();
    const auto r = t.r.cview();
    const auto s = [&](float* p, std::array<std::size_t, 2> shape,
                       std::array<std::size_t, 2> strides) {
      return tensor_view<float, 2>{p, shape, strides};
    };
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, r, s(t.s.data(), {R, H + 1}, {H + 1, 1}));
        },
        op, "options.residual_out", w, "the shape of x");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, r, s(nullptr, {R, H}, {H, 1}));
        },
        op, "options.residual_out", w, "nullptr");
    expect_error(
        [&] {
          norm(tensor_view<const float, 2>{t.x.data(), {R, H / 2}, t.x.strides()}, {}, {},
               s(t.y.data(), {R, H / 2}, {H, 1}), 1e-5f,
               tensor_view<const float, 2>{t.r.data(), {R, H / 2}, {H, 1}},
               s(t.s.data(), {R, H / 2}, {H, 2}));
        },
        op, "options.residual_out", w, "stride 1 in the last axis");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, r, s(t.s.data(), {R, H}, {0, 1}));
        },
        op, "options.residual_out", w, "own address");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, r, s(t.x.data() + 1, {R, H}, t.x.strides()));
        },
        op, "options.residual_out", w, "disjoint from x (or exactly the same view)");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, r, s(t.r.data() + H, {R, H}, {H, 1}));
        },
        op, "options.residual_out", w, "disjoint from options.residual (or exactly the same view)");
    expect_error([&] { norm(x, {}, {}, y, 1e-5f, r, y); }, op, "y", w,
                 "disjoint from options.residual_out");
    expect_error(
        [&] {
          norm(x, {}, {}, y, 1e-5f, r, s(t.y.data() + 2, {R, H}, t.y.strides()));
        },
        op, "y", w, "disjoint from options.residual_out");
    // residual_out over γ or β: γ/β are read after residual_out rows are written.
    expect_error(
        [&] {
          norm(x, tensor_view<const float, 1>{t.s.data() + H, {H}}, {}, y, 1e-5f, r, t.s.view());
        },
        op, "options.residual_out", w, "disjoint from gamma");
    if (norm.layer)
      expect_error(
          [&] {
            norm(x, t.g1(), tensor_view<const float, 1>{t.s.data(), {H}}, y, 1e-5f, r, t.s.view());
          },
          op, "options.residual_out", w, "disjoint from beta");
  });
}

TARGET_TEST(Norm, DocumentedAliasesAreAllowed) {
  for_both_norms(tg, [](const auto& norm) {
    // Expected values from separate buffers first.
    norm_operands want;
    norm(want.x.cview(), want.g1(), want.b1(), want.y.view(), 1e-5f, want.r.cview(), want.s.view());
    const auto same = [](const guarded<float, 2>& a, const guarded<float, 2>& b) {
      a.for_each([&](const auto& i) { EXPECT_EQ(a.get(i), b.get(i)) << i[0] << "," << i[1]; });
    };
    {  // y == x
      norm_operands t;
      norm(t.x.cview(), t.g1(), t.b1(), t.x.view(), 1e-5f, t.r.cview(), t.s.view());
      same(t.x, want.y);
      same(t.s, want.s);
      EXPECT_EQ(t.x.damaged_canaries(), 0u);
    }
    {  // residual_out == x
      norm_operands t;
      norm(t.x.cview(), t.g1(), t.b1(), t.y.view(), 1e-5f, t.r.cview(), t.x.view());
      same(t.y, want.y);
      same(t.x, want.s);
    }
    {  // residual_out == r
      norm_operands t;
      norm(t.x.cview(), t.g1(), t.b1(), t.y.view(), 1e-5f, t.r.cview(), t.r.view());
      same(t.y, want.y);
      same(t.r, want.s);
    }
    {  // y == r
      norm_operands t;
      norm(t.x.cview(), t.g1(), t.b1(), t.r.view(), 1e-5f, t.r.cview(), t.s.view());
      same(t.r, want.y);
      same(t.s, want.s);
    }
  });
}

TARGET_TEST(Norm, ZeroSizes) {
  for_both_norms(tg, [](const auto& norm) {
    guarded<float, 2> y({R, H});
    y.fill_value(nan_f);
    untouched w;
    w << y;
    norm(tensor_view<const float, 2>{nullptr, {0, H}}, {}, {},
         tensor_view<float, 2>{nullptr, {0, H}});
    norm(tensor_view<const float, 2>{nullptr, {R, 0}}, tensor_view<const float, 1>{nullptr, {0}},
         {}, tensor_view<float, 2>{y.data(), {R, 0}});
    norm(tensor_view<const float, 3>{nullptr, {2, 0, H}}, {}, {},
         tensor_view<float, 3>{y.data(), {2, 0, H}});
    w.check();
  });
}

}  // namespace
