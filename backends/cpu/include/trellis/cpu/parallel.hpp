#pragma once
// Threads without surprises (DESIGN.md §3): `threads = 1` opens no OpenMP region, a call from inside an
// active parallel region runs serially, and work is split statically so every task's result is the same
// whichever thread runs it.

#include <omp.h>

#include <algorithm>
#include <cstddef>

#include "trellis/core/config.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// The number of threads a call may use: `requested` (0 = omp_get_max_threads()), or 1 inside a parallel region.
inline int resolve_threads(int requested) noexcept {
  if (omp_in_parallel()) return 1;
  return requested > 0 ? requested : std::max(1, omp_get_max_threads());
}

/// Runs task(i) for i in [0, tasks), statically partitioned over up to `threads` threads.
template <class Task>
void parallel_for(int threads, std::size_t tasks, Task&& task) {
  const int t = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(threads)), tasks));
  if (t <= 1) {
    for (std::size_t i = 0; i < tasks; ++i) task(i);
    return;
  }
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(tasks);
#pragma omp parallel for schedule(static) num_threads(t)
  for (std::ptrdiff_t i = 0; i < n; ++i) task(static_cast<std::size_t>(i));
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
