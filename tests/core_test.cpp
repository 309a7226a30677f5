// core: bf16 conversions, tensor_view, any_view, errors and the error handler.

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <trellis/core/aligned_allocator.hpp>
#include <trellis/core/bf16.hpp>
#include <trellis/core/config.hpp>
#include <trellis/core/dtype.hpp>
#include <trellis/core/error.hpp>
#include <trellis/core/tensor_view.hpp>
#include <trellis/ops/matmul.hpp>
#include <trellis/reference.hpp>
#include <type_traits>

namespace {

using trellis::bf16;

// ---------------------------------------------------------------------------------------------------
// bf16

/// An independent model of float -> bf16 round-to-nearest-even for finite inputs: pick the two bf16
/// neighbours by truncation, compare distances in double (exact), ties go to the even mantissa. The
/// neighbour above the largest finite bf16 is 2^128, i.e. Inf, as IEEE's unbounded-exponent rule
/// says.
std::uint16_t model_round(float f) {
  const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
  const std::uint32_t sign = u & 0x80000000u, mag = u & 0x7fffffffu;
  const std::uint32_t lo = mag & 0xffff0000u, hi = lo + 0x10000u;
  const double x = std::fabs(double(f));
  const double vlo = double(std::bit_cast<float>(lo));
  const double vhi = hi == 0x7f800000u ? std::ldexp(1.0, 128) : double(std::bit_cast<float>(hi));
  std::uint32_t pick;
  if (x - vlo < vhi - x)
    pick = lo;
  else if (x - vlo > vhi - x)
    pick = hi;
  else
    pick = ((lo >> 16) & 1u) ? hi : lo;
  return static_cast<std::uint16_t>((sign | pick) >> 16);
}

TEST(Bf16, MatchesRoundToNearestEvenModelOverAllUpperHalves) {
  const std::uint32_t lower_halves[] = {0x0000, 0x0001, 0x3fff, 0x7fff,
                                        0x8000, 0x8001, 0xc000, 0xffff};
  std::size_t checked = 0;
  for (std::uint32_t upper = 0; upper < 0x10000u; ++upper) {
    if ((upper & 0x7f80u) == 0x7f80u) continue;  // Inf/NaN upper halves: tested separately
    for (std::uint32_t lower : lower_halves) {
      const float f = std::bit_cast<float>((upper << 16) | lower);
      const std::uint16_t want = model_round(f);
      const std::uint16_t got = bf16(f).bits;
      if (got != want) {
        ADD_FAILURE() << "bf16(" << f << " = 0x" << std::hex << ((upper << 16) | lower)
                      << "): got 0x" << got << ", expected 0x" << want;
        return;
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 500000u);
}

TEST(Bf16, TiesGoToEvenBothWays) {
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7 (odd): down to 1.
  EXPECT_EQ(bf16(std::bit_cast<float>(0x3f808000u)).bits, 0x3f80);
  // 1 + 3·2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up.
  EXPECT_EQ(bf16(std::bit_cast<float>(0x3f818000u)).bits, 0x3f82);
  // Just above and below a tie.
  EXPECT_EQ(bf16(std::bit_cast<float>(0x3f808001u)).bits, 0x3f81);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x3f817fffu)).bits, 0x3f81);
  // Negative ties behave symmetrically.
  EXPECT_EQ(bf16(std::bit_cast<float>(0xbf808000u)).bits, 0xbf80);
  EXPECT_EQ(bf16(std::bit_cast<float>(0xbf818000u)).bits, 0xbf82);
  // Integers: 257 ties to 256, 259 ties to 260.
  EXPECT_EQ(float(bf16(257.0f)), 256.0f);
  EXPECT_EQ(float(bf16(259.0f)), 260.0f);
  EXPECT_EQ(trellis::round_to_bf16(259.0f), 260.0f);
  // A tie whose rounding carries into the exponent.
  EXPECT_EQ(bf16(std::bit_cast<float>(0x3fffc000u)).bits, 0x4000);
}

TEST(Bf16, ExactValuesRoundTrip) {
  for (float f : {0.0f, 1.0f, -1.0f, 0.5f, 1.5f, -2.75f, 256.0f, 65536.0f, -0.0f}) {
    EXPECT_EQ(float(bf16(f)), f);
  }
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    if ((b & 0x7f80u) == 0x7f80u && (b & 0x7fu)) continue;  // NaNs
    const bf16 h = bf16::from_bits(static_cast<std::uint16_t>(b));
    ASSERT_EQ(bf16(float(h)).bits, b) << std::hex << b;
  }
}

TEST(Bf16, NaNStaysQuietNaNWithSign) {
  const float qnan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(float(bf16(qnan))));
  EXPECT_TRUE(std::isnan(float(bf16(-qnan))));
  EXPECT_TRUE(std::signbit(float(bf16(-qnan))));
  // Signalling NaNs and NaNs whose payload lives only in the lower half must not become Inf.
  for (std::uint32_t u : {0x7f800001u, 0x7f800100u, 0x7fa00000u, 0x7fbfffffu, 0xff800001u,
                          0x7fffffffu, 0xffffffffu}) {
    const bf16 h(std::bit_cast<float>(u));
    EXPECT_TRUE(std::isnan(float(h))) << std::hex << u;
    EXPECT_EQ(h.bits & 0x0040u, 0x0040u) << "quiet bit, input 0x" << std::hex << u;
    EXPECT_EQ(h.bits & 0x8000u, (u >> 16) & 0x8000u) << "sign, input 0x" << std::hex << u;
  }
  // NaN != NaN under bf16's operator==.
  EXPECT_FALSE(bf16(qnan) == bf16(qnan));
}

TEST(Bf16, InfinityAndOverflow) {
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(bf16(inf).bits, 0x7f80);
  EXPECT_EQ(bf16(-inf).bits, 0xff80);
  EXPECT_EQ(float(bf16(inf)), inf);
  // The largest finite bf16 is 0x7f7f = (2 - 2^-7)·2^127.
  const float max_bf16 = float(bf16::from_bits(0x7f7f));
  EXPECT_EQ(bf16(max_bf16).bits, 0x7f7f);
  // Above the midpoint to 2^128 (and FLT_MAX) rounds to Inf; below it stays finite; the midpoint is
  // a tie to even (Inf).
  EXPECT_EQ(bf16(std::numeric_limits<float>::max()).bits, 0x7f80);
  EXPECT_EQ(bf16(-std::numeric_limits<float>::max()).bits, 0xff80);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x7f7f7fffu)).bits, 0x7f7f);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x7f7f8000u)).bits, 0x7f80);
}

TEST(Bf16, DenormalsAndZeros) {
  EXPECT_EQ(bf16(0.0f).bits, 0x0000);
  EXPECT_EQ(bf16(-0.0f).bits, 0x8000);
  // Smallest bf16 denormal 2^-133 survives; half of it ties to even (0); a bit more rounds up.
  EXPECT_EQ(bf16(std::ldexp(1.0f, -133)).bits, 0x0001);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x00008000u)).bits, 0x0000);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x00008001u)).bits, 0x0001);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x00018000u)).bits, 0x0002);
  EXPECT_EQ(bf16(std::bit_cast<float>(0x80018000u)).bits, 0x8002);
  // The largest denormal float rounds up to the smallest normal bf16.
  EXPECT_EQ(bf16(std::bit_cast<float>(0x007fffffu)).bits, 0x0080);
  EXPECT_EQ(float(bf16::from_bits(0x0001)), std::ldexp(1.0f, -133));
}

TEST(Bf16, FromBitsAndConstexpr) {
  constexpr bf16 one = bf16::from_bits(0x3f80);
  static_assert(one.bits == 0x3f80);
  static_assert(bf16(1.0f).bits == 0x3f80);
  static_assert(float(bf16(-2.0f)) == -2.0f);
  static_assert(sizeof(bf16) == 2);
  static_assert(!std::is_convertible_v<float, bf16>, "float -> bf16 must be explicit");
  static_assert(!std::is_convertible_v<bf16, float>, "bf16 -> float must be explicit");
  EXPECT_EQ(float(one), 1.0f);
  EXPECT_EQ(bf16().bits, 0);
  EXPECT_TRUE(bf16(0.0f) == bf16(-0.0f));
}

// ---------------------------------------------------------------------------------------------------
// tensor_view

TEST(AlignedVector, DataStartsOnACacheLine) {
  // Sizes on both sides of glibc's mmap threshold (128 KiB), where std::vector's data() sits 16 bytes past
  // a page; and reallocation keeps the alignment.
  for (std::size_t n : {std::size_t(1), std::size_t(3), std::size_t(1000), std::size_t(1) << 20}) {
    trellis::aligned_vector<float> f(n, 1.0f);
    trellis::aligned_vector<trellis::bf16> h(n);
    trellis::aligned_vector<char> c(n);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f.data()) % 64, 0u) << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(h.data()) % 64, 0u) << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(c.data()) % 64, 0u) << n;
    f.resize(3 * n + 5, 2.0f);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(f.data()) % 64, 0u) << n;
    EXPECT_EQ(f[0], 1.0f);
    EXPECT_EQ(f.back(), 2.0f);
  }
  // Rebinding keeps the alignment (what containers other than vector do with it).
  using rebound = std::allocator_traits<trellis::aligned_allocator<float, 128>>::rebind_alloc<double>;
  static_assert(std::is_same_v<rebound, trellis::aligned_allocator<double, 128>>);
  rebound a;
  double* p = a.allocate(7);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 128, 0u);
  a.deallocate(p, 7);
}

TEST(TensorView, RowMajorStridesAndIndexing) {
  float data[24];
  for (int i = 0; i < 24; ++i) data[i] = float(i);
  trellis::tensor_view<float, 3> v{data, {2, 3, 4}};
  EXPECT_EQ(v.stride(0), 12u);
  EXPECT_EQ(v.stride(1), 4u);
  EXPECT_EQ(v.stride(2), 1u);
  EXPECT_EQ(v.extent(1), 3u);
  EXPECT_EQ(v.size(), 24u);
  EXPECT_FALSE(v.empty());
  EXPECT_EQ(v(1, 2, 3), 23.0f);
  EXPECT_EQ(v(1, 0, 2), 14.0f);
  v(0, 1, 1) = -5.0f;
  EXPECT_EQ(data[5], -5.0f);
  EXPECT_EQ(v.data(), data);
  static_assert(decltype(v)::rank == 3);
}

TEST(TensorView, ExplicitStrides) {
  float data[3 * 5] = {};
  trellis::tensor_view<float, 2> v{data, {3, 4}, {5, 1}};  // padded leading dimension
  v(2, 3) = 7.0f;
  EXPECT_EQ(data[13], 7.0f);
  trellis::tensor_view<float, 2> col{data, {4, 3}, {1, 5}};  // column-major
  EXPECT_EQ(col(3, 2), 7.0f);
  EXPECT_EQ(col.size(), 12u);
}

TEST(TensorView, ConstConversionOnlyOneWay) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  trellis::tensor_view<float, 2> m{data, {2, 3}};
  trellis::tensor_view<const float, 2> c = m;
  EXPECT_EQ(c.data(), data);
  EXPECT_EQ(c(1, 2), 6.0f);
  EXPECT_EQ(c.strides(), m.strides());
  static_assert(
      std::is_convertible_v<trellis::tensor_view<float, 2>, trellis::tensor_view<const float, 2>>);
  static_assert(
      !std::is_convertible_v<trellis::tensor_view<const float, 2>, trellis::tensor_view<float, 2>>);
  static_assert(
      !std::is_convertible_v<trellis::tensor_view<float, 2>, trellis::tensor_view<const float, 3>>);
  static_assert(std::is_same_v<decltype(c(0, 0)), const float&>);
}

TEST(TensorView, Transposed) {
  float data[6] = {1, 2, 3, 4, 5, 6};
  trellis::tensor_view<const float, 2> m{data, {2, 3}};
  const auto t = m.transposed();
  EXPECT_EQ(t.extent(0), 3u);
  EXPECT_EQ(t.extent(1), 2u);
  EXPECT_EQ(t.stride(0), 1u);
  EXPECT_EQ(t.stride(1), 3u);
  for (std::size_t i = 0; i < 2; ++i)
    for (std::size_t j = 0; j < 3; ++j) EXPECT_EQ(t(j, i), m(i, j));
  float d4[24] = {};
  trellis::tensor_view<float, 4> v{d4, {1, 2, 3, 4}};
  const auto t02 = v.transposed(0, 2);
  EXPECT_EQ(t02.shape(), (std::array<std::size_t, 4>{3, 2, 1, 4}));
  EXPECT_EQ(&t02(2, 1, 0, 3), &v(0, 1, 2, 3));
  const auto t23 = v.transposed();  // defaults to the last two axes
  EXPECT_EQ(&t23(0, 1, 3, 2), &v(0, 1, 2, 3));
}

TEST(TensorView, SizeAndEmpty) {
  trellis::tensor_view<float, 2> none;
  EXPECT_EQ(none.data(), nullptr);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_TRUE(none.empty());
  float x = 0;
  trellis::tensor_view<float, 3> zero{&x, {4, 0, 2}};
  EXPECT_TRUE(zero.empty());
  trellis::tensor_view<float, 1> one{&x, {1}};
  EXPECT_EQ(one.size(), 1u);
  EXPECT_FALSE(one.empty());
}

// ---------------------------------------------------------------------------------------------------
// any_view / any_output_view

TEST(AnyView, DefaultIsAbsent) {
  trellis::any_view a;
  EXPECT_FALSE(a.present());
  EXPECT_FALSE(bool(a));
  EXPECT_EQ(a.size(), 0u);
  EXPECT_EQ(a.rank(), 0u);
  trellis::any_output_view o;
  EXPECT_FALSE(o.present());
}

TEST(AnyView, CarriesTypeShapeStrides) {
  float data[12];
  for (int i = 0; i < 12; ++i) data[i] = float(i) * 0.5f;
  trellis::tensor_view<const float, 2> v{data, {3, 3}, {4, 1}};
  trellis::any_view a = v;
  EXPECT_TRUE(a.present());
  EXPECT_EQ(a.type(), trellis::dtype::f32);
  EXPECT_EQ(a.rank(), 2u);
  EXPECT_EQ(a.extent(0), 3u);
  EXPECT_EQ(a.stride(0), 4u);
  EXPECT_EQ(a.size(), 9u);
  EXPECT_EQ(a.data(), data);
  EXPECT_EQ(a.load(5), 2.5f);
  const auto back = a.as<float, 2>();
  static_assert(std::is_same_v<decltype(back), const trellis::tensor_view<const float, 2>>);
  EXPECT_EQ(back(2, 1), data[9]);
  EXPECT_EQ(back.strides(), v.strides());

  trellis::bf16 h[4] = {bf16(1.0f), bf16(-2.0f), bf16(3.5f), bf16(259.0f)};
  trellis::any_view b = trellis::tensor_view<bf16, 1>{h, {4}};  // mutable views convert too
  EXPECT_EQ(b.type(), trellis::dtype::bf16);
  EXPECT_EQ(b.load(1), -2.0f);
  EXPECT_EQ(b.load(3), 260.0f);
  EXPECT_EQ(trellis::size_of(b.type()), 2u);
  EXPECT_STREQ(trellis::to_string(b.type()), "bf16");
}

TEST(AnyView, OutputViewOnlyFromMutable) {
  static_assert(std::is_constructible_v<trellis::any_output_view, trellis::tensor_view<float, 2>>);
  static_assert(
      !std::is_constructible_v<trellis::any_output_view, trellis::tensor_view<const float, 2>>);
  static_assert(std::is_constructible_v<trellis::any_view, trellis::tensor_view<const bf16, 4>>);
  static_assert(!std::is_constructible_v<trellis::any_view, trellis::tensor_view<const float, 5>>);
  static_assert(!std::is_constructible_v<trellis::any_view, trellis::tensor_view<const double, 1>>);
  float data[4] = {};
  trellis::any_output_view o = trellis::tensor_view<float, 1>{data, {4}};
  EXPECT_TRUE(o.present());
  auto w = o.as<float, 1>();
  static_assert(std::is_same_v<decltype(w), trellis::tensor_view<float, 1>>);
  w(2) = 9.0f;
  EXPECT_EQ(data[2], 9.0f);
}

// ---------------------------------------------------------------------------------------------------
// errors

void handler_one(const char*) {}
void handler_two(const char*) {}

TEST(Error, SetErrorHandlerReturnsThePreviousOne) {
  const trellis::error_handler original = trellis::set_error_handler(&handler_one);
  ASSERT_NE(original, nullptr);
  EXPECT_EQ(trellis::set_error_handler(&handler_two), &handler_one);
  EXPECT_EQ(trellis::set_error_handler(nullptr), &handler_two);  // nullptr restores the default...
  EXPECT_EQ(trellis::set_error_handler(original), original);     // ...which is the original one
  EXPECT_EQ(trellis::set_error_handler(original), original);
}

TEST(Error, IsAnInvalidArgument) {
  static_assert(std::is_base_of_v<std::invalid_argument, trellis::error>);
  float a[6] = {}, b[6] = {}, c[4] = {};
  trellis::tensor_view<const float, 2> av{a, {2, 3}};
  trellis::tensor_view<const float, 2> bv{b, {2, 3}};  // K mismatch
  trellis::tensor_view<float, 2> cv{c, {2, 2}};
  try {
    trellis::matmul(trellis::reference{}, av, bv, cv);
    FAIL() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(dynamic_cast<const trellis::error*>(&e), nullptr);
    EXPECT_NE(std::string(e.what()).find("matmul: b: expected"), std::string::npos) << e.what();
  }
}

TEST(Config, IsaNameIsKnown) {
  const std::string name = trellis::isa_name();
  EXPECT_TRUE(name == "avx512bf16" || name == "avx512" || name == "avx2" || name == "avx2-hwy128" ||
              name == "neon" || name == "baseline")
      << name;
  EXPECT_EQ(TRELLIS_HAS_EXCEPTIONS, 1);
}

}  // namespace
