#pragma once
// The scalar math of the Vector, Scalar and GpSimd engines: ALU operations and activation functions,
// evaluated in fp32 (DESIGN.md §4.5: operands are widened exactly on read, results rounded on write).

#include <cmath>
#include <cstdint>

#include "trellis/core/activation.hpp"

namespace trellis::systolic {

/// Two-operand ALU operations (tensor_tensor, tensor_scalar, tensor_reduce, affine_select's compare).
enum class alu_op : std::uint8_t {
  bypass,    ///< a (tensor_scalar: skip this stage)
  add,
  subtract,  ///< a − b
  multiply,
  divide,    ///< a / b
  max,
  min,
  abs_max,   ///< max(|a|, |b|)
  is_equal,  ///< comparisons give 1 or 0
  not_equal,
  is_ge,
  is_gt,
  is_le,
  is_lt,
};

constexpr const char* to_string(alu_op op) noexcept {
  switch (op) {
    case alu_op::bypass: return "bypass";
    case alu_op::add: return "add";
    case alu_op::subtract: return "subtract";
    case alu_op::multiply: return "multiply";
    case alu_op::divide: return "divide";
    case alu_op::max: return "max";
    case alu_op::min: return "min";
    case alu_op::abs_max: return "abs_max";
    case alu_op::is_equal: return "is_equal";
    case alu_op::not_equal: return "not_equal";
    case alu_op::is_ge: return "is_ge";
    case alu_op::is_gt: return "is_gt";
    case alu_op::is_le: return "is_le";
    case alu_op::is_lt: return "is_lt";
  }
  return "?";
}

inline float apply(alu_op op, float a, float b) noexcept {
  switch (op) {
    case alu_op::bypass: return a;
    case alu_op::add: return a + b;
    case alu_op::subtract: return a - b;
    case alu_op::multiply: return a * b;
    case alu_op::divide: return a / b;
    case alu_op::max: return std::fmax(a, b);
    case alu_op::min: return std::fmin(a, b);
    case alu_op::abs_max: return std::fmax(std::fabs(a), std::fabs(b));
    case alu_op::is_equal: return a == b ? 1.0f : 0.0f;
    case alu_op::not_equal: return a != b ? 1.0f : 0.0f;
    case alu_op::is_ge: return a >= b ? 1.0f : 0.0f;
    case alu_op::is_gt: return a > b ? 1.0f : 0.0f;
    case alu_op::is_le: return a <= b ? 1.0f : 0.0f;
    case alu_op::is_lt: return a < b ? 1.0f : 0.0f;
  }
  return a;
}

/// True for the ops tensor_reduce accepts (associative, with an identity).
constexpr bool is_reduction(alu_op op) noexcept {
  return op == alu_op::add || op == alu_op::multiply || op == alu_op::max || op == alu_op::min || op == alu_op::abs_max;
}

/// The identity element of a reduction op.
inline float reduction_identity(alu_op op) noexcept {
  switch (op) {
    case alu_op::multiply: return 1.0f;
    case alu_op::max: return -INFINITY;
    case alu_op::min: return INFINITY;
    default: return 0.0f;
  }
}

/// The Scalar Engine's activation functions (trainium.md, Engines: exp, gelu, silu, tanh, sqrt/rsqrt, log,
/// copy; square and reciprocal are NKI activation functions too).
enum class activation_function : std::uint8_t {
  identity,  ///< also NKI's `copy`
  exp,
  gelu,       ///< exact: 0.5·x·(1 + erf(x/√2))
  gelu_tanh,  ///< the tanh approximation
  silu,
  tanh,
  sqrt,
  rsqrt,
  reciprocal,
  square,
  log,
};

constexpr const char* to_string(activation_function f) noexcept {
  switch (f) {
    case activation_function::identity: return "identity";
    case activation_function::exp: return "exp";
    case activation_function::gelu: return "gelu";
    case activation_function::gelu_tanh: return "gelu_tanh";
    case activation_function::silu: return "silu";
    case activation_function::tanh: return "tanh";
    case activation_function::sqrt: return "sqrt";
    case activation_function::rsqrt: return "rsqrt";
    case activation_function::reciprocal: return "reciprocal";
    case activation_function::square: return "square";
    case activation_function::log: return "log";
  }
  return "?";
}

inline float apply(activation_function f, float x) noexcept {
  switch (f) {
    case activation_function::identity: return x;
    case activation_function::exp: return std::exp(x);
    case activation_function::gelu: return apply_activation(activation::gelu_erf, x);
    case activation_function::gelu_tanh: return apply_activation(activation::gelu_tanh, x);
    case activation_function::silu: return apply_activation(activation::silu, x);
    case activation_function::tanh: return std::tanh(x);
    case activation_function::sqrt: return std::sqrt(x);
    case activation_function::rsqrt: return 1.0f / std::sqrt(x);
    case activation_function::reciprocal: return 1.0f / x;
    case activation_function::square: return x * x;
    case activation_function::log: return std::log(x);
  }
  return x;
}

}  // namespace trellis::systolic
