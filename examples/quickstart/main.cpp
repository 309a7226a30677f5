// quickstart: run every Trellis op on two targets and compare them.
//
// The target is the first argument of every op, and its *type* picks the implementation at compile time:
// trellis::reference is the slow, obviously-correct oracle; trellis::cpu is the SIMD + OpenMP fast path.
// The table shows, per op, how far the CPU result is from the oracle and how long each took.
#include <trellis/trellis.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

using namespace trellis;

// A buffer of n random values in [-1, 1) (float, or bf16 rounded from float).
template <class T = float>
std::vector<T> random_buffer(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<T> v(n);
  for (T& e : v) e = T(dist(gen));
  return v;
}

// Milliseconds taken by f().
template <class F>
double time_ms(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// Runs `op(target, output)` on the reference and the CPU target, each into its own output buffer,
// and prints one row of the table.
template <class Op>
void compare(const std::string& name, const std::string& shape, std::size_t out_size, Op op) {
  std::vector<float> want(out_size), got(out_size);
  const double ref_ms = time_ms([&] { op(reference{}, want.data()); });
  double cpu_ms = 1e30;                                // best of 5: the first run also starts the threads
  for (int run = 0; run < 5; ++run) cpu_ms = std::min(cpu_ms, time_ms([&] { op(cpu{}, got.data()); }));
  float max_err = 0.0f;
  for (std::size_t i = 0; i < out_size; ++i) max_err = std::max(max_err, std::fabs(got[i] - want[i]));
  std::printf("%-24s %-26s %12.2e %10.2f %10.3f\n", name.c_str(), shape.c_str(), double(max_err), ref_ms, cpu_ms);
}

int main() {
  std::printf("trellis quickstart (CPU kernels compiled for %s)\n\n", isa_name());
  std::printf("%-24s %-26s %12s %10s %10s\n", "op", "shape", "max |err|", "ref ms", "cpu ms");  // cpu: best of 5 runs

  // matmul: C[M,N] = A[M,K]·B[K,N]. Views are non-owning: pointer + shape (+ strides, row-major by default).
  const std::size_t M = 512, K = 512, N = 512;
  const auto a = random_buffer(M * K, 1), b = random_buffer(K * N, 2), w = random_buffer(N * K, 3),
             bias = random_buffer(N, 4);
  const std::string mkn = std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N);
  compare("matmul f32", mkn, M * N, [&](auto target, float* c) {
    matmul(target, tensor_view<const float, 2>{a.data(), {M, K}}, tensor_view<const float, 2>{b.data(), {K, N}},
           tensor_view<float, 2>{c, {M, N}});
  });

  // A linear layer: weights stored [N, K] (transpose_b), bias and GELU fused into the store.
  compare("matmul f32 +bias+gelu", mkn + " (B^T)", M * N, [&](auto target, float* c) {
    matmul(target, tensor_view<const float, 2>{a.data(), {M, K}}, tensor_view<const float, 2>{w.data(), {N, K}},
           tensor_view<float, 2>{c, {M, N}},
           {.transpose_b = true, .epilogue = epilogue::bias_gelu(tensor_view<const float, 1>{bias.data(), {N}})});
  });

  // bf16 inputs, fp32 accumulation and output.
  const auto a16 = random_buffer<bf16>(M * K, 5), b16 = random_buffer<bf16>(K * N, 6);
  compare("matmul bf16 -> f32", mkn, M * N, [&](auto target, float* c) {
    matmul(target, tensor_view<const bf16, 2>{a16.data(), {M, K}}, tensor_view<const bf16, 2>{b16.data(), {K, N}},
           tensor_view<float, 2>{c, {M, N}});
  });

  // Causal attention with grouped-query heads: 8 query heads share 2 key/value heads.
  const std::size_t B = 1, H = 8, Hkv = 2, S = 256, D = 64;
  const auto q = random_buffer(B * H * S * D, 7), k = random_buffer(B * Hkv * S * D, 8),
             v = random_buffer(B * Hkv * S * D, 9);
  compare("attention causal GQA", "B1 H8 Hkv2 S256 D64", B * H * S * D, [&](auto target, float* o) {
    attention(target, tensor_view<const float, 4>{q.data(), {B, H, S, D}},
              tensor_view<const float, 4>{k.data(), {B, Hkv, S, D}},
              tensor_view<const float, 4>{v.data(), {B, Hkv, S, D}}, tensor_view<float, 4>{o, {B, H, S, D}},
              {.causal = true});
  });

  // Norms over the last axis; gamma and beta are optional (pass {} to leave one out).
  const std::size_t rows = 256, hidden = 1024;
  const auto x = random_buffer(rows * hidden, 10), gamma = random_buffer(hidden, 11),
             beta = random_buffer(hidden, 12);
  const tensor_view<const float, 2> xv{x.data(), {rows, hidden}};
  const tensor_view<const float, 1> gv{gamma.data(), {hidden}}, bv{beta.data(), {hidden}};
  compare("layernorm", "256x1024", rows * hidden, [&](auto target, float* y) {
    layernorm(target, xv, gv, bv, tensor_view<float, 2>{y, {rows, hidden}}, {.eps = 1e-5f});
  });
  compare("rmsnorm", "256x1024", rows * hidden, [&](auto target, float* y) {
    rmsnorm(target, xv, gv, tensor_view<float, 2>{y, {rows, hidden}}, {.eps = 1e-6f});
  });

  // Bad input never reaches a kernel: the op throws trellis::error naming the argument.
  try {
    std::vector<float> c(M * N);
    matmul(cpu{}, tensor_view<const float, 2>{a.data(), {M, K}}, tensor_view<const float, 2>{b.data(), {K + 1, N}},
           tensor_view<float, 2>{c.data(), {M, N}});
  } catch (const trellis::error& e) {
    std::printf("\nshape mismatch caught: %s\n", e.what());
  }
}
