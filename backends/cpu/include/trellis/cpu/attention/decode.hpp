#pragma once
// Split-KV decode (Sq ≤ 16 against a long KV cache): bandwidth-bound, so K and V must be read once.
//
// One tile holds the query rows of every head that shares a kv head (group × Sq rows, split into slabs
// of ≤ rows_max), so each K/V element feeds all of them. The keys are cut into fixed chunks of
// `attention_blocking::chunk` (independent of the thread count); tasks (batch, kv head, slab, chunk) run
// in parallel and leave a partial (m, l, acc) per row and chunk; a second pass merges each row's partials
// in chunk order:  M = max m_c,  L = Σ l_c·e^(m_c − M),  o = Σ acc_c·e^(m_c − M) / L.
// Every partial is computed the same way whichever thread runs it, and the merge order is fixed, so the
// output is bit-identical for any thread count. Chunks past a batch's key length are never read.
//
// Scratch: the partials, (D_pad + 2) floats per (b, h, i, chunk), live in the calling thread's
// attention_partials slot (≈ 1 MiB for H = 32, D = 128, 32 768 keys).

#include <cmath>
#include <cstddef>
#include <limits>

#include "trellis/cpu/attention/tile.hpp"
#include "trellis/cpu/parallel.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

template <class S, class T, class TO>
void decode_attention(int threads, tensor_view<const T, 4> q, tensor_view<const T, 4> k, tensor_view<const T, 4> v,
                      tensor_view<TO, 4> o, float scale, const attention_options& opts) {
  using blk = attention_blocking;
  constexpr std::size_t L = S::lanes;
  const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
  const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2), group = heads / kv_heads;
  const std::size_t dp = (dim + L - 1) / L * L;
  const std::size_t heads_per_slab = std::max<std::size_t>(1, std::min(group, blk::rows_max / seq_q));
  const std::size_t slabs = (group + heads_per_slab - 1) / heads_per_slab;
  const std::size_t chunks = std::max<std::size_t>(1, (seq_kv + blk::chunk - 1) / blk::chunk);
  const std::size_t part = dp + 2;  // one partial: m, l, acc[dp]
  float* partials = thread_scratch(scratch_slot::attention_partials).get(batch * heads * seq_q * chunks * part);
  const auto partial = [&](std::size_t b, std::size_t h, std::size_t i, std::size_t c) {
    return partials + (((b * heads + h) * seq_q + i) * chunks + c) * part;
  };

  parallel_for(threads, batch * kv_heads * slabs * chunks, [&](std::size_t task) {
    const std::size_t c = task % chunks, slab = task / chunks % slabs, hk = task / (chunks * slabs) % kv_heads,
                      b = task / (chunks * slabs * kv_heads);
    const std::size_t h0 = hk * group + slab * heads_per_slab, h1 = std::min(hk * group + group, h0 + heads_per_slab);
    attention_rows t;
    t.count = (h1 - h0) * seq_q;
    t.dim = dim;
    t.dim_pad = dp;
    t.q = thread_scratch(scratch_slot::attention_q).get(blk::rows_max * dp);
    t.acc = thread_scratch(scratch_slot::attention_acc).get(blk::rows_max * dp);
    for (std::size_t r = 0; r < t.count; ++r) load_row<S>(t, r, q, b, h0 + r / seq_q, r % seq_q, seq_kv, opts);
    const detail::key_range span = t.key_span();
    const detail::key_range mine{std::max(span.first, c * blk::chunk), std::min(span.last, (c + 1) * blk::chunk)};
    if (!mine.empty())
      attend_span<S>(t, attention_workspace::get(dim, dp), k, v, b, hk, mine, scale, opts.mask);
    for (std::size_t r = 0; r < t.count; ++r) {
      float* out = partial(b, h0 + r / seq_q, r % seq_q, c);
      out[0] = t.m[r];
      out[1] = t.l[r];
      if (t.l[r] > 0.0f) std::copy(t.acc + r * dp, t.acc + (r + 1) * dp, out + 2);
    }
  });

  parallel_for(threads, batch * heads * seq_q, [&](std::size_t row) {
    const std::size_t i = row % seq_q, h = row / seq_q % heads, b = row / (seq_q * heads);
    float m = -std::numeric_limits<float>::infinity();
    for (std::size_t c = 0; c < chunks; ++c)
      if (partial(b, h, i, c)[1] > 0.0f) m = std::max(m, partial(b, h, i, c)[0]);
    float* acc = thread_scratch(scratch_slot::attention_acc).get(dp);
    std::fill(acc, acc + dp, 0.0f);
    float l = 0.0f;
    for (std::size_t c = 0; c < chunks; ++c) {  // in chunk order: the same sum for any thread count
      const float* p = partial(b, h, i, c);
      if (!(p[1] > 0.0f)) continue;
      const float w = std::exp(p[0] - m);
      l += p[1] * w;
      const typename S::vec vw = S::set(w);
      for (std::size_t d = 0; d < dp; d += L) S::store(acc + d, S::fma(vw, S::load(p + 2 + d), S::load(acc + d)));
    }
    const typename S::vec inv = S::set(l > 0.0f ? 1.0f / l : 0.0f);  // no visible key: 0, not NaN
    TO* od = &o(b, h, i, 0);
    std::size_t d = 0;
    for (; d + L <= dim; d += L) simd_io<S>::store(od + d, S::mul(inv, S::load(acc + d)));
    if (d < dim) simd_io<S>::store_n(od + d, S::mul(inv, S::load(acc + d)), dim - d);
    if (opts.lse)
      opts.lse.template as<float, 3>()(b, h, i) = l > 0.0f ? m + std::log(l) : -std::numeric_limits<float>::infinity();
  });
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
