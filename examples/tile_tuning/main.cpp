// Tile tuning on the NeuronCore model: write a kernel against the ISA, check its values, time it, then
// let the model tell you what bounds it and which tile policy is faster. Copy this file to start a kernel.
//
//   build/release/examples/tile_tuning [trace.json]
//
// 1. my_matmul: step 1 of the NKI matmul tutorial, as a kernel author writes it.
// 2. Its values on a small shape, against a host loop (functional core).
// 3. Its time on the tutorial shape (timing-only core: shape-only HBM, nothing computed), and why.
// 4. The library's blocked kernel under a few policies: ranked, with the bounding resource of each.
// 5. The best policy's trace, to open in ui.perfetto.dev.

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include <trellis/systolic/core.hpp>
#include <trellis/systolic/hbm.hpp>
#include <trellis/systolic/isa.hpp>
#include <trellis/systolic/kernels/matmul.hpp>
#include <trellis/systolic/timing/bound.hpp>

using namespace trellis::systolic;
using trellis::bf16;

/// out[M, N] = lhsTᵀ · rhs, lhsT [K, M], rhs [K, N]; M, K multiples of 128, N of 512 (kept short here:
/// kernels/matmul.hpp shows the tails).
void my_matmul(core_state& nc, hbm<const bf16> lhsT, hbm<const bf16> rhs, hbm<float> out) {
  using namespace isa;
  const std::size_t k_size = lhsT.extent(0), m_size = lhsT.extent(1), n_size = rhs.extent(1);
  auto a_pool = nc.sbuf.pool<bf16>({128, 128}, 2);  // 2 rotating buffers: the next load overlaps
  auto b_pool = nc.sbuf.pool<bf16>({128, 512}, 2);  // the matmul that reads the previous one
  for (std::size_t m = 0; m < m_size; m += 128)
    for (std::size_t n = 0; n < n_size; n += 512) {
      auto acc = nc.psum.tile<float>(128, 512);  // [128, 512] fp32: one PSUM bank
      for (std::size_t k = 0; k < k_size; k += 128) {
        auto& a = a_pool.next();  // [128 K, 128 M] stationary
        auto& b = b_pool.next();  // [128 K, 512 N] moving
        dma_copy(nc, a, lhsT.tile(k, m, 128, 128));
        dma_copy(nc, b, rhs.tile(k, n, 128, 512));
        nc_matmul(nc, acc, a, b, {.accumulate = k > 0});
      }
      auto res = nc.sbuf.tile<float>(128, 512);  // freed at the end of the iteration, then reused
      tensor_copy(nc, res, acc);                 // the Vector Engine evicts PSUM
      dma_copy(nc, out.tile(m, n, 128, 512), res);
    }
}

void print_summary(const char* what, const core_state& nc) {
  const timing::report r = nc.report();
  const timing::bound b = timing::bounding_resource(r);
  std::printf("%-34s %9.1f us  MFU %5.1f %%  Tensor busy %5.1f %%  bound by %s\n", what, r.total_ns / 1e3, 100 * r.mfu,
              100 * r.engines[0].utilisation, b.resource.c_str());
}

int main(int argc, char** argv) {
  // 2. Values: a small problem on a functional core, checked against a host loop. bf16 products are exact
  //    in fp32 and the inputs are small integers, so every fp32 sum is exact: the check is equality.
  {
    const std::size_t m = 256, k = 384, n = 512;
    std::vector<bf16> lhsT(k * m), rhs(k * n);
    for (std::size_t i = 0; i < lhsT.size(); ++i) lhsT[i] = bf16(float(int(i % 7) - 3));
    for (std::size_t i = 0; i < rhs.size(); ++i) rhs[i] = bf16(float(int(i % 5) - 2));
    std::vector<float> out(m * n);
    core<trn2> nc;
    my_matmul(nc, hbm<const bf16>{{lhsT.data(), {k, m}}}, hbm<const bf16>{{rhs.data(), {k, n}}},
              hbm<float>{{out.data(), {m, n}}});
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        float want = 0;
        for (std::size_t p = 0; p < k; ++p) want += float(lhsT[p * m + i]) * float(rhs[p * n + j]);
        wrong += out[i * n + j] != want;
      }
    std::printf("my_matmul %zux%zux%zu on a functional trn2: %zu wrong elements\n\n", m, k, n, wrong);
    if (wrong) return 1;
  }

  // 3. Time: the tutorial shape, timing-only.
  const std::size_t m = 4096, k = 8192, n = 8192;
  const auto lhsT = hbm<const bf16>::shape_only({k, m});
  const auto rhs = hbm<const bf16>::shape_only({k, n});
  const auto out = hbm<float>::shape_only({m, n});
  std::printf("tutorial shape M=%zu K=%zu N=%zu bf16 on trn2 (timing-only)\n", m, k, n);
  {
    core<trn2> nc{{.functional = false}};
    my_matmul(nc, lhsT, rhs, out);
    print_summary("my_matmul (tiled, 2 buffers)", nc);
    // The report says why: the DMA engines are busy and the Tensor Engine waits on loads.
    const timing::report r = nc.report();
    std::printf("  Tensor Engine stalled %.1f us waiting on DMA; HBM traffic %.2f GB\n\n",
                r.engines[0].stall_ns[std::size_t(timing::stall_cause::dma)] / 1e3,
                (r.hbm_read_bytes + r.hbm_written_bytes) / 1e9);
  }

  // 4. Tiling: the blocked kernel reuses each loaded block for many matmuls. Try a few policies.
  const kernels::matmul_problem problem{.a = lhsT, .b = rhs, .c = out};
  struct trial {
    std::string name;
    kernels::matmul_policy policy;
  };
  const std::vector<trial> trials = {
      {"blocked 16x2x8, 2 bufs (tutorial)", {.variant = kernels::matmul_variant::blocked}},
      {"blocked 8x2x8, 2 bufs", {.variant = kernels::matmul_variant::blocked, .block_m = 8}},
      {"default 16x2x4, 2 bufs", {.variant = kernels::matmul_variant::default_}},
      {"default 16x1x4, 3 bufs", {.variant = kernels::matmul_variant::default_, .block_m = 16, .block_n = 1, .block_k = 4, .bufs = 3}},
      {"default 32x2x8, 2 bufs (too big?)", {.variant = kernels::matmul_variant::default_, .block_m = 32, .block_k = 8}},
  };
  kernels::matmul_policy best = trials.front().policy;
  double best_ns = INFINITY;
  for (const trial& t : trials) {
    core<trn2> nc{{.functional = false}};
    try {
      kernels::matmul(nc, problem, t.policy);
    } catch (const trellis::error& e) {  // the model names the rule a policy breaks
      std::printf("%-34s rejected: %s\n", t.name.c_str(), e.what());
      continue;
    }
    print_summary(t.name.c_str(), nc);
    if (nc.total_ns() < best_ns) best_ns = nc.total_ns(), best = t.policy;
  }
  std::printf("\n(trellis-sim tune matmul --machine trn2 --m 4096 --k 8192 --n 8192 sweeps hundreds of these on all cores)\n");

  // 5. The best policy's trace.
  const std::string path = argc > 1 ? argv[1] : "tile_tuning_trace.json";
  core<trn2> nc{{.functional = false}};
  kernels::matmul(nc, problem, best);
  nc.write_trace(path);
  std::printf("trace of the best policy written to %s: open it in ui.perfetto.dev\n", path.c_str());
  return 0;
}
