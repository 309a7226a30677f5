// A program a Trellis user would write: the CPU part of the API example in DESIGN.md §2, compiled out of
// tree against an installed (find_package) or vendored (add_subdirectory) Trellis. It checks the CPU
// results against trellis::reference and returns non-zero on a mismatch.
#include <trellis/trellis.hpp>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <random>
#include <vector>

using namespace trellis;

namespace {

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& e : v) e = dist(gen);
  return v;
}

/// Largest |got - want| over the M×N matrices with leading dimension ldc.
float max_abs_diff(const std::vector<float>& got, const std::vector<float>& want, std::size_t rows,
                   std::size_t cols, std::size_t ld) {
  float worst = 0.0f;
  for (std::size_t i = 0; i < rows; ++i)
    for (std::size_t j = 0; j < cols; ++j) worst = std::fmax(worst, std::fabs(got[i * ld + j] - want[i * ld + j]));
  return worst;
}

}  // namespace

int main() {
  const std::size_t M = 67, K = 96, N = 80, ldc = N + 3;  // ldc > N: a padded C
  std::vector<float> va = random_floats(M * K, 1), vb = random_floats(K * N, 2), vw = random_floats(N * K, 3);
  std::vector<float> vbias = random_floats(N, 4), vc(M * ldc, 0.0f), vc_ref(M * ldc, 0.0f);
  const float* pa = va.data();
  const float* pb = vb.data();
  float* pc = vc.data();

  tensor_view<const float, 2> a{pa, {M, K}};            // row-major by default
  tensor_view<const float, 2> b{pb, {K, N}};
  tensor_view<float, 2>       c{pc, {M, N}, {ldc, 1}};  // explicit strides allowed
  tensor_view<const float, 2> w_nk{vw.data(), {N, K}};  // a weight stored [N, K]
  tensor_view<const float, 1> bias{vbias.data(), {N}};
  tensor_view<float, 2> c_ref{vc_ref.data(), {M, N}, {ldc, 1}};

  // attention: q [B, H, Sq, D], k/v [B, Hkv, Skv, D]; GQA with 4 query heads over 2 kv heads.
  const std::size_t B = 1, H = 4, Hkv = 2, S = 33, D = 32;
  std::vector<float> vq = random_floats(B * H * S * D, 5), vk = random_floats(B * Hkv * S * D, 6),
                     vv = random_floats(B * Hkv * S * D, 7), vo(B * H * S * D), vo_ref(B * H * S * D);
  tensor_view<const float, 4> q{vq.data(), {B, H, S, D}};
  tensor_view<const float, 4> k{vk.data(), {B, Hkv, S, D}};
  tensor_view<const float, 4> v{vv.data(), {B, Hkv, S, D}};
  tensor_view<float, 4> o{vo.data(), {B, H, S, D}};
  tensor_view<float, 4> o_ref{vo_ref.data(), {B, H, S, D}};

  // norms over the last axis of x [rows, hidden]
  const std::size_t rows = 16, hidden = 128;
  std::vector<float> vx = random_floats(rows * hidden, 8), vgamma = random_floats(hidden, 9),
                     vbeta = random_floats(hidden, 10), vy(rows * hidden), vy_ref(rows * hidden);
  tensor_view<const float, 2> x{vx.data(), {rows, hidden}};
  tensor_view<const float, 1> gamma{vgamma.data(), {hidden}};
  tensor_view<const float, 1> beta{vbeta.data(), {hidden}};
  tensor_view<float, 2> y{vy.data(), {rows, hidden}};
  tensor_view<float, 2> y_ref{vy_ref.data(), {rows, hidden}};

  std::vector<bf16> va16(M * K), vb16(K * N);
  for (std::size_t i = 0; i < va16.size(); ++i) va16[i] = bf16(va[i]);
  for (std::size_t i = 0; i < vb16.size(); ++i) vb16[i] = bf16(vb[i]);
  tensor_view<const bf16, 2> a_bf16{va16.data(), {M, K}};
  tensor_view<const bf16, 2> b_bf16{vb16.data(), {K, N}};

  int failures = 0;
  const reference oracle{};
  const auto expect_close = [&](const char* what, float error, float tolerance) {
    const bool ok = error <= tolerance;  // false for NaN too
    std::printf("%-28s max |cpu - reference| = %.3g (tolerance %.3g) %s\n", what, double(error), double(tolerance),
                ok ? "ok" : "MISMATCH");
    failures += ok ? 0 : 1;
  };

  // ---- the CPU part of DESIGN.md §2, unchanged ----
  cpu host;                                   // all cores; cpu{.threads = 1} for one
  matmul(host, a, b, c);                      // C = A·B
  matmul(oracle, a, b, c_ref);
  expect_close("matmul", max_abs_diff(vc, vc_ref, M, N, ldc), 1e-4f * float(K));

  matmul(host, a, w_nk, c, {.transpose_b = true, .epilogue = epilogue::bias_gelu(bias)});
  matmul(oracle, a, w_nk, c_ref, {.transpose_b = true, .epilogue = epilogue::bias_gelu(bias)});
  expect_close("matmul transpose_b+bias_gelu", max_abs_diff(vc, vc_ref, M, N, ldc), 1e-4f * float(K));

  attention(host, q, k, v, o, {.causal = true});         // q [B,H,Sq,D], k/v [B,Hkv,Skv,D], GQA when Hkv < H
  attention(oracle, q, k, v, o_ref, {.causal = true});
  expect_close("attention causal GQA", max_abs_diff(vo, vo_ref, B * H * S, D, D), 1e-4f);

  layernorm(host, x, gamma, beta, y, {.eps = 1e-5f});
  layernorm(oracle, x, gamma, beta, y_ref, {.eps = 1e-5f});
  expect_close("layernorm", max_abs_diff(vy, vy_ref, rows, hidden, hidden), 1e-4f);

  rmsnorm(host, x, gamma, y, {.eps = 1e-6f});
  rmsnorm(oracle, x, gamma, y_ref, {.eps = 1e-6f});
  expect_close("rmsnorm", max_abs_diff(vy, vy_ref, rows, hidden, hidden), 1e-4f);

  bf16 h{1.5f}; float f = float(h);            // explicit both ways, round-to-nearest-even
  if (f != 1.5f) {
    std::printf("bf16 round trip: expected 1.5, got %g MISMATCH\n", double(f));
    ++failures;
  }
  matmul(host, a_bf16, b_bf16, c);            // bf16 inputs, fp32 accumulate and output
  matmul(oracle, a_bf16, b_bf16, c_ref);
  expect_close("matmul bf16 inputs", max_abs_diff(vc, vc_ref, M, N, ldc), 1e-4f * float(K));

  std::printf("trellis consumer (ISA %s): %s\n", isa_name(), failures ? "FAILED" : "passed");
  return failures ? 1 : 0;
}
