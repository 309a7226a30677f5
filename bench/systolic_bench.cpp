// The NeuronCore model's own speed: simulated instructions per second, timing-only and functional, on
// the tutorial's tiled matmul (kernels/matmul.hpp, variant `tiled`). Target: ≥ 5 million instructions/s timing-only on
// one core of this machine (the model is single-threaded).
//   ./systolic_bench

#include <benchmark/benchmark.h>

#include <time.h>

#include <chrono>
#include <trellis/systolic/core.hpp>
#include <trellis/systolic/isa.hpp>
#include <trellis/systolic/kernels/matmul.hpp>
#include <vector>

namespace {

using namespace trellis::systolic;
using trellis::bf16;

/// CPU time of the calling thread, in seconds: on a shared machine it does not count the time other
/// processes held the core (wall time does).
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

/// Runs the kernel on a fresh core per iteration; reports instructions/s of the model (wall clock:
/// Minstr_per_s; thread CPU time: Minstr_per_cpu_s). Only the core's construction and the kernel are
/// timed, not report() or the core's destruction.
void run(benchmark::State& state, bool functional, std::size_t m, std::size_t k, std::size_t n) {
  std::vector<bf16> lhsT, rhs;
  std::vector<float> out;
  if (functional) {
    lhsT.assign(k * m, bf16(0.5f));
    rhs.assign(k * n, bf16(0.25f));
    out.assign(m * n, 0.0f);
  }
  const auto lhsT_hbm = functional ? hbm<const bf16>{{lhsT.data(), {k, m}}} : hbm<const bf16>::shape_only({k, m});
  const auto rhs_hbm = functional ? hbm<const bf16>{{rhs.data(), {k, n}}} : hbm<const bf16>::shape_only({k, n});
  const auto out_hbm = functional ? hbm<float>{{out.data(), {m, n}}} : hbm<float>::shape_only({m, n});
  double instructions = 0.0, seconds = 0.0, cpu_seconds = 0.0, simulated_ns = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = thread_cpu_seconds();
    core<trn2> nc{{.functional = functional}};
    kernels::matmul(nc, {.a = lhsT_hbm, .b = rhs_hbm, .c = out_hbm}, {.variant = kernels::matmul_variant::tiled, .bufs = 2});
    cpu_seconds += thread_cpu_seconds() - c0;
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    instructions += double(nc.records().size());
    simulated_ns = nc.report().total_ns;
  }
  state.counters["instructions"] = instructions / double(state.iterations());
  state.counters["Minstr_per_s"] = instructions / seconds / 1e6;
  state.counters["Minstr_per_cpu_s"] = instructions / cpu_seconds / 1e6;
  state.counters["simulated_us"] = simulated_ns / 1e3;
}

}  // namespace

BENCHMARK_CAPTURE(run, timing_only_tutorial_4096x8192x8192, false, 4096, 8192, 8192)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, timing_only_1024x2048x2048, false, 1024, 2048, 2048)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(run, functional_512x1024x1024, true, 512, 1024, 1024)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
