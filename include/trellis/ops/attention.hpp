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
// Element types: q, k, v share one type (float or bf16); o is float or that type. Statistics are fp32
// (fp64 in the reference).

#include <cmath>
#include <optional>
#include <type_traits>

#include "trellis/core/dtype.hpp"
#include "trellis/core/validate.hpp"
#include "trellis/ops/op_impl.hpp"

namespace trellis {

struct attention_options {
  std::optional<float> scale{}; ///< softmax scale; 1/√D when not set
  bool causal = false;         ///< query i sees keys j ≤ i + (Skv − Sq)
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
  return {batch, heads, kv_heads, seq_q, seq_kv, head_dim, scale};
}

/// Keys visible to query row i under the library's causal alignment: j < visible_keys(i).
constexpr std::size_t causal_visible_keys(std::size_t i, std::size_t seq_q, std::size_t seq_kv) noexcept {
  // j ≤ i + (Skv − Sq)  ⇔  j < i + 1 + Skv − Sq, clamped to [0, Skv].
  const std::size_t limit = i + 1 + seq_kv;
  return limit <= seq_q ? 0 : std::min(seq_kv, limit - seq_q);
}

}  // namespace detail
TRELLIS_END_ISA_NAMESPACE

struct attention_fn {
  template <class Target, tensor_view_of_rank<4> Q, tensor_view_of_rank<4> K, tensor_view_of_rank<4> V,
            tensor_view_of_rank<4> O>
  void operator()(const Target& target, const Q& q, const K& k, const V& v, const O& o,
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
    op_impl<attention_fn, Target>::run(target, qv, kv, vv, o, shape.scale, opts);
  }
};

inline constexpr attention_fn attention{};

}  // namespace trellis
