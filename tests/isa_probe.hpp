#pragma once
// Included by isa_haswell.cpp (-march=haswell) and isa_native.cpp (-march=native) only. Each TU
// gets its own copy of probe() (anonymous namespace) calling the same header-only kernels: without
// the ISA inline namespaces both TUs would instantiate identically mangled kernels and the linker
// would keep one copy.

#include <trellis/cpu.hpp>
#include <trellis/ops/matmul.hpp>
#include <trellis/ops/norm.hpp>

#include <sys/mman.h>
#include <unistd.h>

#include "isa_test.hpp"

namespace {

isa_result probe() {
  isa_result out;
  out.isa = trellis::isa_name();
  // Its mangled name contains the ISA namespace (through trellis::cpu): one out-of-line copy per
  // ISA.
  out.kernel = reinterpret_cast<const void*>(
      &trellis::op_impl<trellis::matmul_fn, trellis::cpu>::run<float, float, float>);
  std::vector<float> a(isa_m * isa_k), b(isa_k * isa_n);
  std::vector<trellis::bf16> a16(a.size()), b16(b.size());
  for (std::size_t i = 0; i < a.size(); ++i) a16[i] = trellis::bf16(a[i] = isa_a_value(i));
  for (std::size_t i = 0; i < b.size(); ++i) b16[i] = trellis::bf16(b[i] = isa_b_value(i));
  out.c.assign(isa_m * isa_n, -1.0f);
  out.c_bf16.assign(isa_m * isa_n, -1.0f);
  trellis::tensor_view<float, 2> c{out.c.data(), {isa_m, isa_n}};
  trellis::tensor_view<float, 2> c16{out.c_bf16.data(), {isa_m, isa_n}};
  for (int threads : {1, 2}) {
    trellis::matmul(trellis::cpu{.threads = threads},
                    trellis::tensor_view<const float, 2>{a.data(), {isa_m, isa_k}},
                    trellis::tensor_view<const float, 2>{b.data(), {isa_k, isa_n}}, c);
    trellis::matmul(trellis::basic_cpu<trellis::xsimd_provider>{.threads = threads},
                    trellis::tensor_view<const trellis::bf16, 2>{a16.data(), {isa_m, isa_k}},
                    trellis::tensor_view<const trellis::bf16, 2>{b16.data(), {isa_k, isa_n}}, c16);
  }
  // Unaligned rows (hidden = 29 is no multiple of any vector width) whose last element is the last float
  // before an inaccessible page: a masked tail load that reads a full vector faults here.
  const std::size_t page = std::size_t(sysconf(_SC_PAGESIZE)), n = isa_norm_rows * isa_norm_hidden;
  void* mem = mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED || mprotect(static_cast<char*>(mem) + page, page, PROT_NONE) != 0) return out;
  float* x = reinterpret_cast<float*>(static_cast<char*>(mem) + page) - n;
  for (std::size_t i = 0; i < n; ++i) x[i] = isa_norm_value(i);
  out.norm.assign(n, -1.0f);
  trellis::layernorm(trellis::cpu{.threads = 1},
                     trellis::tensor_view<const float, 2>{x, {isa_norm_rows, isa_norm_hidden}}, trellis::any_view{},
                     trellis::any_view{}, trellis::tensor_view<float, 2>{out.norm.data(), {isa_norm_rows, isa_norm_hidden}});
  munmap(mem, 2 * page);
  return out;
}

}  // namespace
