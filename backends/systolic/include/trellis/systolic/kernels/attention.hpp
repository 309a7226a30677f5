#pragma once
// flash_attention_fwd: flash attention forward on the NeuronCore model, written against the ISA as the
// public NKI sample `flash_fwd` is structured [trainium.md, "Flash attention forward"]:
//
//   O = softmax(scale·Q·Kᵀ + mask)·V for each query head of a kv head group, Q [Sq, d], K, V [Skv, d] row-major,
//   the additive mask [Sq, Skv] optional.
//
// Per group (one batch, one kv head, the G = H / Hkv query heads that share it), per tile of 128 query rows:
//
//   Qᵀ [d, 128]           head dim d ≤ 128 on partitions (the contraction axis of QKᵀ)
//   for each KV block of 2048 keys (one online-softmax step), for each head g of the group:
//     S chunk = QKᵀ        nc_matmul(dst [128 q, 512 keys] PSUM (one bank), stationary Qᵀ [d, 128],
//                          moving Kᵀ [d, 512]); chunks past every row's causal limit are never computed
//     diagonal chunks     tensor_copy to SBUF, affine_select (GpSimd cannot reach PSUM) keeps key j ≤ i + Skv − Sq
//     window-edge chunks  the same, keeping j > i + Skv − Sq − window (blocks before a tile's first key are skipped)
//     additive mask       its [128, 512] tile DMA'd to SBUF (cast to fp32) and added to scale·S there (GpSimd), as
//                          flash_fwd adds its logit bias; the exp then scales by 1, and GpSimd takes the row max
//     row max             tensor_reduce(max) per chunk on Vector, then one negated tensor_reduce over the chunks
//     m_new               −m_new = min(scale·(−max), −m_old): one tensor_scalar
//     P = exp(..), Σ      one Scalar activation per chunk: exp(scale·S − m_new) with reduce_out = row sums,
//                          P rounded to bf16 for the PV matmul; Σ stays fp32
//     Pᵀ                  nc_transpose of 128 × 128 pieces on the Tensor Engine into PSUM, evicted to SBUF by
//                          Vector and Scalar in turn
//     O_blk = P·V         nc_matmul(dst [128 q, d] PSUM, stationary Pᵀ [128 keys, 128 q], moving V [128 keys, d]),
//                          accumulated in PSUM over the whole block
//     rescale             α = exp(m_old − m_new) (Scalar); l = α·l + Σ, acc = α·acc (GpSimd); acc += O_blk (Vector)
//   O = acc / l           division by the row sum at the end; row log-sum-exp m + log l if asked
//
// Engines and overlap: each engine runs its own in-order stream, so the program order is the schedule. The
// kernel is software-pipelined over steps (one head × one KV block): while step k runs its exps, transposes and
// P·V (stage C), the QKᵀ chunks and row maxima of steps k + 1 and k + 2 (stage A) are issued one chunk per exp,
// in a ring of kv_block / key_chunk + 1 PSUM banks, and step k + 1's m_new (stage B) before step k's fold (stage
// D). Within a step the Tensor Engine transposes chunk c before the P·V of chunk c − 1, so it does not wait for
// the eviction it just caused. The tiny [128, 1] statistics ops run on GpSimd, idle otherwise, to keep the
// Vector engine (row maxima, half the Pᵀ evictions) and the Scalar engine (exps, the other half) to the work
// that bounds the kernel: see docs/systolic-model.md, "Kernels: flash attention".
//
// Numerics: every matmul is bf16 × bf16 → fp32 PSUM; the softmax statistics (m, l, α) and the output
// accumulator are fp32. fp32 inputs are rounded to bf16 (nearest even) by the DMA that loads them — the
// kernel's one numerics choice beyond flash_fwd's: fp32 matmuls would run at ¼ rate, and bf16 is what the
// hardware kernel feeds the PE array. So an fp32 input's logits carry the bf16 rounding of q and k.
//
// Masking and fully masked rows: the running max starts at the floor −FLT_MAX (not −inf), masked logits
// are −inf. A row that sees no key in a block keeps m = the floor (or its earlier max), its P entries are
// exp(−inf) = 0 and α = exp(0) = 1, so nothing is NaN; a row that never sees a key ends with acc = l = 0
// and is divided by max(l, FLT_MIN): 0. With scale 0 no raw score scales to −inf, so every chunk is multiplied
// by 0 on its copy to SBUF and masked after that, and the exp scales by 1 — as with an additive mask, which is
// added to the scaled S (its −inf entries mask like any other; a row it masks wholly ends as 0 too). A query
// tile none of whose rows sees a key is written as zeros without any compute. Causal alignment (the library's,
// ops/attention.hpp): query i sees keys j ≤ i + (Skv − Sq); a group's `keys` (a key length) also hides keys
// j ≥ keys, by never loading them.
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
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/ops/attention.hpp"
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
  /// Copy each S chunk from PSUM to SBUF once (Scalar) before its max (Vector) and exp (Scalar) read it, as
  /// flash_fwd's qk_res_buf does. Unset: only where Vector and Scalar share the PSUM port (v2: trn1; 6 % faster
  /// there in the model); elsewhere both read S straight from PSUM, which costs no copy.
  std::optional<bool> evict_scores{};

  // Buffer counts (rotating pools; each comment says what the count lets overlap). The software pipeline keeps
  // two steps in flight (the next step's QKᵀ runs inside this one's exp/PV), so the pools marked "≥ 2" need two.
  // Not in the policy: a ring of kv_block / key_chunk + 1 PSUM banks for S chunks (5 by default; and as many SBUF
  // masked copies): one block's chunks wait there for their statistics while the next QKᵀ fills the spare.
  std::size_t kv_bufs = 2;     ///< Kᵀ/V tiles: the next group's (resident) or block's (streamed, ≥ 2) load during this one
  std::size_t q_bufs = 2;      ///< (≥ 2) Qᵀ of a query tile's G heads: the next tile's Q loads during this one
  std::size_t state_bufs = 2;  ///< (≥ 2) acc [128, G·d] and m, l, α of a query tile: the next tile starts before this one ends
  std::size_t p_bufs = 4;      ///< (≥ 2) bf16 P chunks: the Scalar engine's exps run ahead of the transposes
  std::size_t pt_bufs = 2;     ///< (≥ 2) PSUM transpose targets and SBUF Pᵀ: chunk c is transposed and evicted while
                               ///< chunk c − 1's Pᵀ feeds its P·V matmuls
  std::size_t pv_bufs = 2;     ///< PSUM [128, d] P·V accumulators: the next step's PV while this one is folded in
  std::size_t stat_bufs = 3;   ///< (≥ 3) per-step maxima, row sums, α: stage A runs up to two steps ahead of stage C
  std::size_t stage_bufs = 4;  ///< row-major [128, d] staging of Q/K for Tensor Engine transposes (DMA ahead)
  std::size_t out_bufs = 2;    ///< output [128, d] (and lse) tiles: the store of one overlaps the next division
  std::size_t mask_bufs = 3;   ///< (additive mask only) fp32 [128, 512] mask tiles: the next chunks' DMA runs ahead
};

/// One kv head of one batch and the query heads that read it (GQA: G = H / Hkv of them; MHA: 1).
template <class T, class TO>
struct attention_head_group {
  hbm<const T> k, v;            ///< [Skv, d]
  std::size_t keys = 0;         ///< keys j < keys are visible (a key length; Skv when there is none)
  std::vector<hbm<const T>> q;  ///< G × [Sq, d]
  std::vector<hbm<TO>> o;       ///< G × [Sq, d]
  std::vector<hbm<float>> lse;  ///< G × [Sq, 1] row log-sum-exp, or empty
  std::vector<region> mask;     ///< G × [Sq, Skv] additive mask in HBM (f32 or bf16), or empty (in every group)
};

struct attention_params {
  float scale = 1.0f;   ///< softmax scale (0 too: S is then scaled before masking, see the file comment)
  bool causal = false;  ///< query i sees keys j ≤ i + (Skv − Sq)
  std::optional<std::size_t> window{};  ///< query i sees keys j > i + (Skv − Sq) − window (ops/attention.hpp)
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
  for (std::size_t b : {p.kv_bufs, p.q_bufs, p.state_bufs, p.p_bufs, p.pt_bufs, p.pv_bufs,
                        p.stat_bufs, p.stage_bufs, p.out_bufs, p.mask_bufs})
    if (b == 0) fail("has a buffer count of 0 (every pool needs at least one buffer)");
  if (p.q_bufs < 2 || p.state_bufs < 2 || p.p_bufs < 2 || p.stat_bufs < 3 || p.pt_bufs < 2)
    fail("needs q_bufs, state_bufs, p_bufs, pt_bufs >= 2 and stat_bufs >= 3 (the software pipeline keeps two query tiles "
         "and three steps in flight)");
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
  const std::size_t heads = groups[0].q.size();
  const std::size_t sq = heads ? groups[0].q[0].extent(0) : 0, d = heads ? groups[0].q[0].extent(1) : 0;
  const std::size_t skv = groups[0].k.extent(0);
  const bool additive = !groups[0].mask.empty();  // an additive mask
  for (const auto& g : groups) {
    bool ok = g.q.size() == heads && g.o.size() == heads && (g.lse.empty() || g.lse.size() == heads) &&
              g.mask.size() == (additive ? heads : 0) && g.k.extent(0) == skv && g.v.extent(0) == skv &&
              g.k.extent(1) == d && g.v.extent(1) == d && g.keys <= skv;
    for (std::size_t h = 0; ok && h < heads; ++h)
      ok = g.q[h].extent(0) == sq && g.q[h].extent(1) == d && g.o[h].extent(0) == sq && g.o[h].extent(1) == d &&
           (g.lse.empty() || (g.lse[h].extent(0) == sq && g.lse[h].extent(1) == 1)) &&
           (!additive || (g.mask[h].space == memory_space::hbm && g.mask[h].rows == sq && g.mask[h].cols == skv));
    if (!ok)
      raise_error("flash_attention_fwd: every group needs G query/output heads [Sq, d], K and V [Skv, d], lse [Sq, 1] "
                  "or none, masks [Sq, Skv] in HBM in every group or in none, and keys <= Skv (Sq = " +
                  std::to_string(sq) + ", Skv = " + std::to_string(skv) + ", d = " + std::to_string(d) +
                  ", G = " + std::to_string(heads) + ")");
  }
  if (heads == 0 || sq == 0 || d == 0) return;
  if (d > spec.matmul.pe_rows)
    raise_error("flash_attention_fwd: head dim " + std::to_string(d) + " exceeds " + std::to_string(spec.matmul.pe_rows) +
                " on " + spec.name + " (d lies on the partitions of Qᵀ and Kᵀ: the contraction of QKᵀ)");

  // The exp applies the scale (exp(scale·S − m)), so masked raw scores are the value whose scaled version is −inf,
  // and the largest scaled logit is scale·max(S) for scale > 0, scale·min(S) for scale < 0. Scale 0 has no such
  // value (0·±inf is NaN), and an additive mask is added to the scaled S: in both cases S is multiplied by the
  // scale on its way to SBUF, before masking, and the exp scales by 1.
  const bool prescale = params.scale == 0.0f || additive;
  const float scale = prescale ? 1.0f : params.scale;
  const alu_op extreme = scale > 0 ? alu_op::max : alu_op::min;
  const float masked = scale > 0 ? -INFINITY : INFINITY;
  const std::int64_t causal_offset = static_cast<std::int64_t>(skv) - static_cast<std::int64_t>(sq);
  const std::size_t q_tile = policy.q_tile, chunk = policy.key_chunk, block = policy.kv_block;
  const std::size_t chunks_per_block = block / chunk;
  // Where Vector and Scalar share one PSUM port (v2), reading each S chunk from PSUM twice (max on Vector, exp on
  // Scalar) serialises them: S is evicted to SBUF once, by Scalar, and both read it there.
  const bool evict_scores = policy.evict_scores.value_or(spec.ports.vector_scalar_share_psum);
  auto chunks_of = [&](std::size_t keys) { return (keys + chunk - 1) / chunk; };

  // Keys row i of a group with `keys` visible keys sees: [first_key(i), visible(i)) (empty when first ≥ visible),
  // the library's causal limit and window (trellis::detail::visible_key_range, shared with every target) cut at
  // the group's key length.
  const attention_options visibility{.causal = params.causal, .window = params.window};
  auto visible = [&](std::size_t i, std::size_t keys) {
    return std::min(keys, trellis::detail::visible_key_range(i, 0, sq, skv, visibility).last);
  };
  auto first_key = [&](std::size_t i) { return trellis::detail::visible_key_range(i, 0, sq, skv, visibility).first; };

  // K/V storage: a whole kv head (resident) or one KV block (streamed). V keeps keys on partitions in pieces of
  // 128: piece t of the tile is columns [t·d, (t + 1)·d).
  const std::size_t skv_pad = std::max<std::size_t>(pe, (skv + pe - 1) / pe * pe);
  const bool resident = 2 * skv_pad + 2 * d * (skv_pad / pe) <= policy.resident_kv_bytes;
  if (!resident && policy.kv_bufs < 2)
    raise_error("flash_attention_fwd: policy kv_bufs " + std::to_string(policy.kv_bufs) + " on " + spec.name +
                ": streamed K/V needs >= 2 (the next block loads while this one's last step runs)");
  const std::size_t kv_keys = resident ? skv_pad : block;
  auto kt_pool = nc.sbuf.template pool<bf16>({d, kv_keys}, policy.kv_bufs);           // [d, keys] Kᵀ
  auto v_pool = nc.sbuf.template pool<bf16>({pe, kv_keys / pe * d}, policy.kv_bufs);  // [128 keys, pieces·d] V
  auto q_pool = nc.sbuf.template pool<bf16>({d, heads * q_tile}, policy.q_bufs);      // [d, G·128] Qᵀ per head
  auto acc_pool = nc.sbuf.template pool<float>({q_tile, heads * d}, policy.state_bufs);  // [128, G·d] Σ P·V
  // Per head g: columns 4g, 4g + 1: −m (ping-pong between steps: old and new), 4g + 2: l, 4g + 3: spare.
  auto state_pool = nc.sbuf.template pool<float>({q_tile, heads * 4}, policy.state_bufs);
  // Per step: the chunk extremes, the chunk row sums, −max of the block, Σ of the block, α.
  auto stat_pool = nc.sbuf.template pool<float>({q_tile, 2 * chunks_per_block + 3}, policy.stat_bufs);
  // S chunks live in a ring of kv_block / key_chunk + 1 PSUM banks (and as many SBUF masked copies), taken in
  // order and freed when their exp has read them: a whole block waits for its statistics, and the spare bank lets
  // the QKᵀ after it start meanwhile.
  const std::size_t slots = chunks_per_block + 1;
  std::vector<tile<float>> score_banks, masked_scores;
  for (std::size_t c = 0; c < slots; ++c) {
    score_banks.push_back(nc.psum.template tile<float>(q_tile, chunk));   // [128, 512] fp32 S: one bank
    masked_scores.push_back(nc.sbuf.template tile<float>(q_tile, chunk));  // [128, 512] fp32 S, masked
  }
  std::vector<bool> slot_busy(slots, false);
  std::size_t next_slot = 0;
  auto p_pool = nc.sbuf.template pool<bf16>({q_tile, chunk}, policy.p_bufs);           // [128 q, 512 keys] P
  auto pt_pool = nc.psum.template pool<pt_type>({pe, std::max(chunk, pe)}, policy.pt_bufs);  // [128 keys, pieces·128 q]
  auto ptsb_pool = nc.sbuf.template pool<bf16>({pe, chunk / pe * q_tile}, policy.pt_bufs);    // Pᵀ in SBUF
  auto pv_pool = nc.psum.template pool<float>({q_tile, d}, policy.pv_bufs);            // [128 q, d] P·V
  auto stage_pool = nc.sbuf.template pool<bf16>({pe, d}, policy.stage_bufs);           // [128 rows, d]
  auto out_pool = nc.sbuf.template pool<TO>({q_tile, d}, policy.out_bufs);             // [128 q, d] O
  auto lse_pool = nc.sbuf.template pool<float>({q_tile, 1}, policy.out_bufs);          // [128 q, 1] lse
  std::optional<pool<float>> mask_pool;  // [128 q, 512 keys] fp32 mask tiles
  if (additive) mask_pool.emplace(nc.sbuf.template pool<float>({q_tile, chunk}, policy.mask_bufs));

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

  // A query tile in flight: its rows, its keys, and its Qᵀ / accumulator / statistics buffers.
  struct q_tile_state {
    std::size_t q0 = 0, rows = 0, keys = 0, blocks = 0, steps_left = 0;
    bool empty_rows = false;      // some row sees no key (it ends as 0)
    tile<bf16>* qt = nullptr;     // [d, G·128]
    tile<float>* acc = nullptr;   // [128, G·d]
    tile<float>* state = nullptr; // [128, 4G]
  };
  // One online-softmax step: one head of one query tile against one KV block.
  struct step_state {
    std::size_t tile_index = 0, head = 0, k0 = 0, keys = 0, index = 0;  // index: the block's number in the tile
    bool new_tile = false, new_block = false;
    std::size_t chunks = 0;
    tile<float>* stats = nullptr;  // [128, 2·chunks + 3]: chunk extremes, chunk row sums, −max, Σ, α
    region kt{}, v{};              // the block's Kᵀ [d, keys] and V pieces
    std::size_t v_piece0 = 0;
    std::vector<region> scores{};  // per chunk: S in PSUM, or its masked copy in SBUF
    std::vector<std::size_t> slot{};  // per chunk: its score slot
    bool statistics_issued = false;
  };

  // Resident K/V of group gi (keys any of its rows sees: the last row's range), loaded block by block so that
  // the first block's compute can start early. With kv_bufs ≥ 2 the next group's K/V are loaded when a group
  // starts (prefetch), before this group's stores in program order.
  std::vector<std::pair<tile<bf16>*, tile<bf16>*>> resident_kv(groups.size(), {nullptr, nullptr});
  auto load_group = [&](std::size_t gi) {
    const std::size_t keys = visible(sq - 1, groups[gi].keys);
    if (!resident || keys == 0 || resident_kv[gi].first) return;
    resident_kv[gi] = {&kt_pool.next(), &v_pool.next()};
    for (std::size_t k0 = 0; k0 < keys; k0 += block) {
      const std::size_t w = std::min(block, keys - k0);
      load_kv(groups[gi], resident_kv[gi].first->sub(0, d, k0, w), *resident_kv[gi].second, k0 / pe, k0, w);
    }
  };

  for (std::size_t gi = 0; gi < groups.size(); ++gi) {
    const auto& g = groups[gi];
    load_group(gi);
    if (policy.kv_bufs >= 2 && gi + 1 < groups.size()) load_group(gi + 1);
    tile<bf16>* kt_all = resident_kv[gi].first;
    tile<bf16>* v_all = resident_kv[gi].second;

    // The work: query tiles that see no key are written as zeros now; the others become steps (tile, block, head).
    std::vector<q_tile_state> tiles;
    std::vector<step_state> steps;
    for (std::size_t q0 = 0; q0 < sq; q0 += q_tile) {
      const std::size_t r = std::min(q_tile, sq - q0);
      const std::size_t tile_keys = visible(q0 + r - 1, g.keys);  // the tile's last row sees the most keys ...
      const std::size_t tile_first = first_key(q0);                // ... and its first row the earliest
      if (tile_keys <= tile_first) {  // no row of this tile sees a key: O = 0, lse = −inf, nothing to compute
        const region zero = out_pool.next().sub(0, r, 0, d);
        memset(nc, zero, 0.0f, {.unit = engine::gpsimd});
        const region none = lse_pool.next().sub(0, r, 0, 1);
        if (!g.lse.empty()) memset(nc, none, -INFINITY, {.unit = engine::gpsimd});
        for (std::size_t h = 0; h < heads; ++h) {
          dma_copy(nc, g.o[h].tile(q0, 0, r, d), zero);
          if (!g.lse.empty()) dma_copy(nc, g.lse[h].tile(q0, 0, r, 1), none);
        }
        continue;
      }
      // Blocks start at a multiple of kv_block below the first visible key (V pieces stay 128-key aligned).
      const std::size_t start = tile_first / block * block, blocks = (tile_keys - start + block - 1) / block;
      bool empty_rows = additive;  // a mask may hide every key of a row
      for (std::size_t i = q0; i < q0 + r; ++i) empty_rows = empty_rows || first_key(i) >= visible(i, g.keys);
      tiles.push_back({.q0 = q0, .rows = r, .keys = tile_keys, .blocks = blocks, .steps_left = heads * blocks,
                       .empty_rows = empty_rows});
      for (std::size_t k0 = start, j = 0; k0 < tile_keys; k0 += block, ++j)
        for (std::size_t h = 0; h < heads; ++h)
          steps.push_back({.tile_index = tiles.size() - 1, .head = h, .k0 = k0, .keys = std::min(block, tile_keys - k0),
                           .index = j, .new_tile = j == 0 && h == 0, .new_block = h == 0});
    }

    // Qᵀ [d, r] of every head of tile ti. Loaded one tile ahead (when the previous tile starts), so that the
    // loads precede the previous tile's stores in program order and overlap its compute.
    auto load_q = [&](q_tile_state& t) {
      t.qt = &q_pool.next();
      for (std::size_t h = 0; h < heads; ++h) {
        const region dst = t.qt->sub(0, d, h * q_tile, t.rows);
        if constexpr (dma_transpose) {
          dma_copy(nc, dst, g.q[h].tile(t.q0, 0, t.rows, d), {.transpose = true});
        } else {
          const region rows = stage_pool.next().sub(0, t.rows, 0, d);  // [r, d] bf16 (the DMA casts)
          dma_copy(nc, rows, g.q[h].tile(t.q0, 0, t.rows, d));
          const region pt = pt_pool.next().sub(0, d, 0, t.rows);
          nc_transpose(nc, pt, rows);
          tensor_copy(nc, dst, pt);
        }
      }
    };
    if (!tiles.empty()) load_q(tiles[0]);
    // A tile's accumulator and statistics; the next tile's Qᵀ.
    auto begin_tile = [&](std::size_t ti) {
      tiles[ti].acc = &acc_pool.next();
      tiles[ti].state = &state_pool.next();
      if (ti + 1 < tiles.size()) load_q(tiles[ti + 1]);
    };

    region block_kt, block_v;  // streamed: the current block's K/V
    // Stage A, one chunk: S = Q·Kᵀ into score bank c (one PSUM bank), masked on diagonal chunks, its row max.
    auto scores_chunk = [&](step_state& s, std::size_t c) {
      const q_tile_state& t = tiles[s.tile_index];
      if (c == 0) {  // the step's buffers; a new tile or (streamed) a new block loads first
        if (s.new_tile) begin_tile(s.tile_index);
        if (resident) {
          s.kt = kt_all->sub(0, d, s.k0, s.keys);
          s.v = v_all->view();
          s.v_piece0 = s.k0 / pe;
        } else {
          if (s.new_block) {  // this block's K/V, shared by the G heads' steps that follow
            block_kt = kt_pool.next().sub(0, d, 0, s.keys);
            block_v = v_pool.next().view();
            load_kv(g, block_kt, block_v, 0, s.k0, s.keys);
          }
          s.kt = block_kt;
          s.v = block_v;
        }
        s.chunks = chunks_of(s.keys);
        s.stats = &stat_pool.next();
        s.scores.assign(s.chunks, region{});
        s.slot.assign(s.chunks, 0);
      }
      const std::size_t r = t.rows, c0 = c * chunk, w = std::min(chunk, s.keys - c0), key0 = s.k0 + c0;
      const std::size_t slot = s.slot[c] = next_slot;
      slot_busy[slot] = true;
      next_slot = (next_slot + 1) % slots;
      const region s_ps = score_banks[slot].sub(0, r, 0, w);  // [r, w] fp32
      nc_matmul(nc, s_ps, /*stationary*/ t.qt->sub(0, d, s.head * q_tile, r), /*moving*/ s.kt.sub(0, d, c0, w));
      s.scores[c] = s_ps;
      // Some key of the chunk lies past the first row's limit q0 + offset (diagonal), or before the last row's
      // window (window_edge): mask (GpSimd, so in SBUF).
      const bool diagonal =
          params.causal && static_cast<std::int64_t>(key0 + w) - 1 > static_cast<std::int64_t>(t.q0) + causal_offset;
      const bool window_edge = key0 < first_key(t.q0 + r - 1);
      if (evict_scores || diagonal || window_edge || prescale) {
        const region s_sb = masked_scores[slot].sub(0, r, 0, w);
        const engine unit = evict_scores ? engine::scalar : engine::vector;
        if (prescale) tensor_scalar(nc, s_sb, s_ps, alu_op::multiply, params.scale, {.unit = unit});
        else tensor_copy(nc, s_sb, s_ps, {.unit = unit});
        s.scores[c] = s_sb;
      }
      if (additive) {  // scale·S + mask, on GpSimd (idle otherwise) so that Vector keeps to its evictions
        const region bias = mask_pool->next().sub(0, r, 0, w);
        dma_copy(nc, bias, g.mask[s.head].sub(t.q0, r, key0, w));  // f32 or bf16 → fp32
        tensor_tensor(nc, s.scores[c], s.scores[c], bias, alu_op::add, {.unit = engine::gpsimd});
      }
      if (window_edge) {
        const region s_sb = s.scores[c];
        // keep key0 + f ≥ q0 + p + 1 + offset − window  ⇔  (key0 + window − q0 − 1 − offset) − p + f ≥ 0
        affine_select(nc, s_sb, s_sb,
                      {.base = static_cast<std::int64_t>(key0 + *params.window) - static_cast<std::int64_t>(t.q0) - 1 -
                               causal_offset,
                       .channel_multiplier = -1, .step = 1},
                      {.compare = alu_op::is_ge, .on_false = masked});
      }
      if (diagonal) {
        const region s_sb = s.scores[c];
        // keep key0 + f ≤ q0 + p + offset  ⇔  (q0 + offset − key0) + p − f ≥ 0
        affine_select(nc, s_sb, s_sb,
                      {.base = static_cast<std::int64_t>(t.q0) + causal_offset - static_cast<std::int64_t>(key0),
                       .channel_multiplier = 1, .step = -1},
                      {.compare = alu_op::is_ge, .on_false = masked});
      }
      // The row extreme on Vector (it can read PSUM); with a mask on GpSimd, right after the add there, so that
      // Vector does not wait for GpSimd in its in-order stream (3.1 instead of 4.4 ms on trn2, docs/systolic-model.md).
      tensor_reduce(nc, s.stats->sub(0, r, c, 1), s.scores[c], extreme,
                    {.unit = additive ? engine::gpsimd : engine::vector});
    };

    // Stage B: −m_new = min(scale·(−max of the block), −m_old); a tile's first step starts from the floor −FLT_MAX.
    // Tiny [r, 1] ops on GpSimd, which is otherwise idle, so that Vector keeps to the row maxima.
    auto statistics = [&](const step_state& s) {
      const q_tile_state& t = tiles[s.tile_index];
      const std::size_t r = t.rows;
      const region neg_max = s.stats->sub(0, r, 2 * chunks_per_block, 1);
      tensor_reduce(nc, neg_max, s.stats->sub(0, r, 0, s.chunks), extreme, {.negate = true, .unit = engine::gpsimd});
      tensor_scalar(nc, t.state->sub(0, r, 4 * s.head + s.index % 2, 1), neg_max, alu_op::multiply, scale,
                    {.op1 = alu_op::min,
                     .operand1 = s.index == 0 ? scalar_operand(FLT_MAX)
                                              : scalar_operand(t.state->sub(0, r, 4 * s.head + (s.index + 1) % 2, 1)),
                     .unit = engine::gpsimd});
    };

    // The software pipeline. Stage A (QKᵀ chunks and row maxima) runs ahead of stage C in step order, one chunk
    // per exp of stage C (so that the maxima interleave with the Pᵀ evictions on the in-order Vector engine) and as
    // far as free score slots allow: up to the step after next, unless that one needs a new query tile or a new
    // streamed K/V block (which would need a third buffer). Stage B of step k is issued once its chunks are and
    // once step k − 1 has read its −m_old (for α): before k − 1's fold, so that k's first exp does not wait for it.
    std::size_t a_step = 0, a_chunk = 0;  // the next stage-A chunk to issue
    auto pump = [&](std::size_t current, bool previous_alpha_issued, std::size_t max_chunks, std::size_t last_step) {
      for (std::size_t n = 0; n < max_chunks && a_step < steps.size() && !slot_busy[next_slot]; ++n) {
        const step_state& k = steps[a_step];
        const bool allowed = a_step <= current + 1 || (a_step == current + 2 && !k.new_tile && (resident || !k.new_block));
        if (!allowed || a_step > last_step) break;
        scores_chunk(steps[a_step], a_chunk);
        if (++a_chunk == chunks_of(steps[a_step].keys)) a_chunk = 0, ++a_step;
      }
      for (std::size_t k = current; k <= current + 1 && k < steps.size(); ++k)
        if (!steps[k].statistics_issued && a_step > k && (k == current || previous_alpha_issued)) {
          statistics(steps[k]);
          steps[k].statistics_issued = true;
        }
    };
    auto free_slot = [&](const step_state& k, std::size_t c) { slot_busy[k.slot[c]] = false; };
    constexpr std::size_t all = ~std::size_t{0};
    if (!steps.empty()) pump(0, false, all, all);

    for (std::size_t i = 0; i < steps.size(); ++i) {
      step_state& s = steps[i];
      const step_state* next = i + 1 < steps.size() ? &steps[i + 1] : nullptr;
      q_tile_state& t = tiles[s.tile_index];
      const std::size_t r = t.rows, h = s.head;
      const region neg_m_new = t.state->sub(0, r, 4 * h + s.index % 2, 1);
      const region neg_m_old = t.state->sub(0, r, 4 * h + (s.index + 1) % 2, 1);
      const region l = t.state->sub(0, r, 4 * h + 2, 1);
      const region acc_h = t.acc->sub(0, r, h * d, d);  // [r, d]
      const region row_sums = s.stats->sub(0, r, chunks_per_block, s.chunks);
      const region block_sum = s.stats->sub(0, r, 2 * chunks_per_block + 1, 1);
      const region alpha = s.stats->sub(0, r, 2 * chunks_per_block + 2, 1);

      // Stage C, chunk by chunk: P = exp(scale·S − m_new) with its row sums (Scalar, one chunk ahead), Pᵀ in
      // 128 × 128 pieces (Tensor) evicted alternately by Vector and Scalar, and P·V accumulated in PSUM. The Tensor
      // Engine computes the next step's QKᵀ chunk c (its bank was just read by this exp) and transposes chunk c
      // before the P·V of chunk c − 1, so it works while chunk c − 1's Pᵀ is evicted.
      const region pv = pv_pool.next().sub(0, r, 0, d);  // [r, d] fp32
      std::vector<region> p(s.chunks), pt_sb(s.chunks);
      auto exp_chunk = [&](std::size_t c) {
        const std::size_t w = std::min(chunk, s.keys - c * chunk);
        p[c] = p_pool.next().sub(0, r, 0, w);  // [r, w] bf16
        activation(nc, p[c], s.scores[c], activation_function::exp,
                   {.scale = scale, .bias = neg_m_new, .reduce_out = row_sums.sub(0, r, c, 1)});
      };
      auto pv_chunk = [&](std::size_t c) {
        const std::size_t c0 = c * chunk, w = std::min(chunk, s.keys - c0);
        for (std::size_t p0 = 0; p0 < w; p0 += pe) {
          const std::size_t wt = std::min(pe, w - p0), piece = s.v_piece0 + (c0 + p0) / pe;
          nc_matmul(nc, pv, /*stationary*/ pt_sb[c].sub(0, wt, p0 / pe * r, r), /*moving*/ s.v.sub(0, wt, piece * d, d),
                    {.accumulate = c > 0 || p0 > 0});
        }
      };
      exp_chunk(0);
      free_slot(s, 0);
      // α = exp(m_old − m_new) for the fold, read before the next step of this head overwrites −m_old.
      if (s.index > 0) activation(nc, alpha, neg_m_old, activation_function::exp, {.scale = -1.0f, .bias = neg_m_new});
      pump(i, true, 1, all);
      for (std::size_t c = 0; c < s.chunks; ++c) {
        const std::size_t w = std::min(chunk, s.keys - c * chunk);
        if (c + 1 < s.chunks) {
          exp_chunk(c + 1);
          free_slot(s, c + 1);
          pump(i, true, 1, all);
        }
        auto& pt = pt_pool.next();  // piece k: [wk keys, r] at columns [k·r, (k + 1)·r)
        const std::size_t pieces = (w + pe - 1) / pe, full = w / pe;
        for (std::size_t k = 0; k < pieces; ++k)
          nc_transpose(nc, pt.sub(0, std::min(pe, w - k * pe), k * r, r), p[c].sub(0, r, k * pe, std::min(pe, w - k * pe)));
        auto& sb = ptsb_pool.next();
        const engine evict = c % 2 == 0 ? engine::vector : engine::scalar;
        if (full > 0) tensor_copy(nc, sb.sub(0, pe, 0, full * r), pt.sub(0, pe, 0, full * r), {.unit = evict});
        if (full < pieces)  // a last piece of fewer than 128 keys
          tensor_copy(nc, sb.sub(0, w - full * pe, full * r, r), pt.sub(0, w - full * pe, full * r, r), {.unit = evict});
        pt_sb[c] = sb.view();
        if (c > 0) pv_chunk(c - 1);
      }
      pv_chunk(s.chunks - 1);
      pump(i, true, all, i + 1);  // whatever of the next step is left, and its statistics
      if (next && !next->statistics_issued) raise_error("flash_attention_fwd: internal: the pipeline stalled");

      // Stage D: fold the block in: l = α·l + Σ; acc = α·acc + P·V.
      if (s.index == 0) {
        tensor_reduce(nc, l, row_sums, alu_op::add, {.unit = engine::gpsimd});
        tensor_copy(nc, acc_h, pv);
      } else {
        tensor_reduce(nc, block_sum, row_sums, alu_op::add, {.unit = engine::gpsimd});
        tensor_scalar(nc, l, l, alu_op::multiply, alpha, {.op1 = alu_op::add, .operand1 = block_sum, .unit = engine::gpsimd});
        tensor_scalar(nc, acc_h, acc_h, alu_op::multiply, alpha, {.unit = engine::gpsimd});
        tensor_tensor(nc, acc_h, acc_h, pv, alu_op::add);  // Vector: P·V is in PSUM
      }

      // The tile's last step: O = acc / l (rows that saw no key: acc = l = 0, divided by FLT_MIN instead: 0);
      // lse = m + log l.
      if (--t.steps_left > 0) continue;
      for (std::size_t hh = 0; hh < heads; ++hh) {
        const std::size_t last_index = t.blocks - 1;
        const region lh = t.state->sub(0, r, 4 * hh + 2, 1);
        const region neg_m = t.state->sub(0, r, 4 * hh + last_index % 2, 1);
        region divisor = lh;
        if (t.empty_rows) {
          divisor = t.state->sub(0, r, 4 * hh + 3, 1);  // a spare column
          tensor_scalar(nc, divisor, lh, alu_op::max, FLT_MIN, {.unit = engine::gpsimd});
        }
        const region out = out_pool.next().sub(0, r, 0, d);
        tensor_scalar(nc, out, t.acc->sub(0, r, hh * d, d), alu_op::divide, divisor, {.unit = engine::gpsimd});
        dma_copy(nc, g.o[hh].tile(t.q0, 0, r, d), out);
        if (!g.lse.empty()) {
          const region lse = lse_pool.next().sub(0, r, 0, 1);
          activation(nc, lse, lh, activation_function::log);
          tensor_tensor(nc, lse, lse, neg_m, alu_op::subtract, {.unit = engine::gpsimd});  // log l − (−m)
          dma_copy(nc, g.lse[hh].tile(t.q0, 0, r, 1), lse);
        }
      }
    }
  }
}

}  // namespace trellis::systolic::kernels
