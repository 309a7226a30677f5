// Norm benchmark: Trellis layernorm/rmsnorm (fp32, with γ and β; and the fused residual form) beside the
// copy bandwidth measured in the same binary and oneDNN's layer_normalization primitive.
//
//   norm/<impl>/<rows>x<hidden>/threads:<t>
//     GBps = bytes that must move / time: x read + y written (layernorm, rmsnorm, onednn), or x and r
//     read + y and x + r written (residual); pct_copy = % of the bw/copy row (read + write counted alike);
//     vs_onednn = oneDNN layernorm time / this time on the same shape (and the same alignment).
//   norm/<impl>_x+16B/64x4096/threads:<t>: x and y 16 bytes past a cache line instead of aligned (to select
//     them: --benchmark_filter='x\+16B', the + being a regex operator).
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

/// The tensors of one shape, 64-byte aligned (trellis::aligned_vector); with `offset` floats, x, r, y and s all start
/// that far past a line instead (the misaligned rows).
struct norm_data {
  std::size_t offset;
  trellis::aligned_vector<float> x_, r_, y_, s_, gamma, beta;
  norm_data(const norm_shape& n, std::size_t floats_past_line)
      : offset(floats_past_line), x_(offset + n.rows * n.hidden), y_(x_.size()), gamma(n.hidden, 1.5f), beta(n.hidden, 0.25f) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    for (float& v : x_) v = u(rng);
  }
  float* x() { return x_.data() + offset; }
  float* y() { return y_.data() + offset; }
  float* r() { return r_.data() + offset; }
  float* s() { return s_.data() + offset; }
};

enum class kind { layernorm, rmsnorm, residual_layernorm };

/// One benchmark's case: the shape, what runs, and the tensors' offset from a line in floats (0: aligned).
struct norm_case {
  norm_shape shape;
  kind k;
  std::size_t offset;
};

void report(benchmark::State& state, const norm_case& c, int threads, double seconds, double streams, bool onednn) {
  const norm_shape& n = c.shape;
  const double gbs = streams * double(n.rows * n.hidden * sizeof(float)) / seconds / 1e9;
  state.counters["GBps"] = gbs;
  auto& r = bench::results();
  const std::string copy = "copy/" + std::to_string(threads),
                    key = "onednn/" + n.name() + "/" + std::to_string(c.offset) + "/" + std::to_string(threads);
  if (r.count(copy)) state.counters["pct_copy"] = 100.0 * gbs / r[copy];
  if (onednn) r[key] = seconds;
  else if (r.count(key)) state.counters["vs_onednn"] = r[key] / seconds;
}

void run_trellis(benchmark::State& state, norm_case c, int threads) {
  const norm_shape n = c.shape;
  const kind k = c.k;
  norm_data d(n, c.offset);
  const trellis::cpu target{.threads = threads};
  tensor_view<const float, 2> x{d.x(), {n.rows, n.hidden}};
  tensor_view<float, 2> y{d.y(), {n.rows, n.hidden}};
  tensor_view<const float, 1> g{d.gamma.data(), {n.hidden}}, b{d.beta.data(), {n.hidden}};
  if (k == kind::residual_layernorm) {
    d.r_ = d.x_;
    d.s_.resize(d.x_.size());
  }
  const double s = bench::time_it(state, [&] {
    if (k == kind::layernorm) trellis::layernorm(target, x, g, b, y);
    else if (k == kind::rmsnorm) trellis::rmsnorm(target, x, g, y);
    else
      trellis::layernorm(target, x, g, b, y,
                         {.residual = tensor_view<const float, 2>{d.r(), {n.rows, n.hidden}},
                          .residual_out = tensor_view<float, 2>{d.s(), {n.rows, n.hidden}}});
  });
  report(state, c, threads, s, k == kind::residual_layernorm ? 4.0 : 2.0, false);
}

#if TRELLIS_BENCH_ONEDNN
void run_onednn(benchmark::State& state, norm_case c, int threads) {
  const norm_shape n = c.shape;
  norm_data d(n, c.offset);
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
  trellis::aligned_vector<float> ss(2 * n.hidden);
  std::copy(d.gamma.begin(), d.gamma.end(), ss.begin());
  std::copy(d.beta.begin(), d.beta.end(), ss.begin() + long(n.hidden));
  memory src(md, eng, d.x()), dst(md, eng, d.y()), scale_shift(ss_md, eng, ss.data());
  const double s = bench::time_it(state, [&] {
    prim.execute(strm, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCALE_SHIFT, scale_shift}});
    strm.wait();
  });
  report(state, c, threads, s, 2.0, true);
}
#endif

void register_all() {
  for (int t : {1, 2})
    benchmark::RegisterBenchmark("bw/copy", bench::copy_bandwidth)->Arg(t)->UseManualTime()->MinTime(0.5)->Unit(benchmark::kMillisecond);
  const auto suffix = [](const norm_shape& n, int t) {
    // Built piecewise: gcc 12 warns (-Wrestrict, a known false positive) on "literal" + std::string.
    std::string s = "/";
    s += n.name();
    s += "/threads:";
    s += std::to_string(t);
    return s;
  };
  const auto add = [](const std::string& name, auto f, norm_case c, int t) {
    benchmark::RegisterBenchmark(name.c_str(), [=](benchmark::State& st) { f(st, c, t); })
        ->UseManualTime()
        ->MinTime(0.3)
        ->Unit(benchmark::kMicrosecond);
  };
  for (norm_shape n : {norm_shape{64, 4096}, {8192, 1024}, {8192, 4096}, {32768, 8192}})
    for (int t : {1, 2}) {
#if TRELLIS_BENCH_ONEDNN
      add("norm/onednn_layernorm" + suffix(n, t), run_onednn, {n, kind::layernorm, 0}, t);
#endif
      add("norm/trellis_layernorm" + suffix(n, t), run_trellis, {n, kind::layernorm, 0}, t);
      add("norm/trellis_rmsnorm" + suffix(n, t), run_trellis, {n, kind::rmsnorm, 0}, t);
      add("norm/trellis_residual_layernorm" + suffix(n, t), run_trellis, {n, kind::residual_layernorm, 0}, t);
    }
  // What a misaligned caller pays: x and y 16 bytes past a line (as std::vector puts large buffers), on the
  // cache-resident shape, where it shows most.
  for (int t : {1, 2}) {
    const norm_shape n{64, 4096};
#if TRELLIS_BENCH_ONEDNN
    add("norm/onednn_layernorm_x+16B" + suffix(n, t), run_onednn, {n, kind::layernorm, 4}, t);
#endif
    add("norm/trellis_layernorm_x+16B" + suffix(n, t), run_trellis, {n, kind::layernorm, 4}, t);
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
