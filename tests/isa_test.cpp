// isa: one program holding the kernels three times, from a -march=haswell TU (with and without AES, which
// decides Highway's vector width) and a -march=native TU. The
// ISA inline namespaces (DESIGN §3) must keep both copies: each TU reports its own ISA and computes
// right. This TU is built without -march and includes no Trellis header.

#include "isa_test.hpp"

#include <gtest/gtest.h>

#include <cmath>

namespace {

std::vector<float> expected() {
  std::vector<float> c(isa_m * isa_n, 0.0f);
  for (std::size_t i = 0; i < isa_m; ++i)
    for (std::size_t j = 0; j < isa_n; ++j) {
      float sum = 0.0f;
      for (std::size_t p = 0; p < isa_k; ++p)
        sum += isa_a_value(i * isa_k + p) * isa_b_value(p * isa_n + j);
      c[i * isa_n + j] = sum;
    }
  return c;
}

/// layernorm (eps 1e-5, no γ, β) of the probe's rows in double.
std::vector<float> expected_norm() {
  std::vector<float> y(isa_norm_rows * isa_norm_hidden);
  for (std::size_t r = 0; r < isa_norm_rows; ++r) {
    double mean = 0, var = 0;
    for (std::size_t j = 0; j < isa_norm_hidden; ++j) mean += isa_norm_value(r * isa_norm_hidden + j);
    mean /= double(isa_norm_hidden);
    for (std::size_t j = 0; j < isa_norm_hidden; ++j) {
      const double d = isa_norm_value(r * isa_norm_hidden + j) - mean;
      var += d * d;
    }
    var /= double(isa_norm_hidden);
    for (std::size_t j = 0; j < isa_norm_hidden; ++j)
      y[r * isa_norm_hidden + j] = float((isa_norm_value(r * isa_norm_hidden + j) - mean) / std::sqrt(var + 1e-5));
  }
  return y;
}

/// Every output within 1e-5 of the double reference (values are O(1); fp32 statistics over 29 values).
void expect_norm(const isa_result& r) {
  const std::vector<float> want = expected_norm();
  ASSERT_EQ(r.norm.size(), want.size());
  for (std::size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(r.norm[i], want[i], 1e-5) << r.isa << " at " << i;
}

bool host_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

TEST(Isa, HaswellTranslationUnitUsesAvx2Kernels) {
  const isa_result r = isa_run_haswell();
  EXPECT_EQ(r.isa, "avx2");
  EXPECT_EQ(r.c, expected());
  EXPECT_EQ(r.c_bf16, expected());
  expect_norm(r);
}

TEST(Isa, HaswellWithoutAesHasItsOwnNamespaceAndSafeTails) {
  // 128-bit Highway inside an AVX2 TU: its own kernels (not isa_avx2's), and masked tail loads that
  // stay inside unaligned rows (Highway 1.0.3's SSSE3 MaskedLoad is an aligned full-vector load).
  const isa_result r = isa_run_haswell_hwy128(), h = isa_run_haswell();
  EXPECT_EQ(r.isa, "avx2-hwy128");
  EXPECT_NE(r.kernel, h.kernel);
  EXPECT_EQ(r.c, expected());
  EXPECT_EQ(r.c_bf16, expected());
  expect_norm(r);
}

TEST(Isa, NativeTranslationUnitKeepsItsOwnKernels) {
  const isa_result r = isa_run_native();
  EXPECT_EQ(r.c, expected());
  EXPECT_EQ(r.c_bf16, expected());
  expect_norm(r);
  if (!host_has_avx512())
    GTEST_SKIP() << "this host's native ISA is " << r.isa << ": nothing to tell apart from avx2";
  EXPECT_NE(r.isa, "avx2");
  EXPECT_NE(r.isa.find("avx512"), std::string::npos) << r.isa;
}

TEST(Isa, BothCopiesInOneProcess) {
  // Interleave the calls: whichever copy the linker kept for shared symbols must not be the
  // other's.
  const isa_result h1 = isa_run_haswell(), n1 = isa_run_native(), h2 = isa_run_haswell();
  EXPECT_EQ(h1.isa, h2.isa);
  EXPECT_EQ(h1.c, n1.c);
  EXPECT_EQ(h2.c_bf16, n1.c_bf16);
  EXPECT_EQ(h1.kernel, h2.kernel);
  if (host_has_avx512()) {
    EXPECT_NE(h1.isa, n1.isa);
    // Had the kernels no ISA namespace, the linker would have folded the two copies into one.
    EXPECT_NE(h1.kernel, n1.kernel)
        << "the -march=haswell and -march=native TUs share one kernel body";
  }
}

}  // namespace
