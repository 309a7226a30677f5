#pragma once
// GEMM blocking, derived from the cache sizes read at run time (sysconf), with sane defaults.
//
// The 6 × NR register tile broadcasts A and streams B, so the roles of the caches are:
//   L1: the A micro-panel (MR × KC) stays resident while every B micro-panel of the block streams
//   past. L2: the B block (KC × NC) and the fp32 accumulator block (MC × NC) of one thread. L3: the
//   B panel (K × NC·threads) shared by all threads of a call.
// KC and the tile shape depend only on the machine, never on the thread count, so the order of the
// K reduction (and therefore every bit of the result) is the same for any `threads`.

#include <unistd.h>

#include <algorithm>
#include <cstddef>

#include "trellis/cpu/gemm/micro_kernel.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

struct cache_sizes {
  std::size_t l1d = 32 * 1024, l2 = 1024 * 1024, l3 = 32 * 1024 * 1024;

  static const cache_sizes& detected() {
    static const cache_sizes sizes = [] {
      cache_sizes c;
      const auto read = [](int name, std::size_t fallback) {
        const long v = ::sysconf(name);
        return v > 0 ? static_cast<std::size_t>(v) : fallback;
      };
#if defined(_SC_LEVEL1_DCACHE_SIZE)
      c.l1d = read(_SC_LEVEL1_DCACHE_SIZE, c.l1d);
      c.l2 = read(_SC_LEVEL2_CACHE_SIZE, c.l2);
      c.l3 = read(_SC_LEVEL3_CACHE_SIZE, c.l3);
#endif
      return c;
    }();
    return sizes;
  }
};

/// Block sizes in k-steps (one k, or one k pair for bf16 pairs) and elements.
struct gemm_blocks {
  std::size_t kc;  // k-steps per block
  std::size_t mc;  // rows of A per block (multiple of MR)
  std::size_t nc;  // columns per thread block (multiple of NR)
};

template <class S, bool Pairs>
const gemm_blocks& gemm_blocking() {
  static const gemm_blocks blocks = [] {
    using tile = gemm_tile<S>;
    const cache_sizes& c = cache_sizes::detected();
    // A micro-panel in a quarter of L1: MR · KC · 4 bytes (a k pair of bf16 is also 4 bytes).
    std::size_t kc = std::clamp<std::size_t>(c.l1d / 4 / (tile::mr * 4), 32, 512) / 16 * 16;
    // B block in half of L2; accumulator block MC × NC in a quarter.
    std::size_t nc =
        std::clamp<std::size_t>(c.l2 / 2 / (kc * 4), tile::nr, 4096) / tile::nr * tile::nr;
    std::size_t mc =
        std::clamp<std::size_t>(c.l2 / 4 / (nc * 4), tile::mr, 1024) / tile::mr * tile::mr;
    (void)Pairs;
    return gemm_blocks{kc, mc, nc};
  }();
  return blocks;
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
