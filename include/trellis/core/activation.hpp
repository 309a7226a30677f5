#pragma once
// The scalar definitions of the epilogue activations. These are the ground truth: the reference
// target evaluates them in double, the CPU target vectorises the same formulas.

#include <cmath>

namespace trellis {

enum class activation {
  none,
  gelu_tanh,  ///< 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
  gelu_erf,   ///< 0.5·x·(1 + erf(x/√2))
  silu,       ///< x·σ(x) = x / (1 + e^(−x))
};

constexpr const char* to_string(activation a) noexcept {
  switch (a) {
    case activation::none:
      return "none";
    case activation::gelu_tanh:
      return "gelu_tanh";
    case activation::gelu_erf:
      return "gelu_erf";
    case activation::silu:
      return "silu";
  }
  return "?";
}

/// Both GELU forms are written as x·(a probability) so nothing cancels for negative x
/// (½(1 + tanh z) = σ(2z) and ½(1 + erf(x/√2)) = ½·erfc(−x/√2)): the same values as the textbook
/// formulas, without their loss of all digits below x ≈ −6.
template <class Real>
Real apply_activation(activation a, Real x) noexcept {
  switch (a) {
    case activation::none:
      return x;
    case activation::gelu_tanh: {
      const Real k = Real(0.7978845608028654);  // √(2/π)
      const Real z = k * (x + Real(0.044715) * x * x * x);
      return x / (Real(1) + std::exp(Real(-2) * z));
    }
    case activation::gelu_erf:
      return Real(0.5) * x * std::erfc(-x * Real(0.7071067811865476));
    case activation::silu:
      return x / (Real(1) + std::exp(-x));
  }
  return x;
}

}  // namespace trellis
