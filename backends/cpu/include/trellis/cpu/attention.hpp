#pragma once
// attention on the CPU target: flash-style online softmax over KV blocks with QKᵀ and P·V on the GEMM's
// register-tiled brgemm_tile (attention/tile.hpp), never materialising more than a QB × KB score block.
//
// Prefill: one task per group of up to shared_tiles (QB query rows, head) tiles of one kv head (fewer on
// many threads: attention_blocking::tiles_per_task); each key block is readied (Kᵀ packed, bf16 V widened)
// once for all of them, and each tile takes the blocks of its own rows' visible ranges, so with causal
// masking the blocks above the diagonal are never touched and only blocks that straddle a row's limit clip
// columns. Decode (Sq ≤ 16): the split-KV path of attention/decode.hpp. Which path runs depends on the
// shape only; each tile visits its keys in order, in steps that end on a fixed grid of key blocks whichever
// tiles share its task (and decode's chunks are fixed), so results are bit-identical for any thread count.
// A row that sees no key is 0 (lse −inf).

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
  constexpr std::size_t L = S::lanes, max_shared = blk::shared_tiles;
  const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
  const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2);
  const std::size_t dp = padded_dim<S>(dim);
  const std::size_t q_tiles = (seq_q + blk::qb - 1) / blk::qb;
  // A task runs up to `shared` (query tile, head) pairs of one kv head's group — GQA heads of one query
  // tile first, then the next query tile — and readies each key block once for all of them.
  const std::size_t group = heads / kv_heads, pairs = group * q_tiles;
  const std::size_t shared = blk::tiles_per_task(batch * kv_heads * pairs, std::size_t(resolve_threads(threads)));
  const std::size_t chunks = (pairs + shared - 1) / shared;

  parallel_for(threads, batch * kv_heads * chunks, [&](std::size_t task) {
    const std::size_t b = task / (kv_heads * chunks), hk = task / chunks % kv_heads;
    const std::size_t p0 = task % chunks * shared, count = std::min(pairs, p0 + shared) - p0;
    float* q_rows = thread_scratch(scratch_slot::attention_q).get(shared * blk::qb * dp);  // a tile: ≤ qb rows
    float* acc_rows = thread_scratch(scratch_slot::attention_acc).get(shared * blk::qb * dp);
    attention_rows tiles[max_shared];
    detail::key_range spans[max_shared];
    std::size_t head[max_shared], first_row[max_shared];
    detail::key_range span{std::numeric_limits<std::size_t>::max(), 0};
    for (std::size_t i = 0; i < count; ++i) {
      const std::size_t pair = p0 + i;
      head[i] = hk * group + pair % group;  // GQA by index: consecutive query heads share a kv head
      first_row[i] = pair / group * blk::qb;
      attention_rows& t = tiles[i];
      t.count = std::min(blk::qb, seq_q - first_row[i]);
      t.dim = dim;
      t.dim_pad = dp;
      t.q = q_rows + i * blk::qb * dp;
      t.acc = acc_rows + i * blk::qb * dp;
      for (std::size_t r = 0; r < t.count; ++r) load_row<S>(t, r, q, b, head[i], first_row[i] + r, seq_kv, opts);
      spans[i] = t.key_span();
      if (!spans[i].empty()) span = {std::min(span.first, spans[i].first), std::max(span.last, spans[i].last)};
    }
    if (span.first < span.last) {
      const attention_workspace ws = attention_workspace::get(dim, dp);
      // Key blocks end on a fixed grid of kb keys (the first one starts at the span, so no key outside every
      // row's range is read): a tile's online-softmax steps, and so its rounding, must not depend on which
      // other tiles share its task, whose spans widen the union (tiles_per_task varies with the thread
      // count). Columns outside a row's own keys get P = 0 and leave its max, sum and acc as they are.
      for (std::size_t j0 = span.first, j1; j0 < span.last; j0 = j1) {
        j1 = std::min((j0 / blk::kb + 1) * blk::kb, span.last);
        const std::size_t kb = j1 - j0;
        const auto [vb, ldv] = prepare_block<S>(ws, k, v, b, hk, j0, kb, dp);
        for (std::size_t i = 0; i < count; ++i)
          if (spans[i].first < j1 && j0 < spans[i].last)
            attend_prepared_block<S>(tiles[i], ws, vb, ldv, j0, kb, scale, opts.mask);
      }
    }

    for (std::size_t i = 0; i < count; ++i)
      for (std::size_t r = 0; r < tiles[i].count; ++r) {
        const std::size_t h = head[i], row = first_row[i] + r;
        TO* od = &o(b, h, row, 0);
        const float l = tiles[i].l[r];
        const typename S::vec inv = S::set(l > 0.0f ? 1.0f / l : 0.0f);  // no visible key: 0, not NaN
        const float* acc = tiles[i].acc + r * dp;
        std::size_t d = 0;
        for (; d + L <= dim; d += L) simd_io<S>::store(od + d, S::mul(inv, S::load(acc + d)));
        if (d < dim) simd_io<S>::store_n(od + d, S::mul(inv, S::load(acc + d)), dim - d);
        if (opts.lse)
          opts.lse.template as<float, 3>()(b, h, row) =
              l > 0.0f ? tiles[i].m[r] + std::log(l) : -std::numeric_limits<float>::infinity();
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
