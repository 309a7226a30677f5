#pragma once
// matmul_tiled: step 1 of the public NKI matmul tutorial, written against the ISA exactly as a kernel
// author would (DESIGN.md §4's sketch, with tails in every dimension).
//
//   out[M, N] = lhsTᵀ · rhs,  lhsT [K, M] bf16, rhs [K, N] bf16, out fp32
//
// 128 × 512 PSUM tiles (one bank) accumulated over 128-deep K tiles; both loads sit in the innermost
// loop (the tutorial's first step); PSUM is evicted by the Vector Engine and stored by DMA.
// Buffers: `bufs` rotating SBUF buffers per input (1: every load waits for the matmul that used the
// previous one; 2+: loads overlap compute), one PSUM bank, one SBUF eviction tile.

#include <algorithm>
#include <cstddef>

#include "trellis/systolic/core.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/isa.hpp"

namespace trellis::systolic::kernels {

template <class Machine>
void matmul_tiled(core<Machine>& nc, hbm<const bf16> lhsT, hbm<const bf16> rhs, hbm<float> out,
                  std::size_t bufs) {
  using namespace trellis::systolic::isa;
  const std::size_t k_size = lhsT.extent(0), m_size = lhsT.extent(1), n_size = rhs.extent(1);
  constexpr std::size_t tile_m = 128, tile_k = 128, tile_n = 512;
  auto a_pool = nc.sbuf.template pool<bf16>({tile_k, tile_m}, bufs);  // [K, M] stationary tiles
  auto b_pool = nc.sbuf.template pool<bf16>({tile_k, tile_n}, bufs);  // [K, N] moving tiles
  for (std::size_t m = 0; m < m_size; m += tile_m)
    for (std::size_t n = 0; n < n_size; n += tile_n) {
      const std::size_t mt = std::min(tile_m, m_size - m), nt = std::min(tile_n, n_size - n);
      auto acc = nc.psum.template tile<float>(mt, nt);  // [mt, nt] fp32: one PSUM bank
      for (std::size_t k = 0; k < k_size; k += tile_k) {
        const std::size_t kt = std::min(tile_k, k_size - k);
        const region a = a_pool.next().sub(0, kt, 0, mt);  // [kt, mt]
        const region b = b_pool.next().sub(0, kt, 0, nt);  // [kt, nt]
        dma_copy(nc, a, lhsT.tile(k, m, kt, mt));
        dma_copy(nc, b, rhs.tile(k, n, kt, nt));
        nc_matmul(nc, acc, /*stationary*/ a, /*moving*/ b, {.accumulate = k > 0});
      }
      auto res = nc.sbuf.template tile<float>(mt, nt);  // [mt, nt]
      tensor_copy(nc, res, acc);
      dma_copy(nc, out.tile(m, n, mt, nt), res);
    }
}

}  // namespace trellis::systolic::kernels
