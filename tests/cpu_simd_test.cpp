// The SIMD layer's own numerics where kernels rely on a stated accuracy: e^x (softmax, GELU, SiLU)
// against std::exp in double over the whole float range, with the contract of simd_provider.hpp:
// within 2 ulp where e^x is a normal float, within the smallest normal (2^−126) below that (a provider
// may flush the denormal range to 0), +inf on overflow, NaN kept. The library exps used off AVX-512
// (Highway 1.0.3's contrib Exp, xsimd 8.1's exp) build 2^n only up to n = 127 and so overflow from
// x = 127.5·ln2 ≈ 88.376 instead of ln(FLT_MAX) ≈ 88.723: +inf is accepted there (results above
// 2.4e38, which no kernel produces on purpose); the AVX-512 form is exact to the real boundary.

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <trellis/cpu.hpp>
#include <vector>

#include "cpu_support.hpp"

namespace {

CPU_TEST_SUITE(CpuSimd);

/// e^x of every input, one vector (and a masked tail) at a time.
template <class S>
std::vector<float> simd_exp(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  std::size_t i = 0;
  for (; i + S::lanes <= x.size(); i += S::lanes) S::store(y.data() + i, S::exp(S::load(x.data() + i)));
  if (i < x.size()) S::store_n(y.data() + i, S::exp(S::load_n(x.data() + i, x.size() - i)), x.size() - i);
  return y;
}

/// The spacing of floats at a normal v > 0.
double ulp_at(double v) {
  int e = 0;
  std::frexp(v, &e);  // v = m·2^e, m in [0.5, 1)
  return std::ldexp(1.0, e - 24);
}

CPU_TEST(CpuSimd, ExpWithinTwoUlpWhereNormal) {
  using S = trellis::cpu_detail::simd<typename Target::provider>;
  // Every 61st float from −120 to 100 (≈ 36 M values in steps that hit every exponent and mantissa
  // pattern class), plus the boundaries and the special values.
  std::vector<float> x;
  const auto add_range = [&](float lo, float hi, std::uint32_t stride) {  // lo < 0 ≤ hi
    for (std::uint32_t b = std::bit_cast<std::uint32_t>(lo); b > 0x80000000u; b = b > stride ? b - stride : 0x80000000u)
      x.push_back(std::bit_cast<float>(b));
    for (std::uint32_t b = 0; b <= std::bit_cast<std::uint32_t>(hi); b += stride) x.push_back(std::bit_cast<float>(b));
  };
  add_range(-120.0f, 100.0f, 61);
  for (float v : {88.72283f, 88.72284f, 89.0f, -87.33655f, -103.27893f, -103.97208f, -104.0f, 0.0f, -0.0f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
    x.push_back(v);
  const std::vector<float> y = simd_exp<S>(x);

  std::size_t bad = 0;
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(double(x[i]));
    double err_ulp = 0;
    if (ref > double(std::numeric_limits<float>::max()))
      err_ulp = std::isinf(y[i]) && y[i] > 0 ? 0 : 1e9;  // overflow: +inf
    else if (ref >= std::ldexp(1.0, 127) * std::sqrt(2.0) && std::isinf(y[i]) && y[i] > 0)
      err_ulp = 0;  // the libraries' early overflow (see the header)
    else if (ref < std::ldexp(1.0, -126))  // denormal or below: absolute error within the smallest normal
      err_ulp = y[i] >= 0.0f && std::abs(double(y[i]) - ref) <= std::ldexp(1.0, -126) ? 0 : 1e9;
    else
      err_ulp = std::abs(double(y[i]) - ref) / ulp_at(ref);
    if (!(err_ulp <= 2.0)) {
      if (bad++ < 10) ADD_FAILURE() << "exp(" << x[i] << ") = " << y[i] << ", want " << ref << " (" << err_ulp << " ulp)";
    }
    if (err_ulp > worst && err_ulp < 1e9) worst = err_ulp;
  }
  EXPECT_EQ(bad, 0u) << "of " << x.size() << " inputs; worst error " << worst << " ulp";
  testing::Test::RecordProperty("worst_ulp", std::to_string(worst));

  const std::vector<float> nan = simd_exp<S>(std::vector<float>(S::lanes, std::numeric_limits<float>::quiet_NaN()));
  for (float v : nan) EXPECT_TRUE(std::isnan(v));
}

}  // namespace
