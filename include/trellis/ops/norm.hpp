#pragma once
// trellis::layernorm and trellis::rmsnorm over the last axis of x (any rank 1..4).
//
//   layernorm(target, x, gamma, beta, y, {.eps = 1e-5f});   // y = (x − mean)/√(var + eps)·γ + β
//   rmsnorm(target, x, gamma, y, {.eps = 1e-6f});           // y = x/√(mean(x²) + eps)·γ
//
// γ and β are optional [hidden] views (pass {} to omit). With `.residual = r` the op normalises s = x + r,
// the sum taken in fp32, and, if `.residual_out` is given, also writes s there rounded to its type (the
// fused residual add of a transformer block).
// x and y share a shape; the normalised axis must be contiguous. y may be x itself (in place), and
// residual_out may be x or r. Element types: x float or bf16; y float or x's type; statistics fp32 or wider.

#include <type_traits>

#include "trellis/core/dtype.hpp"
#include "trellis/core/validate.hpp"
#include "trellis/ops/op_impl.hpp"

namespace trellis {

struct layernorm_options {
  float eps = 1e-5f;
  any_view residual{};           ///< r, same shape as x: normalise x + r
  any_output_view residual_out{};///< optional output of x + r, same shape as x
};

struct rmsnorm_options {
  float eps = 1e-6f;
  any_view residual{};
  any_output_view residual_out{};
};

TRELLIS_BEGIN_ISA_NAMESPACE
namespace detail {

/// x viewed as [rows, hidden].
struct norm_shape {
  std::size_t rows, hidden;
};

template <class Options>
norm_shape validate_norm(std::string_view op, const operand& x, const any_view& gamma, const any_view* beta,
                         const operand& y, const Options& opts) {
  check_not_null(op, x);
  check_not_null(op, y);
  const std::size_t hidden = x.shape[x.rank - 1];
  for (std::size_t axis = 0; axis < x.rank; ++axis) check_extent(op, y, axis, x.shape[axis], "the shape of x");
  check_unit_last_stride(op, x);
  check_unit_last_stride(op, y);
  check_not_self_overlapping(op, y);
  check_no_overlap(op, y, x, identical_alias::allowed);  // each row is read whole before it is written
  const auto check_param = [&](const any_view& p, std::string_view name) {
    if (!p) return;
    const operand d = describe(name, p);
    check_optional_shape(op, d, 1, {hidden}, "one value per element of the normalised axis");
    check_not_null(op, d);
    check_no_overlap(op, y, d);
    if (opts.residual_out) check_no_overlap(op, describe("options.residual_out", opts.residual_out), d);
  };
  check_param(gamma, "gamma");
  if (beta) check_param(*beta, "beta");
  if (!(opts.eps >= 0.0f) || !std::isfinite(opts.eps))
    fail(op, "options.eps", "a finite value ≥ 0", std::to_string(opts.eps));
  if (opts.residual_out && !opts.residual)
    fail(op, "options.residual_out", "to be set only together with options.residual", "residual_out without residual");
  if (opts.residual) {
    const operand r = describe("options.residual", opts.residual);
    check_optional_shape(op, r, x.rank, x.shape, "the shape of x");
    check_not_null(op, r);
    check_unit_last_stride(op, r);
    check_no_overlap(op, y, r, identical_alias::allowed);
  }
  if (opts.residual_out) {
    const operand s = describe("options.residual_out", opts.residual_out);
    check_optional_shape(op, s, x.rank, x.shape, "the shape of x");
    check_not_null(op, s);
    check_unit_last_stride(op, s);
    check_not_self_overlapping(op, s);
    check_no_overlap(op, s, x, identical_alias::allowed);
    check_no_overlap(op, s, describe("options.residual", opts.residual), identical_alias::allowed);
    check_no_overlap(op, y, s);
  }
  return {hidden ? x.size() / hidden : 0, hidden};
}

template <class X, class Y>
void check_norm_types() {
  using tx = typename X::value_type;
  using ty = typename Y::value_type;
  static_assert(!std::is_const_v<typename Y::element_type>, "norm: y must be a mutable view");
  static_assert(is_element_type_v<tx>, "norm: x must be float or bf16");
  static_assert(std::is_same_v<ty, float> || std::is_same_v<ty, tx>, "norm: y must be float or x's type");
}

}  // namespace detail
TRELLIS_END_ISA_NAMESPACE

struct layernorm_fn {
  template <class Target, class X, class Y>
    requires(is_tensor_view_v<std::remove_cvref_t<X>> && is_tensor_view_v<std::remove_cvref_t<Y>> &&
             std::remove_cvref_t<X>::rank <= 4 && std::remove_cvref_t<X>::rank == std::remove_cvref_t<Y>::rank)
  void operator()(Target&& target, const X& x, const any_view& gamma, const any_view& beta, const Y& y,
                  const layernorm_options& opts = {}) const {
    detail::check_norm_types<X, Y>();
    const const_view_t<X> xv = x;
    const auto shape = detail::validate_norm("layernorm", detail::describe("x", xv), gamma, &beta,
                                             detail::describe("y", y), opts);
    op_impl<layernorm_fn, std::remove_cvref_t<Target>>::run(target, xv, gamma, beta, y, shape.rows, shape.hidden, opts);
  }
};

struct rmsnorm_fn {
  template <class Target, class X, class Y>
    requires(is_tensor_view_v<std::remove_cvref_t<X>> && is_tensor_view_v<std::remove_cvref_t<Y>> &&
             std::remove_cvref_t<X>::rank <= 4 && std::remove_cvref_t<X>::rank == std::remove_cvref_t<Y>::rank)
  void operator()(Target&& target, const X& x, const any_view& gamma, const Y& y,
                  const rmsnorm_options& opts = {}) const {
    detail::check_norm_types<X, Y>();
    const const_view_t<X> xv = x;
    const auto shape =
        detail::validate_norm("rmsnorm", detail::describe("x", xv), gamma, nullptr, detail::describe("y", y), opts);
    op_impl<rmsnorm_fn, std::remove_cvref_t<Target>>::run(target, xv, gamma, y, shape.rows, shape.hidden, opts);
  }
};

inline constexpr layernorm_fn layernorm{};
inline constexpr rmsnorm_fn rmsnorm{};

}  // namespace trellis
