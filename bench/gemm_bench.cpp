// GEMM benchmark: Trellis (both SIMD providers) beside oneDNN, OpenBLAS, BLIS and Eigen, in one run.
//
// Every row reports GFLOP/s, % of the FMA peak measured by this same binary (the peak/* rows run first),
// and the ratio to oneDNN on the same shape, dtype and thread count (oneDNN rows run first per shape).
//   ./gemm_bench                                   everything (≈ 15 min on 2 cores)
//   ./gemm_bench --benchmark_filter='square/.*/1024'  one shape
// Shapes: square n ∈ {256 … 4096}; inference M ∈ {1, 4, 16, 64, 512} × (N, K) with B as [N, K] weights.

#include <benchmark/benchmark.h>
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <trellis/trellis.hpp>
#include <vector>

#if TRELLIS_BENCH_ONEDNN
#include <dnnl.hpp>
#endif
#if TRELLIS_BENCH_OPENBLAS
#include <cblas.h>
#endif
#if TRELLIS_BENCH_BLIS
#include <blis.h>
#endif
#if TRELLIS_BENCH_EIGEN
#include <Eigen/Core>
#endif

namespace {

using trellis::bf16;

struct gemm_shape {
  std::string family;  // "square" or "infer"
  std::size_t m, n, k;
  bool transpose_b;  // B given as [N, K]
  double flops() const { return 2.0 * double(m) * double(n) * double(k); }
  std::string name() const {
    return family == "square" ? std::to_string(m)
                              : std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k);
  }
};

std::vector<gemm_shape> shapes() {
  std::vector<gemm_shape> out;
  for (std::size_t n : {256, 512, 1000, 1024, 1536, 2048, 3000, 4096}) out.push_back({"square", n, n, n, false});
  for (std::size_t m : {1, 4, 16, 64, 512})
    for (auto [n, k] : {std::pair<std::size_t, std::size_t>{4096, 4096}, {11008, 4096}, {4096, 11008}})
      out.push_back({"infer", m, n, k, true});
  return out;
}

/// Operands for one shape, created once and shared by every library.
struct operands {
  std::vector<float> a, b, c;
  std::vector<bf16> a16, b16;
};

operands& operands_for(const gemm_shape& s) {
  static std::map<std::string, std::unique_ptr<operands>> cache;
  auto& slot = cache[s.family + s.name()];
  if (!slot) {
    slot = std::make_unique<operands>();
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    slot->a.resize(s.m * s.k);
    slot->b.resize(s.k * s.n);
    slot->c.resize(s.m * s.n);
    for (float& x : slot->a) x = u(rng);
    for (float& x : slot->b) x = u(rng);
    for (float x : slot->a) slot->a16.push_back(bf16(x));
    for (float x : slot->b) slot->b16.push_back(bf16(x));
  }
  return *slot;
}

std::map<std::string, double> g_peak;    // "f32/1" -> GFLOP/s
std::map<std::string, double> g_onednn;  // "f32/1/square/1024" -> GFLOP/s

/// Times `run` per iteration (manual time), then publishes GFLOP/s, % of peak and the ratio to oneDNN.
void measure(benchmark::State& state, const std::string& dtype, int threads, const gemm_shape& s,
             const std::function<void()>& run, bool is_onednn = false) {
  run();  // warm-up: first-touch, packing scratch, thread pool start
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const auto t1 = std::chrono::steady_clock::now();
    const double dt = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(dt);
    seconds += dt;
  }
  const double gflops = s.flops() * double(state.iterations()) / seconds / 1e9;
  const std::string key = dtype + "/" + std::to_string(threads);
  state.counters["GFLOPS"] = gflops;
  if (g_peak.count(key)) state.counters["pct_peak"] = 100.0 * gflops / g_peak[key];
  const std::string shape_key = key + "/" + s.family + "/" + s.name();
  if (is_onednn) g_onednn[shape_key] = gflops;
  if (g_onednn.count(shape_key)) state.counters["vs_onednn"] = gflops / g_onednn[shape_key];
}

// ---- the machine's FMA peak, measured: 24 independent accumulators per thread -----------------------

#if defined(__AVX512BF16__)
template <bool Bf16>
void peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  constexpr long iterations = 20'000'000;
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    {
      __m512 acc[24];
      for (auto& a : acc) a = _mm512_set1_ps(0.0f);
      const __m512 x = _mm512_set1_ps(1e-9f);
      const __m512bh xb = (__m512bh)_mm512_castps_si512(x);
      for (long i = 0; i < iterations; ++i) {
#pragma GCC unroll 24
        for (auto& a : acc) {
          if constexpr (Bf16) a = _mm512_dpbf16_ps(a, xb, xb);
          else a = _mm512_fmadd_ps(x, x, a);
        }
      }
      alignas(64) float lanes[16];
      float sink = 0;
      for (auto& a : acc) {
        _mm512_store_ps(lanes, a);
        sink += lanes[0];
      }
      benchmark::DoNotOptimize(sink);
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    seconds += dt;
  }
  const double flop_per_op = Bf16 ? 64.0 : 32.0;  // 16 lanes × (2 products ×) 2 FLOP
  const double gflops = threads * double(iterations) * 24 * flop_per_op * double(state.iterations()) / seconds / 1e9;
  // The best of the repetitions: a shared machine only ever makes the loop slower than the hardware.
  double& best = g_peak[std::string(Bf16 ? "bf16/" : "f32/") + std::to_string(threads)];
  best = std::max(best, gflops);
  state.counters["GFLOPS"] = gflops;
}
#endif

// ---- the libraries --------------------------------------------------------------------------------

template <class Provider, bool Bf16>
void run_trellis(benchmark::State& state, gemm_shape s, int threads) {
  operands& op = operands_for(s);
  using T = std::conditional_t<Bf16, bf16, float>;
  const T* a = Bf16 ? reinterpret_cast<const T*>(op.a16.data()) : reinterpret_cast<const T*>(op.a.data());
  const T* b = Bf16 ? reinterpret_cast<const T*>(op.b16.data()) : reinterpret_cast<const T*>(op.b.data());
  trellis::tensor_view<const T, 2> av{a, {s.m, s.k}};
  trellis::tensor_view<const T, 2> bv = s.transpose_b ? trellis::tensor_view<const T, 2>{b, {s.n, s.k}}
                                                      : trellis::tensor_view<const T, 2>{b, {s.k, s.n}};
  trellis::tensor_view<float, 2> cv{op.c.data(), {s.m, s.n}};
  const trellis::basic_cpu<Provider> target{.threads = threads};
  measure(state, Bf16 ? "bf16" : "f32", threads, s,
          [&] { trellis::matmul(target, av, bv, cv, {.transpose_b = s.transpose_b}); });
}

#if TRELLIS_BENCH_ONEDNN
void run_onednn_sgemm(benchmark::State& state, gemm_shape s, int threads) {
  operands& op = operands_for(s);
  omp_set_num_threads(threads);
  const auto m = static_cast<dnnl_dim_t>(s.m), n = static_cast<dnnl_dim_t>(s.n), k = static_cast<dnnl_dim_t>(s.k);
  measure(
      state, "f32", threads, s,
      [&] {
        dnnl_sgemm('N', s.transpose_b ? 'T' : 'N', m, n, k, 1.0f, op.a.data(), k, op.b.data(), s.transpose_b ? k : n,
                   0.0f, op.c.data(), n);
      },
      true);
}

void run_onednn_bf16(benchmark::State& state, gemm_shape s, int threads) {
  operands& op = operands_for(s);
  omp_set_num_threads(threads);
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const memory::dims a_dims{memory::dim(s.m), memory::dim(s.k)}, b_dims{memory::dim(s.k), memory::dim(s.n)},
      c_dims{memory::dim(s.m), memory::dim(s.n)};
  memory::desc a_md(a_dims, memory::data_type::bf16, memory::format_tag::ab);
  memory::desc b_md(b_dims, memory::data_type::bf16, s.transpose_b ? memory::format_tag::ba : memory::format_tag::ab);
  memory::desc c_md(c_dims, memory::data_type::f32, memory::format_tag::ab);
  matmul::primitive_desc pd(matmul::desc(a_md, b_md, c_md), eng);
  matmul prim(pd);
  memory a_mem(a_md, eng, op.a16.data()), b_mem(b_md, eng, op.b16.data()), c_mem(c_md, eng, op.c.data());
  measure(
      state, "bf16", threads, s,
      [&] {
        prim.execute(strm, {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
        strm.wait();
      },
      true);
}
#endif

#if TRELLIS_BENCH_OPENBLAS
void run_openblas(benchmark::State& state, gemm_shape s, int threads) {
  operands& op = operands_for(s);
  openblas_set_num_threads(threads);
  const int m = int(s.m), n = int(s.n), k = int(s.k);
  measure(state, "f32", threads, s, [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, s.transpose_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, op.a.data(), k,
                op.b.data(), s.transpose_b ? k : n, 0.0f, op.c.data(), n);
  });
}
#endif

#if TRELLIS_BENCH_BLIS
void run_blis(benchmark::State& state, gemm_shape s, int threads) {
  operands& op = operands_for(s);
  bli_thread_set_num_threads(threads);
  float one = 1.0f, zero = 0.0f;
  const auto m = dim_t(s.m), n = dim_t(s.n), k = dim_t(s.k);
  measure(state, "f32", threads, s, [&] {
    bli_sgemm(BLIS_NO_TRANSPOSE, s.transpose_b ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, m, n, k, &one, op.a.data(), k, 1,
              op.b.data(), s.transpose_b ? k : n, 1, &zero, op.c.data(), n, 1);
  });
}
#endif

#if TRELLIS_BENCH_EIGEN
void run_eigen(benchmark::State& state, gemm_shape s, int threads) {
  operands& op = operands_for(s);
  Eigen::setNbThreads(threads);
  using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  Eigen::Map<const matrix> a(op.a.data(), Eigen::Index(s.m), Eigen::Index(s.k));
  Eigen::Map<matrix> c(op.c.data(), Eigen::Index(s.m), Eigen::Index(s.n));
  if (s.transpose_b) {
    Eigen::Map<const matrix> b(op.b.data(), Eigen::Index(s.n), Eigen::Index(s.k));
    measure(state, "f32", threads, s, [&] { c.noalias() = a * b.transpose(); });
  } else {
    Eigen::Map<const matrix> b(op.b.data(), Eigen::Index(s.k), Eigen::Index(s.n));
    measure(state, "f32", threads, s, [&] { c.noalias() = a * b; });
  }
}
#endif

template <class F>
void add(const std::string& name, F f, const gemm_shape& s, int threads) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { f(st, s, threads); })
      ->UseManualTime()
      ->MinTime(0.2)
      ->Unit(benchmark::kMillisecond);
}

void register_all() {
#if defined(__AVX512BF16__)
  for (int threads : {1, 2}) {
    for (bool bf : {false, true})
      benchmark::RegisterBenchmark(bf ? "peak/bf16" : "peak/f32", bf ? peak<true> : peak<false>)
          ->Arg(threads)
          ->UseManualTime()
          ->Iterations(1)
          ->Repetitions(5)
          ->ReportAggregatesOnly(false)
          ->Unit(benchmark::kMillisecond);
  }
#else
  std::printf("peak rows need AVX-512 BF16 (this build's -march has none): no pct_peak column\n");
#endif
  for (const gemm_shape& s : shapes())
    for (int threads : {1, 2}) {
      const std::string suffix = "/" + s.family + "/" + s.name() + "/threads:" + std::to_string(threads);
#if TRELLIS_BENCH_ONEDNN
      add("f32/onednn" + suffix, run_onednn_sgemm, s, threads);
      add("bf16/onednn" + suffix, run_onednn_bf16, s, threads);
#endif
      add("f32/trellis_hwy" + suffix, run_trellis<trellis::hwy_provider, false>, s, threads);
      add("f32/trellis_xsimd" + suffix, run_trellis<trellis::xsimd_provider, false>, s, threads);
      add("bf16/trellis_hwy" + suffix, run_trellis<trellis::hwy_provider, true>, s, threads);
      add("bf16/trellis_xsimd" + suffix, run_trellis<trellis::xsimd_provider, true>, s, threads);
#if TRELLIS_BENCH_OPENBLAS
      add("f32/openblas" + suffix, run_openblas, s, threads);
#endif
#if TRELLIS_BENCH_BLIS
      add("f32/blis" + suffix, run_blis, s, threads);
#endif
#if TRELLIS_BENCH_EIGEN
      add("f32/eigen" + suffix, run_eigen, s, threads);
#endif
    }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
#if !TRELLIS_BENCH_ONEDNN
  std::printf("oneDNN not found at configure time: no vs_onednn column\n");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
