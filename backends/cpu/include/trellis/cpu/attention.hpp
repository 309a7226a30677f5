#pragma once
// attention on the CPU target: flash-style online softmax over KV blocks with QKᵀ and P·V on the GEMM's
// register-tiled brgemm_tile (attention/tile.hpp), never materialising more than a QB × KB score block.
//
// Prefill: one task per (batch, head, QB query rows); its keys are the union of its rows' visible ranges,
// so with causal masking the blocks above the diagonal are never touched and only blocks that straddle a
// row's limit clip columns. Decode (Sq ≤ 16): the split-KV path of attention/decode.hpp. Which path runs
// depends on the shape only, and each task's keys are visited in order, so results are bit-identical for
// any thread count. A row that sees no key is 0 (lse −inf).

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "trellis/cpu/attention/decode.hpp"
#include "trellis/cpu/attention/tile.hpp"
#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/cpu/simd_hwy.hpp"
#include "trellis/cpu/simd_xsimd.hpp"
#include "trellis/cpu/target.hpp"
#include "trellis/ops/attention.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

template <class S, class T, class TO>
void prefill_attention(int threads, tensor_view<const T, 4> q, tensor_view<const T, 4> k, tensor_view<const T, 4> v,
                       tensor_view<TO, 4> o, float scale, const attention_options& opts) {
  using blk = attention_blocking;
  constexpr std::size_t L = S::lanes;
  const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
  const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2);
  const std::size_t dp = (dim + L - 1) / L * L;
  const std::size_t q_tiles = (seq_q + blk::qb - 1) / blk::qb;

  parallel_for(threads, batch * heads * q_tiles, [&](std::size_t task) {
    const std::size_t b = task / (heads * q_tiles), h = task / q_tiles % heads, q0 = task % q_tiles * blk::qb;
    const std::size_t hk = h / (heads / kv_heads);  // GQA by index: consecutive query heads share a kv head
    attention_rows t;
    t.count = std::min(blk::qb, seq_q - q0);
    t.dim = dim;
    t.dim_pad = dp;
    t.q = thread_scratch(scratch_slot::attention_q).get(blk::rows_max * dp);
    t.acc = thread_scratch(scratch_slot::attention_acc).get(blk::rows_max * dp);
    for (std::size_t r = 0; r < t.count; ++r) load_row<S>(t, r, q, b, h, q0 + r, seq_kv, opts);
    const detail::key_range span = t.key_span();
    if (!span.empty()) attend_span<S>(t, attention_workspace::get(dim, dp), k, v, b, hk, span, scale, opts.mask);

    for (std::size_t r = 0; r < t.count; ++r) {
      TO* od = &o(b, h, q0 + r, 0);
      const float l = t.l[r];
      const typename S::vec inv = S::set(l > 0.0f ? 1.0f / l : 0.0f);  // no visible key: 0, not NaN
      const float* acc = t.acc + r * dp;
      std::size_t d = 0;
      for (; d + L <= dim; d += L) simd_io<S>::store(od + d, S::mul(inv, S::load(acc + d)));
      if (d < dim) simd_io<S>::store_n(od + d, S::mul(inv, S::load(acc + d)), dim - d);
      if (opts.lse)
        opts.lse.template as<float, 3>()(b, h, q0 + r) =
            l > 0.0f ? t.m[r] + std::log(l) : -std::numeric_limits<float>::infinity();
    }
  });
}

template <class S, class T, class TO>
void attention(int threads, tensor_view<const T, 4> q, tensor_view<const T, 4> k, tensor_view<const T, 4> v,
               tensor_view<TO, 4> o, float scale, const attention_options& opts) {
  if (q.extent(0) == 0 || q.extent(1) == 0 || q.extent(2) == 0 || q.extent(3) == 0) return;
  if (q.extent(2) <= attention_blocking::decode_max_sq)
    decode_attention<S>(threads, q, k, v, o, scale, opts);
  else
    prefill_attention<S>(threads, q, k, v, o, scale, opts);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE

template <class Provider>
struct op_impl<attention_fn, basic_cpu<Provider>> {
  template <class T, class TO>
  static void run(const basic_cpu<Provider>& target, tensor_view<const T, 4> q, tensor_view<const T, 4> k,
                  tensor_view<const T, 4> v, tensor_view<TO, 4> o, float scale, const attention_options& opts) {
    cpu_detail::attention<cpu_detail::simd<Provider>>(target.threads, q, k, v, o, scale, opts);
  }
};

}  // namespace trellis
