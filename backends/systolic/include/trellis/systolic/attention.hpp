#pragma once
// attention on the NeuronCore model: attention(nc, q, k, v, o, opts) with the CPU target's views and options.
// The host views are the device's HBM (hbm.hpp); the flash attention forward kernel
// (kernels/attention.hpp) runs on the core with its default policy, and the core records and times every
// instruction (nc.report()).
//
// Supported: every attention option — scale (0 too), causal (the library's alignment for Sq ≠ Skv), GQA/MQA
// (one kernel group per batch and kv head: K/V are read once for the query heads that share them), per-batch
// key_lengths (keys past the length are never loaded), an additive mask (f32 or bf16, broadcast over batch
// and heads as the library allows: each head's [Sq, Skv] slice is DMA'd a chunk at a time), a sliding window
// and lse. Rejected with trellis::error: a head dim above 128 (d lies on the partitions of Qᵀ and Kᵀ).
// Numerics: bf16 matmuls (fp32 inputs are rounded to bf16 by the DMA that loads them), fp32 softmax
// statistics and accumulator; see kernels/attention.hpp.

#include <cstddef>
#include <string>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/ops/attention.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/host_views.hpp"
#include "trellis/systolic/kernels/attention.hpp"

namespace trellis {
namespace systolic {

/// The kernel's work list for attention(q, k, v, o, opts): one group per (batch, kv head) holding that kv
/// head's K/V [Skv, D], its key length, and the H / Hkv consecutive query heads that read it (with their
/// outputs, lse rows and [Sq, Skv] mask slices), each a 2-D view of the host memory seen as HBM.
template <class T, class TO>
std::vector<kernels::attention_head_group<T, TO>> attention_groups(tensor_view<const T, 4> q, tensor_view<const T, 4> k,
                                                                   tensor_view<const T, 4> v, tensor_view<TO, 4> o,
                                                                   const attention_options& opts) {
  const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2);
  const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2);
  // Per (batch, head) 2-D views [S, D]; the head dim is contiguous (validated by the front door).
  auto head = [](auto t, std::size_t b, std::size_t h) {
    using view = tensor_view<typename decltype(t)::element_type, 2>;
    if (t.extent(2) == 0) return view{nullptr, {0, t.extent(3)}};  // Skv = 0: every row sees no key
    return view{&t(b, h, 0, 0), {t.extent(2), t.extent(3)}, {t.stride(2), 1}};
  };
  std::vector<kernels::attention_head_group<T, TO>> groups;
  if (kv_heads == 0) return groups;
  const std::size_t group_size = heads / kv_heads;
  groups.reserve(batch * kv_heads);
  for (std::size_t b = 0; b < batch; ++b)
    for (std::size_t hk = 0; hk < kv_heads; ++hk) {
      auto& g = groups.emplace_back();
      g.k = hbm<const T>(head(k, b, hk));
      g.v = hbm<const T>(head(v, b, hk));
      g.keys = opts.key_lengths.data() ? static_cast<std::size_t>(opts.key_lengths(b)) : seq_kv;
      for (std::size_t h = hk * group_size; h < (hk + 1) * group_size; ++h) {  // GQA: consecutive heads share
        g.q.push_back(hbm<const T>(head(q, b, h)));
        g.o.push_back(hbm<TO>(head(o, b, h)));
        if (opts.lse) {
          const auto lse = opts.lse.template as<float, 3>();
          g.lse.push_back(hbm<float>(tensor_view<float, 2>{&lse(b, h, 0), {seq_q, 1}, {lse.stride(2), 1}}));
        }
        if (opts.mask)  // [Sq, Skv] of head h (a broadcast axis gives every head the same slice)
          g.mask.push_back(hbm_region(opts.mask, trellis::detail::mask_row_offset(opts.mask, b, h, 0), seq_q, seq_kv,
                                      opts.mask.stride(opts.mask.rank() - 2), 1));
      }
    }
  return groups;
}

}  // namespace systolic

template <systolic::machine Machine>
struct op_impl<attention_fn, systolic::core<Machine>> {
  template <class T, class TO>
  static void run(systolic::core<Machine>& nc, tensor_view<const T, 4> q, tensor_view<const T, 4> k,
                  tensor_view<const T, 4> v, tensor_view<TO, 4> o, float scale, const attention_options& opts) {
    const std::string on = std::string(" on the NeuronCore model (") + Machine::spec.name + ")";
    const std::size_t dim = q.extent(3);
    if (dim > Machine::spec.matmul.pe_rows)
      raise_error("attention: q: head dim " + std::to_string(dim) + " exceeds " +
                  std::to_string(Machine::spec.matmul.pe_rows) + on +
                  " (the head dim lies on the partitions of Qᵀ and Kᵀ)");
    if (q.extent(0) == 0 || q.extent(1) == 0 || q.extent(2) == 0 || dim == 0) return;
    systolic::kernels::flash_attention_fwd(nc, systolic::attention_groups(q, k, v, o, opts),
                                           {.scale = scale, .causal = opts.causal, .window = opts.window});
  }
};

}  // namespace trellis
