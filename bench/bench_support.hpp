#pragma once
// Shared by attention_bench and norm_bench: manual timing and the machine's memory bandwidth measured
// in the same binary (read: a vector sum over 512 MiB; copy: memcpy-free vector copy of 256 MiB each way),
// so every GB/s can be quoted as a ratio from one run. Every bench tensor and buffer is a
// trellis::aligned_vector, 64-byte aligned as inference engines' tensors are (norm_bench keeps one
// misaligned pair of rows to show that cost).

#include <benchmark/benchmark.h>
#include <omp.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <trellis/core/aligned_allocator.hpp>
#include <trellis/cpu.hpp>
#include <vector>

namespace bench {

/// Seconds per call of `run`, timed per iteration (one warm-up call first).
inline double time_it(benchmark::State& state, const std::function<void()>& run) {
  run();
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    run();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(dt);
    seconds += dt;
  }
  return seconds / double(state.iterations());
}

inline std::map<std::string, double>& results() {  // "read/1" -> GB/s etc.
  static std::map<std::string, double> r;
  return r;
}

using S = trellis::cpu_detail::simd<trellis::hwy_provider>;

/// Read bandwidth: each thread sums its static share of a 512 MiB buffer with 4 vector chains.
inline void read_bandwidth(benchmark::State& state) {
  const int threads = int(state.range(0));
  static trellis::aligned_vector<float> buf(std::size_t(128) << 20, 1.0f);
  const std::size_t n = buf.size();
  float sink = 0.0f;
  const double s = time_it(state, [&] {
    float total = 0.0f;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total)
    for (std::ptrdiff_t c = 0; c < std::ptrdiff_t(n / 4096); ++c) {
      const float* p = buf.data() + std::size_t(c) * 4096;
      S::vec a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
      for (std::size_t j = 0; j < 4096; j += 4 * S::lanes) {
        a0 = S::add(a0, S::load(p + j));
        a1 = S::add(a1, S::load(p + j + S::lanes));
        a2 = S::add(a2, S::load(p + j + 2 * S::lanes));
        a3 = S::add(a3, S::load(p + j + 3 * S::lanes));
      }
      total += S::reduce_add(S::add(S::add(a0, a1), S::add(a2, a3)));
    }
    sink += total;
  });
  benchmark::DoNotOptimize(sink);
  const double gbs = double(n * sizeof(float)) / s / 1e9;
  results()["read/" + std::to_string(threads)] = gbs;
  state.counters["GBps"] = gbs;
}

/// Copy bandwidth: y = x over 256 MiB, bytes counted as read + written (as norms count theirs).
inline void copy_bandwidth(benchmark::State& state) {
  const int threads = int(state.range(0));
  static trellis::aligned_vector<float> x(std::size_t(64) << 20, 1.0f), y(std::size_t(64) << 20, 0.0f);
  const std::size_t n = x.size();
  const double s = time_it(state, [&] {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (std::ptrdiff_t c = 0; c < std::ptrdiff_t(n / 4096); ++c)
      for (std::size_t j = std::size_t(c) * 4096; j < std::size_t(c + 1) * 4096; j += S::lanes)
        S::store(y.data() + j, S::load(x.data() + j));
  });
  benchmark::DoNotOptimize(y.data());
  const double gbs = 2.0 * double(n * sizeof(float)) / s / 1e9;
  results()["copy/" + std::to_string(threads)] = gbs;
  state.counters["GBps"] = gbs;
}

}  // namespace bench
