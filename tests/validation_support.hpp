#pragma once
// Shared by the validation suites: the targets as a test parameter (ctest names end in /reference,
// /cpu_hwy, /cpu_xsimd), a bitwise "untouched" watch over buffers, and expect_error.
//
// TRELLIS_TEST_HAVE_CPU is set by tests/CMakeLists.txt when the CPU target is built.

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <string_view>
#include <trellis/ops/attention.hpp>
#include <trellis/ops/matmul.hpp>
#include <trellis/ops/norm.hpp>
#include <trellis/reference.hpp>
#include <vector>
#if TRELLIS_TEST_HAVE_CPU
#include <trellis/cpu.hpp>
#endif

#include "test_support.hpp"

namespace trellis_test {

constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();
constexpr float inf_f = std::numeric_limits<float>::infinity();

/// Bitwise snapshots of buffers that must not change when a call is rejected.
class untouched {
 public:
  template <class T, std::size_t R>
  untouched& operator<<(const guarded<T, R>& g) {
    buffers_.push_back([&g] { return g.snapshot(); });
    before_.push_back(g.snapshot());
    return *this;
  }
  void check() const {
    for (std::size_t b = 0; b < buffers_.size(); ++b)
      EXPECT_EQ(buffers_[b](), before_[b]) << "buffer " << b << " was written";
  }

 private:
  std::vector<std::function<std::vector<std::uint32_t>()>> buffers_;
  std::vector<std::vector<std::uint32_t>> before_;
};

/// Runs f, which must raise trellis::error "<op>: <arg>: expected ..., got ..." (containing
/// `also`), and checks that no watched buffer changed.
template <class F>
void expect_error(F&& f, std::string_view op, std::string_view arg, const untouched& watch,
                  std::string_view also = {}) {
  const std::string prefix = std::string(op) + ": " + std::string(arg) + ": expected ";
  try {
    f();
    ADD_FAILURE() << "no trellis::error raised; expected one starting with \"" << prefix << "\"";
  } catch (const trellis::error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(prefix, 0), 0u) << "message: " << m << "\nexpected prefix: " << prefix;
    EXPECT_NE(m.find(", got "), std::string::npos) << m;
    if (!also.empty()) {
      EXPECT_NE(m.find(also), std::string::npos) << m << "\nshould mention: " << also;
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
  watch.check();
}

/// The targets every validation test runs on: validation happens once in the front door, before
/// dispatch, so messages and the no-partial-write rule must be the same for all of them.
enum class target_id { reference, cpu_hwy, cpu_xsimd };

template <class F>
void visit_target(target_id id, F&& f) {
  switch (id) {
    case target_id::reference:
      f(trellis::reference{});
      return;
#if TRELLIS_TEST_HAVE_CPU
    case target_id::cpu_hwy:
      f(trellis::basic_cpu<trellis::hwy_provider>{});
      return;
    case target_id::cpu_xsimd:
      f(trellis::basic_cpu<trellis::xsimd_provider>{});
      return;
#else
    default:
      GTEST_SKIP() << "CPU target not built";
#endif
  }
}

inline std::string target_name(const testing::TestParamInfo<target_id>& param) {
  static const char* const names[] = {"reference", "cpu_hwy", "cpu_xsimd"};
  return names[static_cast<int>(param.param)];
}

}  // namespace trellis_test

#if TRELLIS_TEST_HAVE_CPU
#define TRELLIS_TEST_TARGETS                                            \
  trellis_test::target_id::reference, trellis_test::target_id::cpu_hwy, \
      trellis_test::target_id::cpu_xsimd
#else
#define TRELLIS_TEST_TARGETS trellis_test::target_id::reference
#endif

/// TARGET_TEST_SUITE(Suite); then TARGET_TEST(Suite, Name) { body using `tg`, the target } runs the
/// body once per target.
#define TARGET_TEST_SUITE(Suite)                                           \
  class Suite : public testing::TestWithParam<trellis_test::target_id> {}; \
  INSTANTIATE_TEST_SUITE_P(, Suite, testing::Values(TRELLIS_TEST_TARGETS), \
                           trellis_test::target_name)

#define TARGET_TEST(Suite, Name)                                                           \
  template <class Target>                                                                  \
  void Suite##_##Name##_body(const Target& tg);                                            \
  TEST_P(Suite, Name) {                                                                    \
    trellis_test::visit_target(GetParam(),                                                 \
                               [](const auto& target) { Suite##_##Name##_body(target); }); \
  }                                                                                        \
  template <class Target>                                                                  \
  void Suite##_##Name##_body(const Target& tg)
