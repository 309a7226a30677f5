#pragma once
// flash_attention_fwd: flash attention forward on the NeuronCore model, written against the ISA as the
// public NKI sample `flash_fwd` is structured [trainium.md, "Flash attention forward"]:
//
//   O = softmax(scale·Q·Kᵀ)·V for each query head of a kv head group, Q [Sq, d], K, V [Skv, d] row-major.
//
// Per group (one batch, one kv head, the G = H / Hkv query heads that share it), per tile of 128 query rows:
//
//   Qᵀ [d, 128]           head dim d ≤ 128 on partitions (the contraction axis of QKᵀ)
//   for each KV block of 2048 keys (one online-softmax step), for each head g of the group:
//     S chunk = QKᵀ        nc_matmul(dst [128 q, 512 keys] PSUM (one bank), stationary Qᵀ [d, 128],
//                          moving Kᵀ [d, 512]); chunks past every row's causal limit are never computed
//     diagonal chunks     tensor_copy to SBUF, affine_select (GpSimd cannot reach PSUM) keeps key j ≤ i + Skv − Sq
//     row max             tensor_reduce(max) per chunk on Vector, then one negated tensor_reduce over the chunks
//     m_new               −m_new = min(scale·(−max), −m_old): one tensor_scalar
//     P = exp(..), Σ      one Scalar activation per chunk: exp(scale·S − m_new) with reduce_out = row sums,
//                          P rounded to bf16 for the PV matmul; Σ stays fp32
//     Pᵀ                  nc_transpose of 128 × 128 pieces on the Tensor Engine into PSUM, evicted by Vector
//     O_blk = P·V         nc_matmul(dst [128 q, d] PSUM, stationary Pᵀ [128 keys, 128 q], moving V [128 keys, d]),
//                          accumulated in PSUM over the whole block
//     rescale             α = exp(m_old − m_new) (Scalar); l = α·l + Σ; acc = α·acc + O_blk (Vector)
//   O = acc / l           division by the row sum at the end; row log-sum-exp m + log l if asked
//
// Numerics: every matmul is bf16 × bf16 → fp32 PSUM; the softmax statistics (m, l, α) and the output
// accumulator are fp32. fp32 inputs are rounded to bf16 (nearest even) by the DMA that loads them — the
// kernel's one numerics choice beyond flash_fwd's: fp32 matmuls would run at ¼ rate, and bf16 is what the
// hardware kernel feeds the PE array. So an fp32 input's logits carry the bf16 rounding of q and k.
//
// Masking and fully masked rows: the running max starts at the floor −FLT_MAX (not −inf), masked logits
// are −inf. A row that sees no key in a block keeps m = the floor (or its earlier max), its P entries are
// exp(−inf) = 0 and α = exp(0) = 1, so nothing is NaN; a row that never sees a key ends with acc = l = 0
// and is divided by max(l, FLT_MIN): 0. A query tile none of whose rows sees a key is written as zeros
// without any compute. Causal alignment (the library's, ops/attention.hpp): query i sees keys
// j ≤ i + (Skv − Sq); a group's `keys` (a key length) also hides keys j ≥ keys, by never loading them.
//
// Getting Qᵀ and Kᵀ ([d, S] from row-major [S, d] HBM): a transposing DMA on machines that have one
// (2-byte data: bf16 inputs on trn2/trn3); otherwise rows are loaded [128, d] (cast to bf16 by the DMA),
// transposed on the Tensor Engine into PSUM and copied to SBUF — time the report shows.
//
// K/V reuse: when Kᵀ and V of a whole kv head fit `resident_kv_bytes` per partition, they are loaded once
// per group and every query tile and head of the group reads them from SBUF; otherwise each query tile
// streams them a KV block at a time (once per block for all G heads).

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/isa.hpp"

namespace trellis::systolic::kernels {

/// Tile sizes and buffer counts of flash_attention_fwd. The defaults are flash_fwd's tiles.
struct attention_policy {
  std::size_t q_tile = 128;     ///< query rows per tile: the partitions of S and O (≤ 128)
  std::size_t key_chunk = 512;  ///< keys per QKᵀ matmul: [128, 512] fp32 is one PSUM bank (≤ 512, multiple of 128)
  std::size_t kv_block = 2048;  ///< keys per online-softmax step (flash_fwd's LARGE_TILE_SZ); multiple of key_chunk
  /// Kᵀ + V of one kv head (bf16, bytes per partition: 2·Skv + 2·d·⌈Skv/128⌉) at most this: loaded once per
  /// group and kept in SBUF; more: streamed per query tile a KV block at a time.
  std::size_t resident_kv_bytes = 48 * 1024;

  // Buffer counts (rotating pools; each is the reason the named overlap can happen):
  std::size_t kv_bufs = 2;     ///< Kᵀ/V tiles (a group's, or a block's): the next group/block loads during this one
  std::size_t q_bufs = 2;      ///< Qᵀ of a query tile's G heads: the next tile's Q loads during this one
  std::size_t state_bufs = 2;  ///< acc [128, G·d] and m, l, α per query tile: finishing one tile overlaps the next
  std::size_t score_bufs = 4;  ///< PSUM banks of S chunks: a whole 2048-key block (4 × 512) is live until its exps
  std::size_t mask_bufs = 2;   ///< SBUF copies of diagonal S chunks for affine_select
  std::size_t p_bufs = 4;      ///< bf16 P chunks: the Scalar engine's exps run up to a block ahead of the transposes
  std::size_t pt_bufs = 2;     ///< PSUM transpose targets (Pᵀ pieces; Qᵀ/Kᵀ without DMA transpose): transpose
                               ///< the next chunk while the Vector engine evicts this one
  std::size_t pv_bufs = 2;     ///< PSUM [128, d] P·V accumulators: the next step's PV while this one is folded in
  std::size_t stat_bufs = 2;   ///< per-step [128, ·] statistics (chunk maxima, row sums): one step may overlap the next
  std::size_t stage_bufs = 4;  ///< row-major [128, d] staging of Q/K for Tensor Engine transposes (DMA ahead)
  std::size_t out_bufs = 2;    ///< output [128, d] (and lse) tiles: the store of one overlaps the next division
};

/// One kv head of one batch and the query heads that read it (GQA: G = H / Hkv of them; MHA: 1).
template <class T, class TO>
struct attention_head_group {
  hbm<const T> k, v;            ///< [Skv, d]
  std::size_t keys = 0;         ///< keys j < keys are visible (a key length; Skv when there is none)
  std::vector<hbm<const T>> q;  ///< G × [Sq, d]
  std::vector<hbm<TO>> o;       ///< G × [Sq, d]
  std::vector<hbm<float>> lse;  ///< G × [Sq, 1] row log-sum-exp, or empty
};

struct attention_params {
  float scale = 1.0f;   ///< softmax scale (non-zero; with causal masking it multiplies ±inf)
  bool causal = false;  ///< query i sees keys j ≤ i + (Skv − Sq)
};

namespace detail {

inline void check_attention_policy(const attention_policy& p, const machine_spec& spec) {
  auto fail = [&](const std::string& what) {
    raise_error("flash_attention_fwd: policy " + what + " on " + std::string(spec.name));
  };
  if (p.q_tile == 0 || p.q_tile > spec.matmul.pe_columns)
    fail("q_tile " + std::to_string(p.q_tile) + " is outside 1.." + std::to_string(spec.matmul.pe_columns) +
         " (the query rows are the stationary free size of QKᵀ and the partitions of S)");
  if (p.key_chunk == 0 || p.key_chunk % 128 != 0 || p.key_chunk > spec.matmul.moving_free_max_fp32_out)
    fail("key_chunk " + std::to_string(p.key_chunk) + " is not a multiple of 128 up to " +
         std::to_string(spec.matmul.moving_free_max_fp32_out) + " (one fp32 PSUM bank of moving keys)");
  if (p.kv_block == 0 || p.kv_block % p.key_chunk != 0)
    fail("kv_block " + std::to_string(p.kv_block) + " is not a multiple of key_chunk " + std::to_string(p.key_chunk));
  for (std::size_t b : {p.kv_bufs, p.q_bufs, p.state_bufs, p.score_bufs, p.mask_bufs, p.p_bufs, p.pt_bufs, p.pv_bufs,
                        p.stat_bufs, p.stage_bufs, p.out_bufs})
    if (b == 0) fail("has a buffer count of 0 (every pool needs at least one buffer)");
}

}  // namespace detail

/// Flash attention forward over `groups` (see the file comment). All groups share Sq, Skv and d.
template <class Machine, class T, class TO>
void flash_attention_fwd(core<Machine>& nc, const std::vector<attention_head_group<T, TO>>& groups,
                         attention_params params, attention_policy policy = {}) {
  using namespace trellis::systolic::isa;
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>, "flash_attention_fwd: q, k, v are float or bf16");
  static_assert(std::is_same_v<TO, float> || std::is_same_v<TO, bf16>, "flash_attention_fwd: o is float or bf16");
  // Qᵀ/Kᵀ by a transposing DMA where the machine has one and the data is 2-byte; else on the Tensor Engine,
  // whose transpose keeps bf16 on v3+ (bit-exact mode) and writes fp32 on v2 (identity matmul).
  constexpr bool dma_transpose = Machine::spec.dma.transpose_2byte && sizeof(T) == 2;
  using pt_type = std::conditional_t<Machine::spec.matmul.bit_exact_transpose, bf16, float>;
  const machine_spec& spec = nc.spec();
  constexpr std::size_t pe = 128;  // keys per Pᵀ piece and per V piece: the PE array's rows

  detail::check_attention_policy(policy, spec);
  if (groups.empty()) return;
  if (params.scale == 0.0f && params.causal)
    raise_error("flash_attention_fwd: scale 0 with causal masking (0 · −inf is NaN in the exp's input)");
  const std::size_t heads = groups[0].q.size();
  const std::size_t sq = heads ? groups[0].q[0].extent(0) : 0, d = heads ? groups[0].q[0].extent(1) : 0;
  const std::size_t skv = groups[0].k.extent(0);
  for (const auto& g : groups) {
    bool ok = g.q.size() == heads && g.o.size() == heads && (g.lse.empty() || g.lse.size() == heads) &&
              g.k.extent(0) == skv && g.v.extent(0) == skv && g.k.extent(1) == d && g.v.extent(1) == d && g.keys <= skv;
    for (std::size_t h = 0; ok && h < heads; ++h)
      ok = g.q[h].extent(0) == sq && g.q[h].extent(1) == d && g.o[h].extent(0) == sq && g.o[h].extent(1) == d &&
           (g.lse.empty() || (g.lse[h].extent(0) == sq && g.lse[h].extent(1) == 1));
    if (!ok)
      raise_error("flash_attention_fwd: every group needs G query/output heads [Sq, d], K and V [Skv, d], lse [Sq, 1] "
                  "or none, and keys <= Skv (Sq = " + std::to_string(sq) + ", Skv = " + std::to_string(skv) +
                  ", d = " + std::to_string(d) + ", G = " + std::to_string(heads) + ")");
  }
  if (heads == 0 || sq == 0 || d == 0) return;
  if (d > spec.matmul.pe_rows)
    raise_error("flash_attention_fwd: head dim " + std::to_string(d) + " exceeds " + std::to_string(spec.matmul.pe_rows) +
                " on " + spec.name + " (d lies on the partitions of Qᵀ and Kᵀ: the contraction of QKᵀ)");

  const float scale = params.scale;
  // The largest scaled logit is scale·max(S) for scale > 0 and scale·min(S) for scale < 0; masked logits are
  // the value whose scaled version is −inf.
  const alu_op extreme = scale > 0 ? alu_op::max : alu_op::min;
  const float masked = scale > 0 ? -INFINITY : INFINITY;
  const std::int64_t causal_offset = static_cast<std::int64_t>(skv) - static_cast<std::int64_t>(sq);
  const std::size_t q_tile = policy.q_tile, chunk = policy.key_chunk, block = policy.kv_block;
  const std::size_t chunks_per_block = block / chunk;

  // Keys row i of a group with `keys` visible keys sees: [0, visible(i)).
  auto visible = [&](std::size_t i, std::size_t keys) -> std::size_t {
    if (!params.causal) return keys;
    const std::int64_t limit = static_cast<std::int64_t>(i) + 1 + causal_offset;
    return limit <= 0 ? 0 : std::min(keys, static_cast<std::size_t>(limit));
  };

  // K/V storage: a whole kv head (resident) or one KV block (streamed). V keeps keys on partitions in pieces of
  // 128: piece t of the tile is columns [t·d, (t + 1)·d).
  const std::size_t skv_pad = std::max<std::size_t>(pe, (skv + pe - 1) / pe * pe);
  const bool resident = 2 * skv_pad + 2 * d * (skv_pad / pe) <= policy.resident_kv_bytes;
  const std::size_t kv_keys = resident ? skv_pad : block;
  auto kt_pool = nc.sbuf.template pool<bf16>({d, kv_keys}, policy.kv_bufs);           // [d, keys] Kᵀ
  auto v_pool = nc.sbuf.template pool<bf16>({pe, kv_keys / pe * d}, policy.kv_bufs);  // [128 keys, pieces·d] V
  auto q_pool = nc.sbuf.template pool<bf16>({d, heads * q_tile}, policy.q_bufs);      // [d, G·128] Qᵀ per head
  auto acc_pool = nc.sbuf.template pool<float>({q_tile, heads * d}, policy.state_bufs);  // [128, G·d] Σ P·V
  // Per head g: columns 4g, 4g + 1: −m (ping-pong between steps: old and new), 4g + 2: l, 4g + 3: α.
  auto state_pool = nc.sbuf.template pool<float>({q_tile, heads * 4}, policy.state_bufs);
  // Per step: the chunk extremes, the chunk row sums, −max of the block, Σ of the block.
  auto stat_pool = nc.sbuf.template pool<float>({q_tile, 2 * chunks_per_block + 2}, policy.stat_bufs);
  auto score_pool = nc.psum.template pool<float>({q_tile, chunk}, policy.score_bufs);  // [128, 512] S: one bank
  auto mask_pool = nc.sbuf.template pool<float>({q_tile, chunk}, policy.mask_bufs);    // [128, 512] masked S
  auto p_pool = nc.sbuf.template pool<bf16>({q_tile, chunk}, policy.p_bufs);           // [128 q, 512 keys] P
  auto pt_pool = nc.psum.template pool<pt_type>({pe, std::max(chunk, pe)}, policy.pt_bufs);  // [128 keys, pieces·128 q]
  auto ptsb_pool = nc.sbuf.template pool<bf16>({pe, chunk / pe * q_tile}, policy.pt_bufs);    // Pᵀ in SBUF
  auto pv_pool = nc.psum.template pool<float>({q_tile, d}, policy.pv_bufs);            // [128 q, d] P·V
  auto stage_pool = nc.sbuf.template pool<bf16>({pe, d}, policy.stage_bufs);           // [128 rows, d]
  auto out_pool = nc.sbuf.template pool<TO>({q_tile, d}, policy.out_bufs);             // [128 q, d] O
  auto lse_pool = nc.sbuf.template pool<float>({q_tile, 1}, policy.out_bufs);          // [128 q, 1] lse

  // Kᵀ [d, w] (into kt_dst) and V (into v_dst's pieces from piece0) of keys [k0, k0 + w).
  auto load_kv = [&](const attention_head_group<T, TO>& g, const region& kt_dst, const region& v_dst, std::size_t piece0,
                     std::size_t k0, std::size_t w) {
    if constexpr (dma_transpose) {
      dma_copy(nc, kt_dst, g.k.tile(k0, 0, w, d), {.transpose = true});  // [w, d] → [d, w] on the way
    } else {
      for (std::size_t c0 = 0; c0 < w; c0 += chunk) {  // 4 pieces per PSUM bank, one eviction per chunk
        const std::size_t wc = std::min(chunk, w - c0);
        auto& pt = pt_pool.next();
        for (std::size_t t0 = 0; t0 < wc; t0 += pe) {
          const std::size_t wt = std::min(pe, wc - t0);
          const region rows = stage_pool.next().sub(0, wt, 0, d);  // [wt keys, d] bf16 (the DMA casts)
          dma_copy(nc, rows, g.k.tile(k0 + c0 + t0, 0, wt, d));
          nc_transpose(nc, pt.sub(0, d, t0, wt), rows);            // [d, wt]
        }
        tensor_copy(nc, kt_dst.sub(0, d, c0, wc), pt.sub(0, d, 0, wc));
      }
    }
    for (std::size_t t0 = 0; t0 < w; t0 += pe) {  // V pieces [128 keys, d]: keys stay on partitions
      const std::size_t wt = std::min(pe, w - t0);
      dma_copy(nc, v_dst.sub(0, wt, (piece0 + t0 / pe) * d, d), g.v.tile(k0 + t0, 0, wt, d));
    }
  };

  for (const auto& g : groups) {
    // Keys any row of the group sees: the last row's range.
    const std::size_t group_keys = visible(sq - 1, g.keys);
    tile<bf16>* kt = nullptr;
    tile<bf16>* vt = nullptr;
    if (resident && group_keys > 0) {
      kt = &kt_pool.next();
      vt = &v_pool.next();
      for (std::size_t k0 = 0; k0 < group_keys; k0 += block) {  // block by block: the first block's compute starts early
        const std::size_t w = std::min(block, group_keys - k0);
        load_kv(g, kt->sub(0, d, k0, w), *vt, k0 / pe, k0, w);
      }
    }

    for (std::size_t q0 = 0; q0 < sq; q0 += q_tile) {
      const std::size_t r = std::min(q_tile, sq - q0);
      const std::size_t tile_keys = visible(q0 + r - 1, g.keys);  // the tile's last row sees the most
      if (tile_keys == 0) {  // no row of this tile sees a key: O = 0, lse = −inf, nothing to compute
        const region zero = out_pool.next().sub(0, r, 0, d);
        memset(nc, zero, 0.0f);
        const region none = lse_pool.next().sub(0, r, 0, 1);
        if (!g.lse.empty()) memset(nc, none, -INFINITY);
        for (std::size_t h = 0; h < heads; ++h) {
          dma_copy(nc, g.o[h].tile(q0, 0, r, d), zero);
          if (!g.lse.empty()) dma_copy(nc, g.lse[h].tile(q0, 0, r, 1), none);
        }
        continue;
      }

      // Qᵀ [d, r] of every head of the group.
      auto& qt = q_pool.next();
      for (std::size_t h = 0; h < heads; ++h) {
        const region dst = qt.sub(0, d, h * q_tile, r);
        if constexpr (dma_transpose) {
          dma_copy(nc, dst, g.q[h].tile(q0, 0, r, d), {.transpose = true});
        } else {
          const region rows = stage_pool.next().sub(0, r, 0, d);  // [r, d] bf16 (the DMA casts)
          dma_copy(nc, rows, g.q[h].tile(q0, 0, r, d));
          const region pt = pt_pool.next().sub(0, d, 0, r);
          nc_transpose(nc, pt, rows);
          tensor_copy(nc, dst, pt);
        }
      }
      auto& acc = acc_pool.next();
      auto& state = state_pool.next();

      std::size_t step = 0;
      for (std::size_t k0 = 0; k0 < tile_keys; k0 += block, ++step) {
        const std::size_t wb = std::min(block, tile_keys - k0);
        region kt_blk, v_blk;
        std::size_t v_piece0 = 0;
        if (resident) {
          kt_blk = kt->sub(0, d, k0, wb);
          v_blk = vt->view();
          v_piece0 = k0 / pe;
        } else {  // streamed: this block's K/V, shared by the G heads
          kt_blk = kt_pool.next().sub(0, d, 0, wb);
          v_blk = v_pool.next().view();
          load_kv(g, kt_blk, v_blk, 0, k0, wb);
        }
        const std::size_t n_chunks = (wb + chunk - 1) / chunk;

        for (std::size_t h = 0; h < heads; ++h) {
          const region q_t = qt.sub(0, d, h * q_tile, r);             // [d, r] stationary
          const region neg_m_new = state.sub(0, r, 4 * h + step % 2, 1);
          const region neg_m_old = state.sub(0, r, 4 * h + (step + 1) % 2, 1);
          const region l = state.sub(0, r, 4 * h + 2, 1);
          const region alpha = state.sub(0, r, 4 * h + 3, 1);
          const region acc_h = acc.sub(0, r, h * d, d);               // [r, d]
          auto& stats = stat_pool.next();
          const region extremes = stats.sub(0, r, 0, n_chunks);       // [r, chunks] row max (min) per chunk
          const region row_sums = stats.sub(0, r, chunks_per_block, n_chunks);
          const region neg_max = stats.sub(0, r, 2 * chunks_per_block, 1);
          const region block_sum = stats.sub(0, r, 2 * chunks_per_block + 1, 1);

          // S = Q·Kᵀ chunk by chunk (one PSUM bank each), masked on diagonal chunks, and each chunk's row max.
          std::vector<region> scores(n_chunks);
          for (std::size_t c = 0; c < n_chunks; ++c) {
            const std::size_t c0 = c * chunk, w = std::min(chunk, wb - c0);
            const std::size_t key0 = k0 + c0;
            const region s_ps = score_pool.next().sub(0, r, 0, w);  // [r, w] fp32
            nc_matmul(nc, s_ps, /*stationary*/ q_t, /*moving*/ kt_blk.sub(0, d, c0, w));
            scores[c] = s_ps;
            // Some key of the chunk lies past the first row's limit q0 + offset: mask (GpSimd, in SBUF).
            if (params.causal && static_cast<std::int64_t>(key0 + w) - 1 > static_cast<std::int64_t>(q0) + causal_offset) {
              const region s_sb = mask_pool.next().sub(0, r, 0, w);
              tensor_copy(nc, s_sb, s_ps);
              // keep key0 + f ≤ q0 + p + offset  ⇔  (q0 + offset − key0) + p − f ≥ 0
              affine_select(nc, s_sb, s_sb,
                            {.base = static_cast<std::int64_t>(q0) + causal_offset - static_cast<std::int64_t>(key0),
                             .channel_multiplier = 1, .step = -1},
                            {.compare = alu_op::is_ge, .on_false = masked});
              scores[c] = s_sb;
            }
            tensor_reduce(nc, extremes.sub(0, r, c, 1), scores[c], extreme);
          }
          // −m_new = min(scale·(−max of the block), −m_old); the first step starts from the floor −FLT_MAX.
          tensor_reduce(nc, neg_max, extremes, extreme, {.negate = true});
          tensor_scalar(nc, neg_m_new, neg_max, alu_op::multiply, scale,
                        {.op1 = alu_op::min, .operand1 = step == 0 ? scalar_operand(FLT_MAX) : scalar_operand(neg_m_old)});

          // P = exp(scale·S − m_new) with its row sums, Pᵀ piece by piece, O_blk = P·V accumulated in PSUM.
          const region pv = pv_pool.next().sub(0, r, 0, d);  // [r, d] fp32
          for (std::size_t c = 0; c < n_chunks; ++c) {
            const std::size_t c0 = c * chunk, w = std::min(chunk, wb - c0);
            const region p = p_pool.next().sub(0, r, 0, w);  // [r, w] bf16
            activation(nc, p, scores[c], activation_function::exp,
                       {.scale = scale, .bias = neg_m_new, .reduce_out = row_sums.sub(0, r, c, 1)});
            auto& pt = pt_pool.next();  // piece t: [wt keys, r] at columns [t·r, (t + 1)·r)
            auto& pt_sb = ptsb_pool.next();
            const std::size_t pieces = (w + pe - 1) / pe, full = w / pe;
            for (std::size_t t = 0; t < pieces; ++t) {
              const std::size_t wt = std::min(pe, w - t * pe);
              nc_transpose(nc, pt.sub(0, wt, t * r, r), p.sub(0, r, t * pe, wt));
            }
            if (full > 0) tensor_copy(nc, pt_sb.sub(0, pe, 0, full * r), pt.sub(0, pe, 0, full * r));
            if (full < pieces)  // a last piece of fewer than 128 keys
              tensor_copy(nc, pt_sb.sub(0, w - full * pe, full * r, r), pt.sub(0, w - full * pe, full * r, r));
            for (std::size_t t = 0; t < pieces; ++t) {
              const std::size_t wt = std::min(pe, w - t * pe);
              const std::size_t piece = v_piece0 + (c0 + t * pe) / pe;
              nc_matmul(nc, pv, /*stationary*/ pt_sb.sub(0, wt, t * r, r), /*moving*/ v_blk.sub(0, wt, piece * d, d),
                        {.accumulate = c > 0 || t > 0});
            }
          }

          // Fold the block in: α = exp(m_old − m_new); l = α·l + Σ; acc = α·acc + P·V.
          if (step == 0) {
            tensor_reduce(nc, l, row_sums, alu_op::add);
            tensor_copy(nc, acc_h, pv);
          } else {
            activation(nc, alpha, neg_m_old, activation_function::exp, {.scale = -1.0f, .bias = neg_m_new});
            tensor_reduce(nc, block_sum, row_sums, alu_op::add);
            tensor_scalar(nc, l, l, alu_op::multiply, alpha, {.op1 = alu_op::add, .operand1 = block_sum});
            tensor_scalar(nc, acc_h, acc_h, alu_op::multiply, alpha);
            tensor_tensor(nc, acc_h, acc_h, pv, alu_op::add);
          }
        }
      }

      // O = acc / l (rows that saw no key: acc = l = 0, divided by FLT_MIN instead: 0); lse = m + log l.
      const std::size_t last_step = step - 1;
      const bool empty_rows = visible(q0, g.keys) == 0;
      for (std::size_t h = 0; h < heads; ++h) {
        const region l = state.sub(0, r, 4 * h + 2, 1);
        const region neg_m = state.sub(0, r, 4 * h + last_step % 2, 1);
        region divisor = l;
        if (empty_rows) {
          divisor = state.sub(0, r, 4 * h + 3, 1);  // α's column is free now
          tensor_scalar(nc, divisor, l, alu_op::max, FLT_MIN);
        }
        const region out = out_pool.next().sub(0, r, 0, d);
        tensor_scalar(nc, out, acc.sub(0, r, h * d, d), alu_op::divide, divisor);
        dma_copy(nc, g.o[h].tile(q0, 0, r, d), out);
        if (!g.lse.empty()) {
          const region lse = lse_pool.next().sub(0, r, 0, 1);
          activation(nc, lse, l, activation_function::log);
          tensor_tensor(nc, lse, lse, neg_m, alu_op::subtract);  // log l − (−m)
          dma_copy(nc, g.lse[h].tile(q0, 0, r, 1), lse);
        }
      }
    }
  }
}

}  // namespace trellis::systolic::kernels
