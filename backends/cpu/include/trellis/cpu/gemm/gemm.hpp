#pragma once
// The blocked GEMM driver: C ← act(α·A·B + bias) + residual + β·C₀ on fp32 register tiles.
//
// Loop structure (GotoBLAS/BLIS, blocking.hpp says which cache holds what):
//   for each panel of NC·threads columns:        B panel packed once, by all threads, shared (L3)
//     for each (MC rows × NC columns) block:     split statically over the threads
//       for each KC block of k-steps:            A read in place (row-major fp32) or packed (L1/L2)
//         for each MR-row panel, NR-column micro-panel: micro-kernel into an fp32 accumulator block
//       epilogue, row by row, into C
// With a packed_matrix the B panels already exist: no packing and no barriers. Every element of C
// is reduced over K in the same order whatever the thread count, so results are bit-identical for
// any `threads`. bf16 inputs use k pairs and vdpbf16ps where the CPU has AVX-512 BF16 (Pairs), and
// are widened to fp32 in packing elsewhere.
//
// Scratch per thread: accumulator MC × NC and packed A MC × KC floats; the calling thread also
// holds the shared B panel, K × NC·threads values (all of it reused across calls, see scratch.hpp).

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "trellis/cpu/gemm/blocking.hpp"
#include "trellis/cpu/gemm/epilogue.hpp"
#include "trellis/cpu/gemm/micro_kernel.hpp"
#include "trellis/cpu/gemm/pack.hpp"
#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/ops/matmul.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// B already packed in micro-panels over the whole K (pack.hpp layout): a packed_matrix's storage.
template <bool Pairs>
struct prepacked_b {
  const gemm_element<Pairs>* data = nullptr;
};

/// Whether bf16 operands run as k pairs on vdpbf16ps for provider S.
template <class S, class T>
inline constexpr bool uses_pairs_v = std::is_same_v<T, bf16>&& S::native_bf16_dot;

/// One (mc × nc) block of C: all of K, then the epilogue. `panel` points at the micro-panel of
/// column j0.
template <class S, bool Pairs, class TA, class TC>
void gemm_block(tensor_view<const TA, 2> a, const gemm_element<Pairs>* panel, std::size_t steps,
                std::size_t i0, std::size_t mc, std::size_t j0, std::size_t nc,
                tensor_view<TC, 2> c, const matmul_options& opts, const float* bias) {
  using element = gemm_element<Pairs>;
  constexpr std::size_t MR = gemm_tile<S>::mr, NR = gemm_tile<S>::nr;
  const gemm_blocks& blk = gemm_blocking<S, Pairs>();
  const std::size_t nc_pad = (nc + NR - 1) / NR * NR;
  float* acc = thread_scratch(scratch_slot::gemm_acc).get(mc * nc_pad);  // [mc, nc_pad]
  if (steps == 0) std::fill(acc, acc + mc * nc_pad, 0.0f);
  // A is read in place when it is row-major and each k-step is a whole word of its memory (fp32, or
  // bf16 pairs when K is even): step stride 1 or 2 elements, row stride lda. Otherwise it is
  // packed.
  constexpr bool a_may_be_direct = std::is_same_v<TA, float> ? !Pairs : Pairs;
  constexpr std::size_t direct_step = Pairs ? 2 : 1;
  const bool a_direct = a_may_be_direct && (a.stride(1) == 1 || a.extent(1) <= 1) &&
                        a.extent(1) == steps * direct_step;
  // Runs the micro-kernels of one KC block; a_base is the A block, rows `row_stride` apart.
  const auto multiply = [&](const auto* a_base, std::size_t row_stride, std::size_t step_stride,
                            std::size_t s0, std::size_t ks) {
    using a_element = std::remove_cvref_t<decltype(*a_base)>;
    // From one MR-row panel to the next: MR rows of A in place, or one packed [ks, MR] panel.
    const std::size_t panel_stride = a_direct ? row_stride : ks;
    for (std::size_t ip = 0; ip < mc; ip += MR) {
      const auto kernel = kernel_for_rows<S, Pairs, a_element>(std::min(MR, mc - ip));
      const a_element* a_panel = a_base + ip * panel_stride;
      for (std::size_t jp = 0; jp < nc_pad; jp += NR)
        kernel(ks, a_panel, row_stride, step_stride, panel + jp * steps + s0 * NR, NR,
               acc + ip * nc_pad + jp, nc_pad, s0 == 0);
    }
  };
  for (std::size_t s0 = 0; s0 < steps; s0 += blk.kc) {
    const std::size_t ks = std::min(blk.kc, steps - s0);
    if constexpr (a_may_be_direct) {
      if (a_direct) {
        multiply(a.data() + i0 * a.stride(0) + s0 * direct_step, a.stride(0), direct_step, s0, ks);
        continue;
      }
    }
    const std::size_t mc_pad = (mc + MR - 1) / MR * MR;  // panels keep the MR stride when short
    auto* packed =
        reinterpret_cast<element*>(thread_scratch(scratch_slot::gemm_a).get(mc_pad * ks));
    pack_a_block<S, Pairs>(a, i0, mc, s0, ks, packed);
    multiply(static_cast<const element*>(packed), std::size_t{1}, MR, s0, ks);
  }
  float* tmp = thread_scratch(scratch_slot::row).get(nc);
  for (std::size_t i = 0; i < mc; ++i)
    gemm_store_row<S>(acc + i * nc_pad, nc, i0 + i, j0, c, opts, bias, tmp);
}

/// C ← act(α·A·B + bias) + residual + β·C₀ for a [M, K], B [K, N] (a view, or prepacked), c [M, N].
template <class S, bool Pairs, class TA, class TB, class TC>
void gemm_blocked(int threads, tensor_view<const TA, 2> a, tensor_view<const TB, 2> b,
                  prepacked_b<Pairs> prepacked, tensor_view<TC, 2> c, const matmul_options& opts) {
  using element = gemm_element<Pairs>;
  constexpr std::size_t MR = gemm_tile<S>::mr, NR = gemm_tile<S>::nr;
  const gemm_blocks& blk = gemm_blocking<S, Pairs>();
  const std::size_t m = c.extent(0), n = c.extent(1), steps = gemm_steps<Pairs>(a.extent(1));
  if (m == 0 || n == 0) return;
  const float* bias = widened_bias<S>(opts, n);
  // As few M blocks as MC allows, of nearly equal height (whole MR panels): with static scheduling
  // a short last block would leave a thread idle (M = 512 as 168+168+168+8 gave one thread twice
  // the work of the other). The height depends on M only, never on the thread count.
  const std::size_t m_blocks = (m + blk.mc - 1) / blk.mc;
  const std::size_t mc = ((m + m_blocks - 1) / m_blocks + MR - 1) / MR * MR;
  const std::size_t useful = m_blocks * ((n + blk.nc - 1) / blk.nc);
  const int team_size = static_cast<int>(
      std::min<std::size_t>(static_cast<std::size_t>(resolve_threads(threads)), useful));
  const std::size_t panel_width = blk.nc * static_cast<std::size_t>(std::max(team_size, 1));
  element* shared_panel = nullptr;
  if (!prepacked.data) {
    const std::size_t panel_values = std::min(panel_width, (n + NR - 1) / NR * NR) * steps;
    shared_panel =
        reinterpret_cast<element*>(thread_scratch(scratch_slot::gemm_b).get(panel_values));
  }

  run_team(team_size, useful, [&](const team& t) {
    for (std::size_t jc = 0; jc < n; jc += panel_width) {
      const std::size_t ncp = std::min(panel_width, n - jc);
      const element* panel = nullptr;
      if (prepacked.data) {
        panel = prepacked.data + jc * steps;  // micro-panel jc / NR, each steps × NR
      } else {
        const std::size_t micro_panels = (ncp + NR - 1) / NR;
        const auto [first, last] = t.static_range(micro_panels);
        for (std::size_t jr = first; jr < last; ++jr)
          pack_b_micro_panel<S, Pairs>(b, jc + jr * NR, std::min(NR, ncp - jr * NR),
                                       shared_panel + jr * NR * steps);
        t.barrier();  // the panel is complete before anyone multiplies with it
        panel = shared_panel;
      }
      // Column blocks of nearly equal width (whole NR micro-panels), for the same reason as mc.
      const std::size_t n_sub = (ncp + blk.nc - 1) / blk.nc;
      const std::size_t nc = ((ncp + n_sub - 1) / n_sub + NR - 1) / NR * NR;
      const auto [first, last] = t.static_range(m_blocks * n_sub);
      for (std::size_t task = first; task < last; ++task) {
        const std::size_t i0 = task / n_sub * mc, j_local = task % n_sub * nc;
        if (j_local >= ncp) continue;  // rounding to NR can leave the last block empty
        gemm_block<S, Pairs>(a, panel + j_local * steps, steps, i0, std::min(mc, m - i0),
                             jc + j_local, std::min(nc, ncp - j_local), c, opts, bias);
      }
      if (!prepacked.data) t.barrier();  // nobody still reads the panel when it is overwritten
    }
  });
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
