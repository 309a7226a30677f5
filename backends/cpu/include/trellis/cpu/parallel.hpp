#pragma once
// Threads without surprises (DESIGN.md §3): `threads = 1` opens no OpenMP region, a call from inside an
// active parallel region runs serially, and work is split statically so every task's result is the same
// whichever thread runs it.

#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <utility>

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

/// The threads of one call: `id` of `size`. Work is split by static_range, so which thread computes a
/// piece never changes what it computes.
struct team {
  int id = 0;
  int size = 1;

  /// Waits for the whole team; a team of one (no OpenMP region) does nothing.
  void barrier() const {
    if (size > 1) {
#pragma omp barrier
    }
  }
  /// This thread's contiguous share [first, last) of n items.
  std::pair<std::size_t, std::size_t> static_range(std::size_t n) const noexcept {
    const std::size_t k = static_cast<std::size_t>(size), i = static_cast<std::size_t>(id);
    return {n * i / k, n * (i + 1) / k};
  }
};

/// Runs body(team) on up to `threads` threads (at most max_useful), with no OpenMP region for one thread.
template <class Body>
void run_team(int threads, std::size_t max_useful, Body&& body) {
  const int t = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(threads)),
                                                       std::max<std::size_t>(1, max_useful)));
  if (t <= 1) {
    body(team{0, 1});
    return;
  }
#pragma omp parallel num_threads(t)
  body(team{omp_get_thread_num(), omp_get_num_threads()});
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
