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

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <type_traits>

#include "trellis/cpu/attention/tile.hpp"
#include "trellis/cpu/parallel.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

// ---- The in-place decode step (K and V rows contiguous in D) -------------------------------------------
//
// A task's chunk is ≤ 512 keys and ≤ 64 query rows, so a score per (row, key) fits in L1/L2 and the chunk
// needs no online rescale: one pass over K writes every raw score q·k (dot products on lanes over D, with
// the query rows of a group of ≤ 4 read from L1 and each K vector shared by them; one shuffle tree per 16
// keys turns 16 lane-vectors into 16 scores), then per row scale, mask, max, e^(x − max) and Σ, then one
// pass over V adds P·V into acc. K and V are read in place (no transposed packing) and only inside the
// tile's key span; the rows ahead of the one being read are software-prefetched.

// Both passes read their rows front to back, a whole 512-byte row (or two cache lines of it) at a time: an
// order that jumps between rows line by line — the score pass once read keys j and j + 1 a line each in
// turn, and P·V read half rows of 32 keys, then the other halves — defeats the hardware stream
// prefetcher (an isolated probe of the two-row pattern read DRAM at 14.6 GB/s against 20.3 GB/s for two
// lines per row at a time on one Zen 4 core), and the kernel then waits on DRAM instead of overlapping it.
template <class S>
struct decode_blocking {
  static constexpr std::size_t rows = 4;      // query rows per score register group (4 rows × 2 keys accumulators)
  static constexpr std::size_t pv_keys = 32;  // keys per P·V step: the V block stays in L1 across row groups
  static constexpr std::size_t pv_rows = 2;   // query rows per P·V register group ...
  // ... × pv_width vectors of D: 2 × 8 = 16 acc and 8 V vectors of the 32 zmm registers (a whole row at
  // D = 128); 2 × 4 = 8 acc and 4 V of the 16 ymm registers on AVX2, where 8 wide would spill.
  static constexpr std::size_t pv_width = S::lanes >= 16 ? 8 : 4;
};

/// Prefetches the bytes of one row (n elements of T) into L2.
template <class T>
inline void prefetch_row(const T* p, std::size_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  for (std::size_t o = 0; o < n * sizeof(T); o += 64) __builtin_prefetch(c + o, 0, 2);
}

/// s[g·ld + j] = q_g · k_j for G rows q_g (fp32, stride dp, zero past dim) and nk ≤ lanes keys k_j (stride
/// ks); lanes of s past nk are written as 0. Rows pf + j·pf_stride (j < nk) are prefetched into L2 when pf
/// is set. Dim is the head dim when the kernel is specialised for it (with_dim), else 0: dim and the row stride
/// dp are then the run-time arguments. With Dim known, both are constants (dp = padded_dim(Dim)), and the
/// addresses fold into displacements; a run-time dp cost most of with_dim's gain.
template <class S, std::size_t G, std::size_t Dim, class T>
void decode_dots(const float* q, std::size_t dp_at_run_time, const T* k, std::size_t ks, std::size_t nk,
                 const T* pf, std::size_t pf_stride, std::size_t dim_at_run_time, float* s, std::size_t ld) {
  using vec = typename S::vec;
  using io = simd_io<S>;
  constexpr std::size_t L = S::lanes;
  const std::size_t dim = Dim ? Dim : dim_at_run_time, dp = Dim ? padded_dim<S>(Dim) : dp_at_run_time;
  vec part[G][L];
  const std::size_t tail = dim % L, body = dim - tail;
  std::size_t j = 0;
  for (; j + 2 <= nk; j += 2) {
    const T* k0 = k + j * ks;
    const T* k1 = k0 + ks;
    if (pf) {
      prefetch_row(pf + j * pf_stride, dim);
      prefetch_row(pf + (j + 1) * pf_stride, dim);
    }
    vec a0[G], a1[G];
    for (std::size_t g = 0; g < G; ++g) a0[g] = a1[g] = S::zero();
    std::size_t d = 0;
    for (; d + 2 * L <= body; d += 2 * L) {
      vec x0 = io::load(k0 + d), y0 = io::load(k0 + d + L);
      pin_register(x0);
      pin_register(y0);
      vec x1 = io::load(k1 + d), y1 = io::load(k1 + d + L);
      pin_register(x1);
      pin_register(y1);
#pragma GCC unroll 4
      for (std::size_t g = 0; g < G; ++g) {
        vec qg = S::load(q + g * dp + d), rg = S::load(q + g * dp + d + L);
        pin_register(qg);  // one load of q for both keys, not one folded into each FMA
        pin_register(rg);
        a0[g] = S::fma(qg, x0, a0[g]);
        a1[g] = S::fma(qg, x1, a1[g]);
        a0[g] = S::fma(rg, y0, a0[g]);
        a1[g] = S::fma(rg, y1, a1[g]);
      }
    }
    for (; d < body; d += L) {
      vec x0 = io::load(k0 + d), x1 = io::load(k1 + d);
      pin_register(x0);
      pin_register(x1);
#pragma GCC unroll 4
      for (std::size_t g = 0; g < G; ++g) {
        const vec qg = S::load(q + g * dp + d);
        a0[g] = S::fma(qg, x0, a0[g]);
        a1[g] = S::fma(qg, x1, a1[g]);
      }
    }
    if (tail) {  // masked: never a byte past the row
      const vec x0 = io::load_n(k0 + body, tail), x1 = io::load_n(k1 + body, tail);
      for (std::size_t g = 0; g < G; ++g) {
        const vec qg = S::load(q + g * dp + body);
        a0[g] = S::fma(qg, x0, a0[g]);
        a1[g] = S::fma(qg, x1, a1[g]);
      }
    }
    for (std::size_t g = 0; g < G; ++g) {
      part[g][j] = a0[g];
      part[g][j + 1] = a1[g];
    }
  }
  if (j < nk) {
    const T* k0 = k + j * ks;
    if (pf) prefetch_row(pf + j * pf_stride, dim);
    vec a0[G];
    for (std::size_t g = 0; g < G; ++g) a0[g] = S::zero();
    for (std::size_t d = 0; d < body; d += L) {
      const vec x0 = io::load(k0 + d);
      for (std::size_t g = 0; g < G; ++g) a0[g] = S::fma(S::load(q + g * dp + d), x0, a0[g]);
    }
    if (tail) {
      const vec x0 = io::load_n(k0 + body, tail);
      for (std::size_t g = 0; g < G; ++g) a0[g] = S::fma(S::load(q + g * dp + body), x0, a0[g]);
    }
    for (std::size_t g = 0; g < G; ++g) part[g][j] = a0[g];
    ++j;
  }
  for (; j < L; ++j)
    for (std::size_t g = 0; g < G; ++g) part[g][j] = S::zero();
  for (std::size_t g = 0; g < G; ++g) S::store(s + g * ld, lane_sums<S>(part[g]));
}

/// acc[g·dp + d] += Σ_j p[g·ldp + j] · v_j[d] for G rows, nk keys v_j (stride vs), d in [d0, d0 + W·lanes) ∩
/// [0, dim): W vectors of acc per row held in registers across the keys. Rows pf + j·pf_stride (j < npf) are
/// prefetched into L2. Dim, dim and dp as for decode_dots.
template <class S, std::size_t G, std::size_t W, std::size_t Dim, class T>
void decode_pv(const float* p, std::size_t ldp, const T* v, std::size_t vs, std::size_t nk, const T* pf,
               std::size_t pf_stride, std::size_t npf, std::size_t d0, std::size_t dim_at_run_time, float* acc,
               std::size_t dp_at_run_time) {
  using vec = typename S::vec;
  using io = simd_io<S>;
  constexpr std::size_t L = S::lanes;
  const std::size_t dim = Dim ? Dim : dim_at_run_time, dp = Dim ? padded_dim<S>(Dim) : dp_at_run_time;
  const bool full = d0 + W * L <= dim;  // else W = 1 and the vector is masked
  const std::size_t n = full ? L : dim - d0;
  vec a[G][W];
  for (std::size_t g = 0; g < G; ++g)
    for (std::size_t w = 0; w < W; ++w) a[g][w] = S::load(acc + g * dp + d0 + w * L);
  for (std::size_t j = 0; j < nk; ++j) {
    const T* vj = v + j * vs + d0;
    if (j < npf) prefetch_row(pf + j * pf_stride, dim);
    vec x[W];
    if (full) {
      for (std::size_t w = 0; w < W; ++w) {
        x[w] = io::load(vj + w * L);
        pin_register(x[w]);
      }
    } else {
      x[0] = io::load_n(vj, n);
    }
#pragma GCC unroll 4
    for (std::size_t g = 0; g < G; ++g) {
      const vec pg = S::set(p[g * ldp + j]);
      for (std::size_t w = 0; w < W; ++w) a[g][w] = S::fma(pg, x[w], a[g][w]);
    }
  }
  for (std::size_t g = 0; g < G; ++g)
    for (std::size_t w = 0; w < W; ++w) S::store(acc + g * dp + d0 + w * L, a[g][w]);
}

/// Calls f(std::integral_constant<size_t, G>) for G = n ∈ [1, Max], Max ≤ 4.
template <std::size_t Max, class F>
void with_rows(std::size_t n, F&& f) {
  static_assert(Max >= 1 && Max <= 4);
  if (n >= Max) return f(std::integral_constant<std::size_t, Max>{});
  if constexpr (Max > 1) with_rows<Max - 1>(n, f);
}

/// Calls f(std::integral_constant<size_t, D>) with D = dim for the head dims that get a kernel of their own
/// (64 and 128), else with D = 0: the kernels then take dim at run time. With D known, the loops over D
/// unroll and their bounds and tails fold away: decode from L3 (KV 1024, H 32, Hkv 8, D 128, one thread)
/// 0.237 → 0.217 ms (min of 4 alternated runs). From DRAM the rate stayed within the noise: with its
/// software prefetch the kernel waits on the core's miss buffers there, not on its instructions.
template <class S, class F>
void with_dim(std::size_t dim, F&& f) {
  if (dim == 128) return f(std::integral_constant<std::size_t, 128>{});
  if (dim == 64) return f(std::integral_constant<std::size_t, 64>{});
  f(std::integral_constant<std::size_t, 0>{});
}

/// Keys `mine` (≤ chunk keys) of (batch b, kv head hk) into every row of `t` (fresh: m = −inf, l = 0, acc
/// = 0), K and V read in place (stride(3) == 1). Keys [mine.first, ahead_end) may be prefetched.
template <class S, std::size_t Dim, class T>
void decode_chunk(attention_rows& t, tensor_view<const T, 4> k, tensor_view<const T, 4> v, std::size_t b,
                  std::size_t hk, detail::key_range mine, std::size_t ahead_end, float scale, const any_view& mask) {
  using blk = attention_blocking;
  using dblk = decode_blocking<S>;
  constexpr std::size_t L = S::lanes, ld = blk::chunk;
  static_assert(ld % L == 0, "score rows hold whole vectors");
  const std::size_t n = mine.last - mine.first, rows = t.count, dim = Dim ? Dim : t.dim, dp = t.dim_pad;
  // DRAM stays busy while the core computes: the score pass over K pulls the chunk's V into L2, and the
  // P·V pass pulls the K of the keys after the chunk (up to ahead_end, inside the tile's key span).
  const std::size_t next_keys = std::min(ahead_end - mine.last, n);
  float* s = thread_scratch(scratch_slot::attention_scores).get(blk::rows_max * ld);
  for (std::size_t r = 0; r < rows; ++r) std::fill(t.q + r * dp + dim, t.q + (r + 1) * dp, 0.0f);

  // Scores: one pass over the chunk's K, every row group per 16-key block (the block stays in L1).
  const T* k0 = &k(b, hk, mine.first, 0);
  const std::size_t ks = k.stride(2), vs = v.stride(2);
  for (std::size_t jb = 0; jb < n; jb += L)
    for (std::size_t g0 = 0; g0 < rows; g0 += dblk::rows)
      with_rows<dblk::rows>(rows - g0, [&](auto g) {
        decode_dots<S, g(), Dim>(t.q + g0 * dp, dp, k0 + jb * ks, ks, std::min(L, n - jb),
                                 g0 == 0 ? &v(b, hk, mine.first + jb, 0) : nullptr, vs, dim, s + g0 * ld + jb, ld);
      });

  // Softmax statistics of the chunk per row; P in place, 0 outside the row's visible keys.
  bool any = false;
  for (std::size_t r = 0; r < rows; ++r) {
    float* pr = s + r * ld;
    const std::size_t c0 = std::clamp(t.keys[r].first, mine.first, mine.last) - mine.first;
    const std::size_t c1 = std::clamp(t.keys[r].last, mine.first, mine.last) - mine.first;
    const row_logits x = logits_of<S>(pr, c0, c1, scale, mask, t.mask_row[r] + mine.first);
    if (x.max == -std::numeric_limits<float>::infinity()) {  // nothing finite: P = 0, state stays empty
      std::fill(pr, pr + n, 0.0f);
      continue;
    }
    t.m[r] = x.max;
    t.l[r] = exponentiate<S>(pr, c0, c1, n, x.pending_scale, x.max);
    any = true;
  }
  if (!any) return;  // V is not read at all

  // acc += P·V: one pass over the chunk's V in blocks of pv_keys, every row group and D piece per block.
  const T* v0 = &v(b, hk, mine.first, 0);
  for (std::size_t jb = 0; jb < n; jb += dblk::pv_keys) {
    const std::size_t nk = std::min(dblk::pv_keys, n - jb);
    for (std::size_t g0 = 0; g0 < rows; g0 += dblk::pv_rows)
      with_rows<dblk::pv_rows>(rows - g0, [&](auto g) {
        // The first piece of the first group prefetches the next keys' K rows (same count as this block).
        const std::size_t npf = g0 == 0 && jb < next_keys ? std::min(nk, next_keys - jb) : 0;
        const T* pf = npf ? &k(b, hk, mine.last + jb, 0) : nullptr;
        std::size_t d0 = 0;
        const auto pieces = [&](auto width) {  // D in pieces of `width` vectors while they fit
          constexpr std::size_t W = decltype(width)::value;
          for (; d0 + W * L <= dim || (W == 1 && d0 < dim); d0 += W * L, pf = nullptr)
            decode_pv<S, g(), W, Dim>(s + g0 * ld + jb, ld, v0 + jb * vs, vs, nk, pf, ks, pf ? npf : 0, d0, dim,
                                      t.acc + g0 * dp, dp);
        };
        pieces(std::integral_constant<std::size_t, dblk::pv_width>{});
        pieces(std::integral_constant<std::size_t, dblk::pv_width / 2>{});  // D = 64, or the rest of D
        pieces(std::integral_constant<std::size_t, 1>{});                   // the last vectors, the masked tail
      });
  }
}

template <class S, class T, class TO>
void decode_attention(int threads, tensor_view<const T, 4> q, tensor_view<const T, 4> k, tensor_view<const T, 4> v,
                      tensor_view<TO, 4> o, float scale, const attention_options& opts) {
  using blk = attention_blocking;
  constexpr std::size_t L = S::lanes;
  const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
  const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2), group = heads / kv_heads;
  const std::size_t dp = padded_dim<S>(dim);
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
    if (!mine.empty()) {
      if (k.stride(3) == 1 && v.stride(3) == 1)
        with_dim<S>(dim, [&](auto d) { decode_chunk<S, d()>(t, k, v, b, hk, mine, span.last, scale, opts.mask); });
      else
        attend_span<S>(t, attention_workspace::get(dim, dp), k, v, b, hk, mine, scale, opts.mask);
    }
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
