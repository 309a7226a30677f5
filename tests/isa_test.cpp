// isa: one program holding the kernels twice, from a -march=haswell TU and a -march=native TU. The
// ISA inline namespaces (DESIGN §3) must keep both copies: each TU reports its own ISA and computes
// right. This TU is built without -march and includes no Trellis header.

#include "isa_test.hpp"

#include <gtest/gtest.h>

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
}

TEST(Isa, NativeTranslationUnitKeepsItsOwnKernels) {
  const isa_result r = isa_run_native();
  EXPECT_EQ(r.c, expected());
  EXPECT_EQ(r.c_bf16, expected());
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
