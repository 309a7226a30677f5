// Attention benchmark: Trellis prefill and decode beside peers measured in the same binary.
//
//   prefill/<impl>/H32_Hkv<h>_S<s>_D<d>_<causal|full>/threads:<t>
//     GFLOPS = 4·Sq·Skv·D·H / time (halved for causal); pct_gemm = % of Trellis's own fp32 GEMM
//     (gemm/f32/2048 row, same thread count); vs_chain = time of the unfused oneDNN chain / Trellis time.
//     impl: trellis (default provider), onednn_chain (dnnl_sgemm S = Q·Kᵀ over the full S×S, causal
//     masking, a vectorised softmax, dnnl_sgemm O = P·V, head by head).
//   decode/trellis/KV<n>/threads:<t>: Sq = 1, H = 32, Hkv = 8, D = 128; GBps = K and V bytes / time,
//     pct_read = % of the read bandwidth measured by the bw/read row.
// Run: ./attention_bench (≈ 5 min on 2 cores), or filter, e.g. --benchmark_filter='S2048'.

#include <cmath>
#include <limits>
#include <random>

#include "bench_support.hpp"

#if TRELLIS_BENCH_ONEDNN
#include <dnnl.hpp>
#endif

namespace {

using trellis::tensor_view;
using bench::S;

struct prefill_shape {
  std::size_t kv_heads, seq, dim;
  bool causal;
  std::string name() const {
    return "H32_Hkv" + std::to_string(kv_heads) + "_S" + std::to_string(seq) + "_D" + std::to_string(dim) +
           (causal ? "_causal" : "_full");
  }
  double flops() const { return 4.0 * double(seq) * double(seq) * double(dim) * 32.0 * (causal ? 0.5 : 1.0); }
};

trellis::aligned_vector<float> random_buffer(std::size_t n, unsigned seed) {
  trellis::aligned_vector<float> v(n);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& x : v) x = u(rng);
  return v;
}

void gemm_reference(benchmark::State& state) {
  const int threads = int(state.range(0));
  const std::size_t n = 2048;
  static auto a = random_buffer(n * n, 1), b = random_buffer(n * n, 2);
  static trellis::aligned_vector<float> c(n * n);
  const trellis::cpu target{.threads = threads};
  const double s = bench::time_it(state, [&] {
    trellis::matmul(target, tensor_view<const float, 2>{a.data(), {n, n}}, tensor_view<const float, 2>{b.data(), {n, n}},
                    tensor_view<float, 2>{c.data(), {n, n}});
  });
  const double gflops = 2.0 * double(n * n * n) / s / 1e9;
  bench::results()["gemm/" + std::to_string(threads)] = gflops;
  state.counters["GFLOPS"] = gflops;
}

struct prefill_data {
  trellis::aligned_vector<float> q, k, v, o;
  explicit prefill_data(const prefill_shape& p)
      : q(random_buffer(32 * p.seq * p.dim, 3)), k(random_buffer(p.kv_heads * p.seq * p.dim, 4)),
        v(random_buffer(p.kv_heads * p.seq * p.dim, 5)), o(32 * p.seq * p.dim) {}
};

void report_prefill(benchmark::State& state, const prefill_shape& p, int threads, double seconds, bool chain) {
  const double gflops = p.flops() / seconds / 1e9;
  state.counters["GFLOPS"] = gflops;
  const std::string key = p.name() + "/" + std::to_string(threads);
  auto& r = bench::results();
  if (r.count("gemm/" + std::to_string(threads))) state.counters["pct_gemm"] = 100.0 * gflops / r["gemm/" + std::to_string(threads)];
  if (chain) r["chain/" + key] = seconds;
  else if (r.count("chain/" + key)) state.counters["vs_chain"] = r["chain/" + key] / seconds;
}

void prefill_trellis(benchmark::State& state, prefill_shape p, int threads) {
  prefill_data d(p);
  const trellis::cpu target{.threads = threads};
  tensor_view<const float, 4> q{d.q.data(), {1, 32, p.seq, p.dim}}, k{d.k.data(), {1, p.kv_heads, p.seq, p.dim}},
      v{d.v.data(), {1, p.kv_heads, p.seq, p.dim}};
  tensor_view<float, 4> o{d.o.data(), {1, 32, p.seq, p.dim}};
  const double s = bench::time_it(state, [&] { trellis::attention(target, q, k, v, o, {.causal = p.causal}); });
  report_prefill(state, p, threads, s, false);
}

#if TRELLIS_BENCH_ONEDNN
/// Row-wise softmax of scale·x in place (max, exp, sum, normalise), vectorised; −inf entries give 0.
void softmax_row(float* x, std::size_t n, float scale) {
  S::vec vmax = S::set(-std::numeric_limits<float>::infinity());
  for (std::size_t j = 0; j < n; j += S::lanes) vmax = S::max(vmax, S::load(x + j));
  const S::vec shift = S::set(S::reduce_max(vmax) * scale), vs = S::set(scale);
  S::vec sum = S::zero();
  for (std::size_t j = 0; j < n; j += S::lanes) {
    const S::vec e = S::exp(S::sub(S::mul(S::load(x + j), vs), shift));
    S::store(x + j, e);
    sum = S::add(sum, e);
  }
  const S::vec inv = S::set(1.0f / S::reduce_add(sum));
  for (std::size_t j = 0; j < n; j += S::lanes) S::store(x + j, S::mul(S::load(x + j), inv));
}

void prefill_onednn_chain(benchmark::State& state, prefill_shape p, int threads) {
  prefill_data d(p);
  omp_set_num_threads(threads);
  const std::size_t n = p.seq, dim = p.dim, group = 32 / p.kv_heads;
  trellis::aligned_vector<float> scores(n * n);
  const float scale = 1.0f / std::sqrt(float(dim));
  const auto N = dnnl_dim_t(n), D = dnnl_dim_t(dim);
  const double s = bench::time_it(state, [&] {
    for (std::size_t h = 0; h < 32; ++h) {
      const float* qh = d.q.data() + h * n * dim;
      const float* kh = d.k.data() + h / group * n * dim;
      const float* vh = d.v.data() + h / group * n * dim;
      dnnl_sgemm('N', 'T', N, N, D, 1.0f, qh, D, kh, D, 0.0f, scores.data(), N);  // full S×S
#pragma omp parallel for num_threads(threads) schedule(static)
      for (std::ptrdiff_t i = 0; i < std::ptrdiff_t(n); ++i) {
        float* row = scores.data() + std::size_t(i) * n;
        if (p.causal) std::fill(row + i + 1, row + n, -std::numeric_limits<float>::infinity());
        softmax_row(row, n, scale);
      }
      dnnl_sgemm('N', 'N', N, D, N, 1.0f, scores.data(), N, vh, D, 0.0f, d.o.data() + h * n * dim, D);
    }
  });
  report_prefill(state, p, threads, s, true);
}
#endif

void decode_trellis(benchmark::State& state, std::size_t kv, int threads) {
  const std::size_t h = 32, hkv = 8, dim = 128;
  static std::map<std::size_t, trellis::aligned_vector<float>> caches;
  auto& cache = caches[kv];
  if (cache.empty()) cache = random_buffer(2 * hkv * kv * dim, 6);
  auto q = random_buffer(h * dim, 7);
  trellis::aligned_vector<float> o(h * dim);
  const trellis::cpu target{.threads = threads};
  tensor_view<const float, 4> k{cache.data(), {1, hkv, kv, dim}}, v{cache.data() + hkv * kv * dim, {1, hkv, kv, dim}};
  const double s = bench::time_it(state, [&] {
    trellis::attention(target, tensor_view<const float, 4>{q.data(), {1, h, 1, dim}}, k, v,
                       tensor_view<float, 4>{o.data(), {1, h, 1, dim}});
  });
  const double gbs = double(cache.size() * sizeof(float)) / s / 1e9;
  state.counters["GBps"] = gbs;
  const std::string key = "read/" + std::to_string(threads);
  if (bench::results().count(key)) state.counters["pct_read"] = 100.0 * gbs / bench::results()[key];
}

template <class F, class Arg>
void add(const std::string& name, F f, Arg arg, int threads, double min_time = 0.3) {
  benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { f(st, arg, threads); })
      ->UseManualTime()
      ->MinTime(min_time)
      ->Unit(benchmark::kMillisecond);
}

void register_all() {
  for (int t : {1, 2}) {
    benchmark::RegisterBenchmark("gemm/f32/2048", gemm_reference)->Arg(t)->UseManualTime()->MinTime(0.5)->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("bw/read", bench::read_bandwidth)->Arg(t)->UseManualTime()->MinTime(0.5)->Unit(benchmark::kMillisecond);
  }
  std::vector<prefill_shape> shapes;
  for (std::size_t hkv : {32, 8})
    for (std::size_t d : {64, 128})
      for (bool c : {false, true}) shapes.push_back({hkv, 512, d, c});
  for (std::size_t hkv : {32, 8})
    for (bool c : {false, true}) shapes.push_back({hkv, 2048, 128, c});
  for (bool c : {false, true}) shapes.push_back({8, 2048, 64, c});
  for (bool c : {false, true}) shapes.push_back({8, 4096, 128, c});
  for (const auto& p : shapes)
    for (int t : {1, 2}) {
      // Built piecewise: gcc 12 warns (-Wrestrict, a known false positive) on "literal" + std::string.
      std::string suffix = "/";
      suffix += p.name();
      suffix += "/threads:";
      suffix += std::to_string(t);
#if TRELLIS_BENCH_ONEDNN
      add("prefill/onednn_chain" + suffix, prefill_onednn_chain, p, t, 0.1);
#endif
      add("prefill/trellis" + suffix, prefill_trellis, p, t, 0.1);
    }
  for (std::size_t kv : {1024, 8192, 32768})
    for (int t : {1, 2}) add("decode/trellis/KV" + std::to_string(kv) + "/threads:" + std::to_string(t), decode_trellis, kv, t);
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
#if !TRELLIS_BENCH_ONEDNN
  std::printf("oneDNN not found at configure time: no onednn_chain rows, no vs_chain column\n");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
