#pragma once
// trellis::attention — O = softmax(scale·Q·Kᵀ + mask)·V per (batch, head).
//
//   attention(target, q, k, v, o, {.causal = true});
//
// q and o are [B, H, Sq, D]; k and v are [B, Hkv, Skv, D]. H must be a multiple of Hkv: query head h
// reads key/value head h / (H / Hkv) (GQA; Hkv = 1 is MQA). The head dimension must be contiguous.
//
// Causal alignment when Sq ≠ Skv: the queries are the *last* Sq positions of the key sequence, so query
// i sees keys j ≤ i + (Skv − Sq). With Sq > Skv the first Sq − Skv query rows see no key at all; a row
// that sees no key is 0 (never NaN).
//
// Options an inference engine needs (all optional; attention_options below):
//   key_lengths [B] int32   batch b sees keys j < key_lengths[b] only (padding, or the current length of a
//                           KV cache held in a longer [B, Hkv, S_max, D] buffer); 0 ≤ length ≤ Skv.
//   mask                    additive, f32 or bf16, added to scale·q·k: shape [Sq, Skv] or [B', H', Sq, Skv]
//                           with B' ∈ {1, B}, H' ∈ {1, H} (1 broadcasts); finite values or −inf (masked).
//   window (with causal)    sliding window of `window` keys ending at the causal limit: query i sees keys
//                           j with i + (Skv − Sq) − window < j ≤ i + (Skv − Sq).
//   lse [B, H, Sq] f32      writes the natural log-sum-exp of each row's scaled, masked logits (−inf for a
//                           row that sees no key) — what a caller needs to merge partial attentions.
// A row whose keys are all masked (by any of these) is 0 and its lse −inf. A masked key's value is never
// read as a factor of a non-zero weight, so padding past a key length may hold anything finite.
// Element types: q, k, v share one type (float or bf16); o is float or that type. Statistics are fp32
// (fp64 in the reference).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "trellis/core/dtype.hpp"
#include "trellis/core/validate.hpp"
#include "trellis/ops/op_impl.hpp"

namespace trellis {

struct attention_options {
  std::optional<float> scale{};                     ///< softmax scale; 1/√D when not set
  bool causal = false;                              ///< query i sees keys j ≤ i + (Skv − Sq)
  tensor_view<const std::int32_t, 1> key_lengths{}; ///< [B]: batch b sees keys j < key_lengths[b]
  any_view mask{};                                  ///< additive: [Sq, Skv] or [1|B, 1|H, Sq, Skv]
  std::optional<std::size_t> window{};              ///< with causal: the last `window` keys up to the limit
  any_output_view lse{};                            ///< [B, H, Sq] f32: log-sum-exp of each row
};

TRELLIS_BEGIN_ISA_NAMESPACE
namespace detail {

struct attention_shape {
  std::size_t batch, heads, kv_heads, seq_q, seq_kv, head_dim;
  float scale;
};

inline attention_shape validate_attention(const operand& q, const operand& k, const operand& v, const operand& o,
                                          const attention_options& opts) {
  constexpr std::string_view op = "attention";
  for (const operand* t : {&q, &k, &v, &o}) check_not_null(op, *t);
  const std::size_t batch = q.shape[0], heads = q.shape[1], seq_q = q.shape[2], head_dim = q.shape[3];
  check_extent(op, k, 0, batch, "batch = q's axis 0");
  check_extent(op, k, 3, head_dim, "head dim = q's axis 3");
  const std::size_t kv_heads = k.shape[1], seq_kv = k.shape[2];
  if (kv_heads == 0 ? heads != 0 : heads % kv_heads != 0)
    fail(op, k.name, "a number of kv heads that divides the " + std::to_string(heads) + " query heads",
         std::to_string(kv_heads) + " (shape " + shape_string(k) + ")");
  for (std::size_t axis = 0; axis < 4; ++axis) check_extent(op, v, axis, k.shape[axis], "the shape of k");
  for (std::size_t axis = 0; axis < 4; ++axis) check_extent(op, o, axis, q.shape[axis], "the shape of q");
  for (const operand* t : {&q, &k, &v, &o}) check_unit_last_stride(op, *t);
  check_not_self_overlapping(op, o);
  for (const operand* t : {&q, &k, &v}) check_no_overlap(op, o, *t);
  float scale = head_dim ? 1.0f / std::sqrt(float(head_dim)) : 1.0f;
  if (opts.scale) {
    if (!std::isfinite(*opts.scale)) fail(op, "options.scale", "a finite value", std::to_string(*opts.scale));
    scale = *opts.scale;
  }
  if (opts.key_lengths.data() != nullptr || opts.key_lengths.extent(0) != 0) {
    const operand len = describe("options.key_lengths", opts.key_lengths);
    check_optional_shape(op, len, 1, {batch}, "one key length per batch");
    check_not_null(op, len);
    check_no_overlap(op, o, len);
    for (std::size_t b = 0; b < batch; ++b) {
      const std::int32_t n = opts.key_lengths(b);
      if (n < 0 || std::size_t(n) > seq_kv)
        fail(op, len.name, "lengths in [0, " + std::to_string(seq_kv) + "] (Skv = k's axis 2)",
             std::to_string(n) + " at batch " + std::to_string(b));
    }
  }
  if (opts.mask) {
    const operand m = describe("options.mask", opts.mask);
    if (m.rank == 2) {
      check_optional_shape(op, m, 2, {seq_q, seq_kv}, "[Sq, Skv]");
    } else {
      const bool ok = m.rank == 4 && (m.shape[0] == 1 || m.shape[0] == batch) &&
                      (m.shape[1] == 1 || m.shape[1] == heads) && m.shape[2] == seq_q && m.shape[3] == seq_kv;
      if (!ok)
        fail(op, m.name,
             "shape [" + std::to_string(seq_q) + ", " + std::to_string(seq_kv) + "] or [1 or " + std::to_string(batch) +
                 ", 1 or " + std::to_string(heads) + ", " + std::to_string(seq_q) + ", " + std::to_string(seq_kv) +
                 "] ([Sq, Skv] or [B, H, Sq, Skv], 1 broadcasts)",
             "shape " + shape_string(m));
    }
    check_not_null(op, m);
    check_unit_last_stride(op, m);
    check_no_overlap(op, o, m);
  }
  if (opts.window) {
    if (!opts.causal) fail(op, "options.window", "to be set only together with options.causal = true", "causal = false");
    if (*opts.window == 0) fail(op, "options.window", "a window of at least 1 key", "0");
  }
  if (opts.lse) {
    const operand l = describe("options.lse", opts.lse);
    if (opts.lse.type() != dtype::f32) fail(op, l.name, "element type f32", to_string(opts.lse.type()));
    check_optional_shape(op, l, 3, {batch, heads, seq_q}, "[B, H, Sq]");
    check_not_null(op, l);
    check_not_self_overlapping(op, l);
    for (const operand* t : {&q, &k, &v, &o}) check_no_overlap(op, l, *t);
    if (opts.mask) check_no_overlap(op, l, describe("options.mask", opts.mask));
    if (opts.key_lengths.data()) check_no_overlap(op, l, describe("options.key_lengths", opts.key_lengths));
  }
  return {batch, heads, kv_heads, seq_q, seq_kv, head_dim, scale};
}

/// Keys visible to query row i under the library's causal alignment: j < visible_keys(i).
constexpr std::size_t causal_visible_keys(std::size_t i, std::size_t seq_q, std::size_t seq_kv) noexcept {
  // j ≤ i + (Skv − Sq)  ⇔  j < i + 1 + Skv − Sq, clamped to [0, Skv].
  const std::size_t limit = i + 1 + seq_kv;
  return limit <= seq_q ? 0 : std::min(seq_kv, limit - seq_q);
}

/// The keys query row i of batch b sees, [first, last), before the additive mask: causal limit, key
/// length and sliding window together. Shared by every target and by the tests.
struct key_range {
  std::size_t first = 0, last = 0;
  constexpr bool empty() const noexcept { return first >= last; }
};

constexpr key_range visible_key_range(std::size_t i, std::size_t batch_index, std::size_t seq_q, std::size_t seq_kv,
                                      const attention_options& opts) noexcept {
  std::size_t last = opts.causal ? causal_visible_keys(i, seq_q, seq_kv) : seq_kv;
  if (opts.key_lengths.data()) last = std::min(last, std::size_t(opts.key_lengths(batch_index)));
  std::size_t first = 0;
  if (opts.window) {
    // keys j > i + (Skv − Sq) − window  ⇔  j ≥ i + 1 + Skv − Sq − window, clamped at 0
    const std::size_t top = i + 1 + seq_kv;  // (i + 1 + Skv − Sq) + Sq, kept unsigned
    first = top > seq_q + *opts.window ? top - seq_q - *opts.window : 0;
  }
  return {first, std::max(first, last)};
}

/// Element offset of mask(b, h, i, 0): a [Sq, Skv] mask or a [1|B, 1|H, Sq, Skv] one (extent 1 broadcasts).
inline std::size_t mask_row_offset(const any_view& mask, std::size_t b, std::size_t h, std::size_t i) noexcept {
  if (mask.rank() == 2) return i * mask.stride(0);
  return (mask.extent(0) == 1 ? 0 : b * mask.stride(0)) + (mask.extent(1) == 1 ? 0 : h * mask.stride(1)) +
         i * mask.stride(2);
}

}  // namespace detail
TRELLIS_END_ISA_NAMESPACE

struct attention_fn {
  template <class Target, tensor_view_of_rank<4> Q, tensor_view_of_rank<4> K, tensor_view_of_rank<4> V,
            tensor_view_of_rank<4> O>
  void operator()(Target&& target, const Q& q, const K& k, const V& v, const O& o,
                  const attention_options& opts = {}) const {
    using tq = typename Q::value_type;
    using to = typename O::value_type;
    static_assert(!std::is_const_v<typename O::element_type>, "attention: o must be a mutable view");
    static_assert(is_element_type_v<tq> && std::is_same_v<tq, typename K::value_type> &&
                      std::is_same_v<tq, typename V::value_type>,
                  "attention: q, k and v must share one element type, float or bf16");
    static_assert(std::is_same_v<to, float> || std::is_same_v<to, tq>, "attention: o must be float or q's type");
    const const_view_t<Q> qv = q;
    const const_view_t<K> kv = k;
    const const_view_t<V> vv = v;
    const auto shape = detail::validate_attention(detail::describe("q", qv), detail::describe("k", kv),
                                                  detail::describe("v", vv), detail::describe("o", o), opts);
    op_impl<attention_fn, std::remove_cvref_t<Target>>::run(target, qv, kv, vv, o, shape.scale, opts);
  }
};

inline constexpr attention_fn attention{};

}  // namespace trellis
