// Norm benchmark: Trellis layernorm/rmsnorm (fp32, with γ and β; and the fused residual form) beside the
// copy bandwidth measured in the same binary and oneDNN's layer_normalization primitive.
//
//   norm/<impl>/<rows>x<hidden>/threads:<t>
//     GBps = bytes that must move / time: x read + y written (layernorm, rmsnorm, onednn), or x and r
//     read + y and x + r written (residual); pct_copy = % of the bw/copy row (read + write counted alike);
//     vs_onednn = oneDNN layernorm time / this time on the same shape.
// Run: ./norm_bench

#include <random>

#include "bench_support.hpp"

#if TRELLIS_BENCH_ONEDNN
#include <dnnl.hpp>
#endif

namespace {

using trellis::tensor_view;

struct norm_shape {
  std::size_t rows, hidden;
  std::string name() const { return std::to_string(rows) + "x" + std::to_string(hidden); }
};

struct norm_data {
  std::vector<float> x, r, y, s, gamma, beta;
  explicit norm_data(const norm_shape& n) : x(n.rows * n.hidden), y(x.size()), gamma(n.hidden, 1.5f), beta(n.hidden, 0.25f) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x) v = u(rng);
  }
};

enum class kind { layernorm, rmsnorm, residual_layernorm };

void report(benchmark::State& state, const norm_shape& n, int threads, double seconds, double streams, bool onednn) {
  const double gbs = streams * double(n.rows * n.hidden * sizeof(float)) / seconds / 1e9;
  state.counters["GBps"] = gbs;
  auto& r = bench::results();
  const std::string copy = "copy/" + std::to_string(threads), key = "onednn/" + n.name() + "/" + std::to_string(threads);
  if (r.count(copy)) state.counters["pct_copy"] = 100.0 * gbs / r[copy];
  if (onednn) r[key] = seconds;
  else if (r.count(key)) state.counters["vs_onednn"] = r[key] / seconds;
}

void run_trellis(benchmark::State& state, std::pair<norm_shape, kind> arg, int threads) {
  const auto [n, k] = arg;
  norm_data d(n);
  const trellis::cpu target{.threads = threads};
  tensor_view<const float, 2> x{d.x.data(), {n.rows, n.hidden}};
  tensor_view<float, 2> y{d.y.data(), {n.rows, n.hidden}};
  tensor_view<const float, 1> g{d.gamma.data(), {n.hidden}}, b{d.beta.data(), {n.hidden}};
  if (k == kind::residual_layernorm) {
    d.r = d.x;
    d.s.resize(d.x.size());
  }
  const double s = bench::time_it(state, [&] {
    if (k == kind::layernorm) trellis::layernorm(target, x, g, b, y);
    else if (k == kind::rmsnorm) trellis::rmsnorm(target, x, g, y);
    else
      trellis::layernorm(target, x, g, b, y,
                         {.residual = tensor_view<const float, 2>{d.r.data(), {n.rows, n.hidden}},
                          .residual_out = tensor_view<float, 2>{d.s.data(), {n.rows, n.hidden}}});
  });
  report(state, n, threads, s, k == kind::residual_layernorm ? 4.0 : 2.0, false);
}

#if TRELLIS_BENCH_ONEDNN
void run_onednn(benchmark::State& state, std::pair<norm_shape, kind> arg, int threads) {
  const norm_shape n = arg.first;
  norm_data d(n);
  omp_set_num_threads(threads);
  using namespace dnnl;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const memory::dims dims{memory::dim(n.rows), memory::dim(n.hidden)};
  memory::desc md(dims, memory::data_type::f32, memory::format_tag::ab);
  memory::desc ss_md({2, memory::dim(n.hidden)}, memory::data_type::f32, memory::format_tag::ab);
  layer_normalization_forward::primitive_desc pd(
      layer_normalization_forward::desc(prop_kind::forward_inference, md, 1e-5f, normalization_flags::use_scale_shift), eng);
  layer_normalization_forward prim(pd);
  std::vector<float> ss(2 * n.hidden);
  std::copy(d.gamma.begin(), d.gamma.end(), ss.begin());
  std::copy(d.beta.begin(), d.beta.end(), ss.begin() + long(n.hidden));
  memory src(md, eng, d.x.data()), dst(md, eng, d.y.data()), scale_shift(ss_md, eng, ss.data());
  const double s = bench::time_it(state, [&] {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE_SHIFT, scale_shift}});
    strm.wait();
  });
  report(state, n, threads, s, 2.0, true);
}
#endif

void register_all() {
  for (int t : {1, 2})
    benchmark::RegisterBenchmark("bw/copy", bench::copy_bandwidth)->Arg(t)->UseManualTime()->MinTime(0.5)->Unit(benchmark::kMillisecond);
  for (norm_shape n : {norm_shape{64, 4096}, {8192, 1024}, {8192, 4096}, {32768, 8192}})
    for (int t : {1, 2}) {
      // Built piecewise: gcc 12 warns (-Wrestrict, a known false positive) on "literal" + std::string.
      std::string suffix = "/";
      suffix += n.name();
      suffix += "/threads:";
      suffix += std::to_string(t);
      const auto add = [&](const std::string& name, auto f, kind k) {
        benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { f(st, std::pair{n, k}, t); })
            ->UseManualTime()
            ->MinTime(0.3)
            ->Unit(benchmark::kMicrosecond);
      };
#if TRELLIS_BENCH_ONEDNN
      add("norm/onednn_layernorm" + suffix, run_onednn, kind::layernorm);
#endif
      add("norm/trellis_layernorm" + suffix, run_trellis, kind::layernorm);
      add("norm/trellis_rmsnorm" + suffix, run_trellis, kind::rmsnorm);
      add("norm/trellis_residual_layernorm" + suffix, run_trellis, kind::residual_layernorm);
    }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  register_all();
#if !TRELLIS_BENCH_ONEDNN
  std::printf("oneDNN not found at configure time: no onednn rows, no vs_onednn column\n");
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
}
