#pragma once
// The CPU target: basic_cpu<Provider>, with `cpu` = basic_cpu<default provider>.
//
// The provider tags and basic_cpu live in the ISA inline namespace (see trellis/core/config.hpp),
// so every kernel instantiated for `cpu` carries the ISA in its mangled name and translation units
// built with different -march flags never share a kernel body.

#include "trellis/core/config.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE

/// Kernels written against Google Highway (static dispatch to the compile-time ISA).
struct hwy_provider {
  static constexpr const char* name = "hwy";
};
/// Kernels written against xsimd (the compile-time default architecture).
struct xsimd_provider {
  static constexpr const char* name = "xsimd";
};

/// Runs ops with `Provider`'s SIMD kernels on OpenMP threads.
///   threads = 0: omp_get_max_threads(); 1: no OpenMP region at all; n: at most n threads.
/// A call from inside an active OpenMP parallel region always runs serially on the calling thread.
/// Results are bit-identical for every thread count.
template <class Provider>
struct basic_cpu {
  using provider = Provider;
  int threads = 0;
};

#if defined(TRELLIS_DEFAULT_SIMD_XSIMD)
using default_simd_provider = xsimd_provider;
#else
using default_simd_provider = hwy_provider;
#endif

using cpu = basic_cpu<default_simd_provider>;

TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
