// "No allocation per call in steady state" (DESIGN.md §3), checked by counting every malloc-family
// call of this process: after a first call of a given size has grown the per-thread scratch, repeating
// the call (on 1 and on 2 threads) must not allocate. Its own executable, because it replaces malloc.
// Not built under AddressSanitizer, which owns malloc itself.

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <random>
#include <vector>

#include "cpu_support.hpp"

namespace {
std::atomic<long> g_allocations{0};
}

extern "C" {
void* __libc_malloc(std::size_t);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);

void* malloc(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(std::size_t count, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(count, n);
}
void* realloc(void* p, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void* memalign(std::size_t alignment, std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(std::size_t alignment, std::size_t n) { return memalign(alignment, n); }
int posix_memalign(void** p, std::size_t alignment, std::size_t n) {
  *p = memalign(alignment, n);
  return *p ? 0 : ENOMEM;
}
}

namespace {

using namespace trellis_test;
using trellis::bf16;
using trellis::tensor_view;

/// Allocations made by f() when it runs the second time (the first one may grow scratch).
template <class F>
long allocations_of_repeat(F&& f) {
  f();
  const long before = g_allocations.load();
  f();
  return g_allocations.load() - before;
}

CPU_TEST_SUITE(CpuAllocation);

CPU_TEST(CpuAllocation, SteadyStateCallsDoNotAllocate) {
  std::mt19937 rng(3);
  const std::size_t m = 300, k = 200, n = 260;
  std::vector<float> a(m * k), b(k * n), w(n * k), c(m * n), bias(n);
  std::vector<bf16> a16(m * k), b16(k * n);
  for (auto* v : {&a, &b, &w, &bias})
    for (float& x : *v) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  for (std::size_t i = 0; i < a.size(); ++i) a16[i] = bf16(a[i]);
  for (std::size_t i = 0; i < b.size(); ++i) b16[i] = bf16(b[i]);
  const tensor_view<const float, 2> av{a.data(), {m, k}}, bv{b.data(), {k, n}}, wv{w.data(), {n, k}};
  const tensor_view<float, 2> cv{c.data(), {m, n}};
  const tensor_view<const float, 1> biasv{bias.data(), {n}};

  const std::size_t batch = 1, heads = 4, kv_heads = 2, seq = 96, dim = 64;
  std::vector<float> q(batch * heads * seq * dim, 0.1f), kv(batch * kv_heads * seq * dim, 0.2f),
      o(q.size());
  const tensor_view<const float, 4> qv{q.data(), {batch, heads, seq, dim}};
  const tensor_view<const float, 4> kvv{kv.data(), {batch, kv_heads, seq, dim}};
  const tensor_view<const float, 4> q1{q.data(), {batch, heads, 1, dim}, {heads * seq * dim, seq * dim, dim, 1}};
  const tensor_view<float, 4> ov{o.data(), {batch, heads, seq, dim}};
  const tensor_view<float, 4> o1{o.data(), {batch, heads, 1, dim}, {heads * seq * dim, seq * dim, dim, 1}};

  std::vector<float> x(64 * 1000, 1.5f), y(x.size()), r(x.size(), 0.25f), s(x.size()), g(1000, 1.0f);
  const tensor_view<const float, 2> xv{x.data(), {64, 1000}}, rv{r.data(), {64, 1000}};
  const tensor_view<float, 2> yv{y.data(), {64, 1000}}, sv{s.data(), {64, 1000}};
  const tensor_view<const float, 1> gv{g.data(), {1000}};

  // The counter sees the library's allocations at all: packing a matrix allocates its storage.
  const long before_pack = g_allocations.load();
  const trellis::basic_packed_matrix<typename Target::provider, float> probe(with_threads<Target>(1), bv);
  EXPECT_GE(g_allocations.load() - before_pack, 1);

  for (int threads : {1, 2}) {
    SCOPED_TRACE(testing::Message() << "threads=" << threads);
    const Target target = with_threads<Target>(threads);
    const trellis::basic_packed_matrix<typename Target::provider, float> packed(target, bv);
    EXPECT_EQ(allocations_of_repeat([&] {
                trellis::matmul(target, av, bv, cv, {.epilogue = trellis::epilogue::bias_gelu(biasv)});
              }),
              0);
    EXPECT_EQ(allocations_of_repeat([&] { trellis::matmul(target, av, packed, cv); }), 0);
    EXPECT_EQ(allocations_of_repeat([&] {
                trellis::matmul(target, tensor_view<const float, 2>{a.data(), {8, k}}, wv,
                                tensor_view<float, 2>{c.data(), {8, n}}, {.transpose_b = true});
              }),
              0);
    EXPECT_EQ(allocations_of_repeat([&] {
                trellis::matmul(target, tensor_view<const bf16, 2>{a16.data(), {m, k}},
                                tensor_view<const bf16, 2>{b16.data(), {k, n}}, cv);
              }),
              0);
    EXPECT_EQ(allocations_of_repeat([&] { trellis::attention(target, qv, kvv, kvv, ov, {.causal = true}); }), 0);
    EXPECT_EQ(allocations_of_repeat([&] { trellis::attention(target, q1, kvv, kvv, o1); }), 0);
    EXPECT_EQ(allocations_of_repeat([&] { trellis::layernorm(target, xv, gv, gv, yv); }), 0);
    EXPECT_EQ(allocations_of_repeat([&] {
                trellis::rmsnorm(target, xv, gv, yv, {.residual = rv, .residual_out = sv});
              }),
              0);
  }
}

}  // namespace
