// Compiled with -fno-exceptions: errors go to the handler set by trellis::set_error_handler.
//
//   trellis_no_exceptions_test handler   installs a handler that prints the message and exits 0
//                                        (ctest checks the message with PASS_REGULAR_EXPRESSION);
//   trellis_no_exceptions_test           runs the death test: the default handler prints and
//   aborts.

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <trellis/ops/matmul.hpp>
#include <trellis/reference.hpp>

static_assert(TRELLIS_HAS_EXCEPTIONS == 0, "this test must be compiled with -fno-exceptions");

namespace {

float a_data[4 * 3], b_data[4 * 2], c_data[4 * 2];

void invalid_matmul() {
  trellis::tensor_view<const float, 2> a{a_data, {4, 3}};
  trellis::tensor_view<const float, 2> b{b_data, {4, 2}};  // K = 3 expected in axis 0
  trellis::tensor_view<float, 2> c{c_data, {4, 2}};
  trellis::matmul(trellis::reference{}, a, b, c);
}

void print_and_exit(const char* message) {
  std::printf("handler got: %s\n", message);
  std::fflush(stdout);
  std::_Exit(0);
}

TEST(NoExceptions, DefaultHandlerPrintsAndAborts) {
  EXPECT_DEATH(invalid_matmul(), "trellis::error: matmul: b: expected extent 3 in axis 0");
}

TEST(NoExceptions, ValidCallsStillWork) {
  const float ones[4] = {1, 1, 1, 1};
  float out[4] = {};
  trellis::tensor_view<const float, 2> a{ones, {2, 2}}, b{ones, {2, 2}};
  trellis::tensor_view<float, 2> c{out, {2, 2}};
  trellis::matmul(trellis::reference{}, a, b, c);
  EXPECT_EQ(out[3], 2.0f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], "handler") == 0) {
    trellis::set_error_handler(&print_and_exit);
    invalid_matmul();
    std::printf("invalid call returned normally\n");
    return 1;
  }
  testing::InitGoogleTest(&argc, argv);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  return RUN_ALL_TESTS();
}
