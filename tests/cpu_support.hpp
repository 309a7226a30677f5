#pragma once
// Shared by the cpu suites: the two providers as a test parameter (ctest names end in /hwy,
// /xsimd), and targets with an explicit thread count.

#include <gtest/gtest.h>

#include <string>
#include <trellis/cpu.hpp>
#include <trellis/reference.hpp>

#include "test_support.hpp"

namespace trellis_test {

enum class provider_id { hwy, xsimd };

inline std::string provider_name(const testing::TestParamInfo<provider_id>& param) {
  return param.param == provider_id::hwy ? "hwy" : "xsimd";
}

/// Calls f(trellis::basic_cpu<Provider>{}) for the chosen provider.
template <class F>
void visit_provider(provider_id id, F&& f) {
  if (id == provider_id::hwy)
    f(trellis::basic_cpu<trellis::hwy_provider>{});
  else
    f(trellis::basic_cpu<trellis::xsimd_provider>{});
}

template <class Target>
Target with_threads(int threads) {
  Target t{};
  t.threads = threads;
  return t;
}

}  // namespace trellis_test

/// CPU_TEST(Suite, Name) { body using `Target`, the basic_cpu type } runs the body once per
/// provider. `Suite` must be a testing::TestWithParam<provider_id> instantiated over both
/// providers.
#define CPU_TEST(Suite, Name)                                                                     \
  template <class Target>                                                                         \
  void Suite##_##Name##_body();                                                                   \
  TEST_P(Suite, Name) {                                                                           \
    trellis_test::visit_provider(GetParam(),                                                      \
                                 [](auto target) { Suite##_##Name##_body<decltype(target)>(); }); \
  }                                                                                               \
  template <class Target>                                                                         \
  void Suite##_##Name##_body()

#define CPU_TEST_SUITE(Suite)                                                                     \
  class Suite : public testing::TestWithParam<trellis_test::provider_id> {};                      \
  INSTANTIATE_TEST_SUITE_P(                                                                       \
      , Suite, testing::Values(trellis_test::provider_id::hwy, trellis_test::provider_id::xsimd), \
      trellis_test::provider_name)
