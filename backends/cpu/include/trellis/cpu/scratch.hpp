#pragma once
// Per-thread scratch memory: grown on first use, then reused, so steady-state calls never allocate.
// Each OpenMP worker and each user thread owns its own buffers, so concurrent calls never share one.

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <cstdio>
#include <new>

#include "trellis/core/config.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// A 64-byte-aligned float buffer that only grows.
class scratch_buffer {
 public:
  float* get(std::size_t floats) {
    if (floats > capacity_) {
      const std::size_t bytes = ((floats * sizeof(float) + 63) / 64) * 64;
      void* p = std::aligned_alloc(64, bytes);
      if (!p) out_of_memory(bytes);
      data_.reset(static_cast<float*>(p));
      capacity_ = bytes / sizeof(float);
    }
    return data_.get();
  }
  std::size_t capacity_bytes() const noexcept { return capacity_ * sizeof(float); }

 private:
  [[noreturn]] static void out_of_memory(std::size_t bytes) {
#if TRELLIS_HAS_EXCEPTIONS
    (void)bytes;
    throw std::bad_alloc();
#else
    std::fprintf(stderr, "trellis: out of memory allocating %zu bytes of scratch\n", bytes);
    std::abort();
#endif
  }
  struct free_deleter {
    void operator()(float* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<float, free_deleter> data_;
  std::size_t capacity_ = 0;
};

/// The scratch slots a thread owns; each kernel uses its own slot(s) so nested uses never collide.
enum class scratch_slot {
  gemm_a,
  gemm_b,
  gemm_acc,
  row,
  row_params,
  attention_q,
  attention_acc,
  attention_scores,
  attention_kt,        ///< a K block packed as Kᵀ micro-panels
  attention_v,         ///< a bf16 V block widened to fp32
  attention_partials,  ///< split-KV decode: per-chunk (m, l, acc), owned by the calling thread
  count
};

inline scratch_buffer& thread_scratch(scratch_slot slot) {
  thread_local scratch_buffer buffers[static_cast<std::size_t>(scratch_slot::count)];
  return buffers[static_cast<std::size_t>(slot)];
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
