#pragma once
// One online-softmax step of flash attention on the CPU: a tile of up to rows_max query rows (fp32, in
// scratch) against one block of ≤ kb keys of one (batch, kv head), both products on brgemm_tile:
//
//   S[r, c]  = q_r · k_{j0+c}                   brgemm: A = q tile [R, D], B = Kᵀ block packed [D, kb]
//   x        = scale·S (+ mask) on the row's visible columns, −inf-free: invisible columns are skipped
//   m_new    = max(m, max x);  P = e^(x − m_new);  l = l·e^(m − m_new) + Σ P;  acc ·= e^(m − m_new)
//   acc[r,:] += P · V block                     brgemm: A = P [R, kb], B = V block [kb, D] row-major
//
// The prefill path (one tile = QB rows of one head) and the split-KV decode path (one tile = the query
// rows of every head sharing a kv head, one KV chunk) both drive this step; neither copies K or V beyond
// the block it works on. Each row carries its own visible key range (causal limit, key length, window);
// only the part of a block inside it is scaled, exponentiated and summed, the rest of P is 0, so blocks
// entirely visible cost no masking at all. A row that has seen no finite logit keeps m = −inf, l = 0.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>
#include <utility>

#include "trellis/cpu/gemm/brgemm.hpp"
#include "trellis/cpu/gemm/pack.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/cpu/simd_provider.hpp"
#include "trellis/ops/attention.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

struct attention_blocking {
  // Keys per online-softmax step (8 micro-panels of 64): each step loads and stores the brgemm C tiles
  // (scores, acc) once, so a longer step amortises them over more keys — 128 → 512 took H32 Hkv8 S2048
  // D128 (1 thread) from 699 to 675 ms — while a block's Kᵀ, V and scores (≈ 600 KiB at D = 128) stay in L2
  // (beside them a task cycles its tiles' queries and accumulators: 576 KiB for 12 tiles at D = 128, more
  // than Zen 4's 1 MiB L2 holds with the rest, yet 12 tiles measured faster than 4; see shared_tiles).
  static constexpr std::size_t kb = 512;
  static constexpr std::size_t qb = 48;         // prefill query rows per tile: 8 micro-kernel strips of 6
  static constexpr std::size_t rows_max = 64;   // rows of any tile (decode: heads of a group × Sq)
  static constexpr std::size_t chunk = 512;     // split-KV decode chunk: fixed, so results ignore threads
  static constexpr std::size_t decode_max_sq = 16;
  /// Prefill (query tile, head) pairs that share one readied key block: its Kᵀ is packed, and K and V are
  /// read from L3, once for all of them. Up to 12, three query tiles of a 4-head GQA group (4 before):
  /// attention_bench H32 Hkv8 S4096 D128 non-causal, min of 3 alternated runs, 2880 → 2704 ms on one thread
  /// and 1523 → 1377 on two; S2048 and causal within the noise. Fewer where 12 would leave a thread under 8
  /// tasks (tiles_per_task), never under 4. With a sliding window a task's first block can be a sliver
  /// (its span starts just before a grid line), one extra short step per tile.
  static constexpr std::size_t shared_tiles = 12, min_shared_tiles = 4;
  /// Pairs per prefill task for `pairs` (query tile, head) pairs in all on `threads` threads. Which tiles
  /// share a block never changes a result: the key blocks end on a fixed grid of kb keys, so a tile takes
  /// the same online-softmax steps over its own keys whatever the other tiles' spans (prefill_attention).
  static constexpr std::size_t tiles_per_task(std::size_t pairs, std::size_t threads) noexcept {
    return std::clamp<std::size_t>(pairs / (8 * std::max<std::size_t>(1, threads)), min_shared_tiles, shared_tiles);
  }
  static_assert(chunk % kb == 0 && qb <= rows_max, "a decode chunk is a whole number of key blocks");
};

/// The row stride of a tile's fp32 queries and running output: dim rounded up to whole vectors.
template <class S>
constexpr std::size_t padded_dim(std::size_t dim) noexcept {
  return (dim + S::lanes - 1) / S::lanes * S::lanes;
}

/// The state of one tile's rows: fp32 queries, running output, max and sum, and what each row sees.
struct attention_rows {
  std::size_t count = 0, dim = 0, dim_pad = 0;
  float* q = nullptr;    // [count, dim_pad] fp32 queries
  float* acc = nullptr;  // [count, dim_pad] running Σ P·V
  float m[attention_blocking::rows_max];
  float l[attention_blocking::rows_max];
  detail::key_range keys[attention_blocking::rows_max];
  std::size_t mask_row[attention_blocking::rows_max];  // element offset of the row's mask(·, 0)

  /// The union of the rows' key ranges: the only keys the tile ever reads.
  detail::key_range key_span() const noexcept {
    detail::key_range span{std::numeric_limits<std::size_t>::max(), 0};
    for (std::size_t r = 0; r < count; ++r)
      if (!keys[r].empty()) span = {std::min(span.first, keys[r].first), std::max(span.last, keys[r].last)};
    return span.empty() ? detail::key_range{} : span;
  }
};

/// Per-thread buffers of the tile step.
struct attention_workspace {
  float* kt;      // [D steps × kb] packed Kᵀ micro-panels
  float* scores;  // [rows_max, kb]
  float* v;       // [kb, dim_pad] a bf16 V block widened to fp32

  static attention_workspace get(std::size_t dim, std::size_t dim_pad) {
    constexpr std::size_t kb = attention_blocking::kb;
    return {thread_scratch(scratch_slot::attention_kt).get(dim * kb),
            thread_scratch(scratch_slot::attention_scores).get(attention_blocking::rows_max * kb),
            thread_scratch(scratch_slot::attention_v).get(kb * dim_pad)};
  }
};

/// x = scale·s (+ mask) on columns [c0, c1) of one score row, in place; returns the largest x.
template <class S, class M>
float scale_and_mask(float* s, std::size_t c0, std::size_t c1, float scale, const M* mask) {
  using io = simd_io<S>;
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const vec vscale = S::set(scale);
  vec vmax = S::set(-std::numeric_limits<float>::infinity());
  std::size_t j = c0;
  for (; j + L <= c1; j += L) {
    vec x = S::mul(S::load(s + j), vscale);
    if (mask) x = S::add(x, io::load(mask + j));
    S::store(s + j, x);
    vmax = S::max(vmax, x);
  }
  float best = S::reduce_max(vmax);
  if (j < c1) {
    const std::size_t n = c1 - j;
    vec x = S::mul(S::load_n(s + j, n), vscale);
    if (mask) x = S::add(x, io::load_n(mask + j, n));
    S::store_n(s + j, x, n);
    for (; j < c1; ++j) best = std::max(best, s[j]);  // the zero lanes past n must not count
  }
  return best;
}

/// The largest raw score on columns [c0, c1) of one score row.
template <class S>
float row_max(const float* s, std::size_t c0, std::size_t c1) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  vec vmax = S::set(-std::numeric_limits<float>::infinity());
  std::size_t j = c0;
  for (; j + L <= c1; j += L) vmax = S::max(vmax, S::load(s + j));
  float best = S::reduce_max(vmax);
  for (; j < c1; ++j) best = std::max(best, s[j]);
  return best;
}

/// The logits x = scale·s (+ mask) of columns [c0, c1) of one raw score row: their largest value (−inf for
/// an empty range), and the factor exponentiate must still apply to the row. Without a mask and with
/// scale > 0 the row stays raw (max x = scale · max s, and scale·s is formed inside exponentiate's FMA: one
/// pass over the row less); otherwise x is written in place and the factor is 1.
struct row_logits {
  float max;
  float pending_scale;
};

template <class S>
row_logits logits_of(float* s, std::size_t c0, std::size_t c1, float scale, const any_view& mask,
                     std::size_t mask_offset) {
  if (c0 >= c1) return {-std::numeric_limits<float>::infinity(), 1.0f};
  if (!mask && scale > 0.0f) return {scale * row_max<S>(s, c0, c1), scale};
  if (!mask) return {scale_and_mask<S, float>(s, c0, c1, scale, nullptr), 1.0f};
  if (mask.type() == dtype::f32)
    return {scale_and_mask<S>(s, c0, c1, scale, static_cast<const float*>(mask.data()) + mask_offset), 1.0f};
  return {scale_and_mask<S>(s, c0, c1, scale, static_cast<const bf16*>(mask.data()) + mask_offset), 1.0f};
}

/// P = e^(a·s − m) on [c0, c1) (a = the logits' pending scale), 0 elsewhere in [0, kb); returns Σ P.
template <class S>
float exponentiate(float* p, std::size_t c0, std::size_t c1, std::size_t kb, float a, float m) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const vec va = S::set(a), neg_m = S::set(-m);
  vec sum = S::zero();
  std::size_t j = c0;
  for (; j + L <= c1; j += L) {
    const vec e = S::exp(S::fma(S::load(p + j), va, neg_m));
    S::store(p + j, e);
    sum = S::add(sum, e);
  }
  if (j < c1) {
    const std::size_t n = c1 - j;
    S::store_n(p + j, S::exp(S::fma(S::load_n(p + j, n), va, neg_m)), n);
    sum = S::add(sum, S::load_n(p + j, n));  // reload: the lanes past n are 0, not e^(0 − m)
  }
  std::fill(p, p + c0, 0.0f);
  std::fill(p + c1, p + kb, 0.0f);
  return S::reduce_add(sum);
}

/// Readies keys [j0, j0 + kb) of (batch b, kv head hk) for any number of tiles: Kᵀ [D, kb] packed into
/// NR-wide micro-panels (k contiguous: the fast 16 × 16 transpose for fp32; bf16 widened on the way), and a
/// bf16 V block widened to fp32 (an fp32 V block is read in place). Returns the V block and its row stride.
template <class S, class T>
std::pair<const float*, std::size_t> prepare_block(const attention_workspace& ws, tensor_view<const T, 4> k,
                                                   tensor_view<const T, 4> v, std::size_t b, std::size_t hk,
                                                   std::size_t j0, std::size_t kb, std::size_t dim_pad) {
  constexpr std::size_t NR = gemm_tile<S>::nr;
  const std::size_t dim = k.extent(3);
  const tensor_view<const T, 2> kt_view{&k(b, hk, j0, 0), {dim, kb}, {k.stride(3), k.stride(2)}};
  for (std::size_t jp = 0; jp < kb; jp += NR) pack_b_micro_panel<S, false>(kt_view, jp, std::min(NR, kb - jp), ws.kt + jp * dim);
  if constexpr (std::is_same_v<T, float>) {
    return {&v(b, hk, j0, 0), v.stride(2)};
  } else {
    for (std::size_t j = 0; j < kb; ++j) simd_io<S>::widen(&v(b, hk, j0 + j, 0), dim, ws.v + j * dim_pad);
    return {ws.v, dim_pad};
  }
}

/// Keys [j0, j0 + kb), readied by prepare_block (ws.kt, and the V block `vb` with row stride `ldv`), into
/// every row of `t`.
template <class S>
void attend_prepared_block(attention_rows& t, const attention_workspace& ws, const float* vb, std::size_t ldv,
                           std::size_t j0, std::size_t kb, float scale, const any_view& mask) {
  constexpr std::size_t KB = attention_blocking::kb;
  const std::size_t dim = t.dim, dp = t.dim_pad, rows = t.count;
  float* s = ws.scores;  // [rows, KB]
  const float* a_q = t.q;
  brgemm_tile<S>(1, &a_q, dp, brgemm_b{&ws.kt, 0, true}, rows, kb, dim, s, KB, /*overwrite=*/true);

  for (std::size_t r = 0; r < rows; ++r) {
    float* pr = s + r * KB;
    const std::size_t c0 = std::clamp(t.keys[r].first, j0, j0 + kb) - j0;
    const std::size_t c1 = std::clamp(t.keys[r].last, j0, j0 + kb) - j0;
    const row_logits x = logits_of<S>(pr, c0, c1, scale, mask, t.mask_row[r] + j0);
    const float m_new = std::max(t.m[r], x.max);
    if (m_new == -std::numeric_limits<float>::infinity()) {  // nothing finite seen yet: P = 0, state unchanged
      std::fill(pr, pr + kb, 0.0f);
      continue;
    }
    const float correction = std::exp(t.m[r] - m_new);  // e^(−inf) = 0 on the first finite block
    t.l[r] = t.l[r] * correction + exponentiate<S>(pr, c0, c1, kb, x.pending_scale, m_new);
    t.m[r] = m_new;
    if (correction != 1.0f) {
      float* acc = t.acc + r * dp;
      const typename S::vec c = S::set(correction);
      for (std::size_t d = 0; d < dp; d += S::lanes) S::store(acc + d, S::mul(c, S::load(acc + d)));
    }
  }

  // acc += P·V.
  const float* a_p = s;
  brgemm_tile<S>(1, &a_p, KB, brgemm_b{&vb, ldv, false}, rows, dim, kb, t.acc, dp);
}

/// Keys [j0, j0 + kb) of (batch b, kv head hk) into every row of `t`.
template <class S, class T>
void attend_block(attention_rows& t, const attention_workspace& ws, tensor_view<const T, 4> k,
                  tensor_view<const T, 4> v, std::size_t b, std::size_t hk, std::size_t j0, std::size_t kb,
                  float scale, const any_view& mask) {
  const auto [vb, ldv] = prepare_block<S>(ws, k, v, b, hk, j0, kb, t.dim_pad);
  attend_prepared_block<S>(t, ws, vb, ldv, j0, kb, scale, mask);
}

/// Loads row r of a tile: query (b, h, i), zero accumulator, empty statistics, its key range and mask row.
template <class S, class T>
void load_row(attention_rows& t, std::size_t r, tensor_view<const T, 4> q, std::size_t b, std::size_t h,
              std::size_t i, std::size_t seq_kv, const attention_options& opts) {
  simd_io<S>::widen(&q(b, h, i, 0), t.dim, t.q + r * t.dim_pad);
  std::fill(t.acc + r * t.dim_pad, t.acc + (r + 1) * t.dim_pad, 0.0f);
  t.m[r] = -std::numeric_limits<float>::infinity();
  t.l[r] = 0.0f;
  t.keys[r] = detail::visible_key_range(i, b, q.extent(2), seq_kv, opts);
  t.mask_row[r] = opts.mask ? detail::mask_row_offset(opts.mask, b, h, i) : 0;
}

/// Runs every key block of the tile's key span (each row sees its own part of it).
template <class S, class T>
void attend_span(attention_rows& t, const attention_workspace& ws, tensor_view<const T, 4> k,
                 tensor_view<const T, 4> v, std::size_t b, std::size_t hk, detail::key_range span, float scale,
                 const any_view& mask) {
  for (std::size_t j0 = span.first; j0 < span.last; j0 += attention_blocking::kb)
    attend_block<S>(t, ws, k, v, b, hk, j0, std::min(attention_blocking::kb, span.last - j0), scale, mask);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
