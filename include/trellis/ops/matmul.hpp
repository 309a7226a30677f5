#pragma once
// trellis::matmul — C ← act(α·op(A)·op(B) + bias) + residual + β·C₀, the same order in every
// target.
//
//   matmul(target, a, b, c);                                  // C = A·B
//   matmul(target, a, w_nk, c, {.transpose_b = true, .epilogue = epilogue::bias_gelu(bias)});
//
// a is [M, K] ([K, M] with transpose_a), b is [K, N] ([N, K] with transpose_b), c is [M, N]; any
// strides. Element types (A, B, C): (f32, f32, f32), (bf16, bf16, f32), (bf16, bf16, bf16). β = 0
// never reads C.

#include <array>
#include <cmath>
#include <type_traits>

#include "trellis/core/activation.hpp"
#include "trellis/core/dtype.hpp"
#include "trellis/core/validate.hpp"
#include "trellis/ops/op_impl.hpp"

namespace trellis {

/// What happens to each element of α·A·B on its way to C. Build it with the named constructors.
struct epilogue {
  activation act = activation::none;
  any_view bias{};      ///< [N], added before the activation
  any_view residual{};  ///< [M, N], added after the activation

  static epilogue none() { return {}; }
  static epilogue bias_only(any_view b) { return {activation::none, b, {}}; }
  static epilogue gelu() { return {activation::gelu_tanh, {}, {}}; }
  static epilogue gelu_erf() { return {activation::gelu_erf, {}, {}}; }
  static epilogue silu() { return {activation::silu, {}, {}}; }
  static epilogue bias_gelu(any_view b) { return {activation::gelu_tanh, b, {}}; }
  static epilogue bias_gelu_erf(any_view b) { return {activation::gelu_erf, b, {}}; }
  static epilogue bias_silu(any_view b) { return {activation::silu, b, {}}; }
  static epilogue residual_add(any_view r) { return {activation::none, {}, r}; }
  /// Adds `r` to the epilogue (e.g. epilogue::bias_gelu(b).with_residual(r)).
  epilogue with_residual(any_view r) const {
    epilogue e = *this;
    e.residual = r;
    return e;
  }
};

struct matmul_options {
  bool transpose_a = false;  ///< a is given as [K, M]
  bool transpose_b = false;  ///< b is given as [N, K] (the usual layout of inference weights)
  float alpha = 1.0f;
  float beta = 0.0f;  ///< 0 never reads C, so C may hold garbage (even NaN)
  ::trellis::epilogue epilogue{};
};

TRELLIS_BEGIN_ISA_NAMESPACE
namespace detail {

/// Logical (M, K, N) after the transposes.
struct matmul_shape {
  std::size_t m, k, n;
};

inline matmul_shape validate_matmul(const operand& a, const operand& b, const operand& c,
                                    const matmul_options& opts) {
  constexpr std::string_view op = "matmul";
  check_not_null(op, a);
  check_not_null(op, b);
  check_not_null(op, c);
  const std::size_t m = opts.transpose_a ? a.shape[1] : a.shape[0];
  const std::size_t k = opts.transpose_a ? a.shape[0] : a.shape[1];
  const std::size_t n = opts.transpose_b ? b.shape[0] : b.shape[1];
  check_extent(op, b, opts.transpose_b ? 1 : 0, k,
               opts.transpose_a ? "K = rows of a (transpose_a)" : "K = columns of a");
  check_extent(op, c, 0, m, opts.transpose_a ? "M = columns of a (transpose_a)" : "M = rows of a");
  check_extent(op, c, 1, n, opts.transpose_b ? "N = rows of b (transpose_b)" : "N = columns of b");
  check_not_self_overlapping(op, c);
  check_no_overlap(op, c, a);
  check_no_overlap(op, c, b);
  if (!std::isfinite(opts.alpha))
    fail(op, "options.alpha", "a finite value", std::to_string(opts.alpha));
  if (!std::isfinite(opts.beta))
    fail(op, "options.beta", "a finite value", std::to_string(opts.beta));
  if (opts.epilogue.bias) {
    const operand bias = describe("epilogue.bias", opts.epilogue.bias);
    check_optional_shape(op, bias, 1, {n}, "one value per column of C");
    check_not_null(op, bias);
    check_no_overlap(op, c, bias);
  }
  if (opts.epilogue.residual) {
    const operand residual = describe("epilogue.residual", opts.epilogue.residual);
    check_optional_shape(op, residual, 2, {m, n}, "the shape of C");
    check_not_null(op, residual);
    // Each residual element is read just before the C element at the same index is written.
    check_no_overlap(op, c, residual, identical_alias::allowed);
  }
  return {m, k, n};
}

}  // namespace detail
TRELLIS_END_ISA_NAMESPACE

/// True for a B operand packed ahead of time by a target (e.g. the CPU target's packed_matrix).
template <class T>
inline constexpr bool is_packed_matrix_v = false;

struct matmul_fn {
  template <class Target, tensor_view_of_rank<2> A, tensor_view_of_rank<2> B,
            tensor_view_of_rank<2> C>
  void operator()(Target&& target, const A& a, const B& b, const C& c,
                  const matmul_options& opts = {}) const {
    using ta = typename A::value_type;
    using tb = typename B::value_type;
    using tc = typename C::value_type;
    static_assert(!std::is_const_v<typename C::element_type>, "matmul: c must be a mutable view");
    static_assert(
        (std::is_same_v<ta, float> && std::is_same_v<tb, float> && std::is_same_v<tc, float>) ||
            (std::is_same_v<ta, bf16> && std::is_same_v<tb, bf16> && is_element_type_v<tc>),
        "matmul: supported element types (A, B, C) are (float, float, float), "
        "(bf16, bf16, float) and (bf16, bf16, bf16)");
    const const_view_t<A> av = a;
    const const_view_t<B> bv = b;
    detail::validate_matmul(detail::describe("a", av), detail::describe("b", bv),
                            detail::describe("c", c), opts);
    // Hand the backend logical [M, K] and [K, N] views: a transpose is only a swap of strides.
    op_impl<matmul_fn, std::remove_cvref_t<Target>>::run(target, opts.transpose_a ? av.transposed() : av,
                                    opts.transpose_b ? bv.transposed() : bv, c, opts);
  }

  /// C = epilogue(A·B) with B packed ahead of time by the target (its logical shape is [K, N]).
  template <class Target, tensor_view_of_rank<2> A, class PackedB, tensor_view_of_rank<2> C>
  requires is_packed_matrix_v<PackedB>
  void operator()(Target&& target, const A& a, const PackedB& b, const C& c,
                  const matmul_options& opts = {}) const {
    using ta = typename A::value_type;
    static_assert(!std::is_const_v<typename C::element_type>, "matmul: c must be a mutable view");
    static_assert(std::is_same_v<ta, typename PackedB::value_type>,
                  "matmul: a and the packed b must share an element type");
    static_assert(std::is_same_v<typename C::value_type, float> || std::is_same_v<ta, bf16>,
                  "matmul: supported element types (A, B, C) are (float, float, float), "
                  "(bf16, bf16, float) and (bf16, bf16, bf16)");
    if (opts.transpose_b)
      detail::fail("matmul", "options.transpose_b",
                   "false with a packed b (its layout was fixed when it was packed)", "true");
    const const_view_t<A> av = a;
    const detail::operand packed{"b", b.data(), 1, 2, {b.k(), b.n()}, {b.n(), 1}};
    detail::validate_matmul(detail::describe("a", av), packed, detail::describe("c", c), opts);
    op_impl<matmul_fn, std::remove_cvref_t<Target>>::run(target, opts.transpose_a ? av.transposed() : av, b, c, opts);
  }
};

/// The matmul front door: a function object, so it can be passed to algorithms and never
/// ADL-hijacked.
inline constexpr matmul_fn matmul{};

}  // namespace trellis
