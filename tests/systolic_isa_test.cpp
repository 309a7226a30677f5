// Every instruction of the NeuronCore model: its values (against trellis::reference or by hand, with the
// casts of each dtype) and every rule it enforces, with the exact message.

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include <trellis/reference.hpp>

#include "systolic_support.hpp"
#include "test_support.hpp"

namespace {

using namespace systolic_test;
using namespace trellis::systolic::isa;
using trellis::bf16;

std::vector<float> random_values(std::size_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

std::vector<float> random_ints(std::size_t n, int lo, int hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = float(dist(rng));
  return v;
}

// ---- dma_copy ----------------------------------------------------------------------------------------------

TEST(SystolicIsa, DmaCopyCastsToEveryDtype) {
  core<trn2> nc;
  const std::vector<float> host = random_values(8 * 40, -600.0f, 600.0f, 1);
  auto check = [&](auto tag, dtype t) {
    using T = decltype(tag);
    auto s = upload<T>(nc, host, 8, 40);
    const std::vector<float> back = download(s);
    for (std::size_t i = 0; i < host.size(); ++i) EXPECT_EQ(back[i], round_to(t, host[i])) << to_string(t) << " " << i;
  };
  check(float{}, dtype::f32);
  check(bf16{}, dtype::bf16);
  check(f16{}, dtype::f16);
  check(f8e4m3{}, dtype::f8e4m3);  // |x| > 448 saturates
  check(f8e5m2{}, dtype::f8e5m2);
}

TEST(SystolicIsa, DmaCopyStridedHbmRegions) {
  core<trn2> nc;
  std::vector<float> big(20 * 30, -7.0f);
  hbm<float> whole{{big.data(), {20, 30}}};
  const std::vector<float> host = random_ints(4 * 5, -9, 9, 2);
  auto t = upload<float>(nc, host, 4, 5);
  dma_copy(nc, whole.tile(3, 11, 4, 5), t);
  for (std::size_t r = 0; r < 20; ++r)
    for (std::size_t c = 0; c < 30; ++c) {
      const bool inside = r >= 3 && r < 7 && c >= 11 && c < 16;
      EXPECT_EQ(big[r * 30 + c], inside ? host[(r - 3) * 5 + (c - 11)] : -7.0f) << r << "," << c;
    }
  // Strided free axis on chip: every second column.
  auto wide = nc.sbuf.tile<float>(4, 10);
  memset(nc, wide, 0.0f);
  dma_copy(nc, wide.sub(0, 4, 1, 5, 2), hbm<const float>{{host.data(), {4, 5}}});
  EXPECT_EQ(wide.peek(2, 3), host[2 * 5 + 1]);
  EXPECT_EQ(wide.peek(2, 2), 0.0f);
}

TEST(SystolicIsa, DmaCopyRules) {
  core<trn2> nc;
  std::vector<float> host(128 * 512);
  hbm<float> out{{host.data(), {128, 512}}};
  hbm<const float> in{{host.data(), {128, 512}}};
  auto acc = nc.psum.tile<float>(128, 512);
  auto s = nc.sbuf.tile<float>(128, 256);
  EXPECT_EQ(error_of([&] { dma_copy(nc, out, acc); }), "dma_copy: src is in PSUM, which the DMA engine cannot region on trn2");
  EXPECT_EQ(error_of([&] { dma_copy(nc, acc, in); }), "dma_copy: dst is in PSUM, which the DMA engine cannot region on trn2");
  EXPECT_EQ(error_of([&] { dma_copy(nc, s, in); }), "dma_copy: dst shape [128, 256] differs from src shape [128, 512]");
  EXPECT_EQ(error_of([&] { dma_copy(nc, s, in.tile(0, 0, 128, 256), {.queue = 16}); }),
            "dma_copy: queue 16 is outside 0..15 on trn2 (or -1 for round-robin)");
  EXPECT_EQ(error_of([&] { dma_copy(nc, in.tile(0, 0, 128, 256), s); }), "dma_copy: dst is a read-only (const) tensor");
  EXPECT_EQ(error_of([&] { dma_copy(nc, s, region{}); }), "dma_copy: src is missing");
  core<trn2> other;
  auto foreign = other.sbuf.tile<float>(128, 256);
  EXPECT_EQ(error_of([&] { dma_copy(nc, s, foreign); }), "dma_copy: src belongs to another core");
  EXPECT_EQ(error_of([&] { in.tile(100, 0, 29, 1); }), "hbm.tile: [100:129, 0:1] is outside the tensor's shape [128, 512]");
  EXPECT_EQ(nc.records().size(), 0u);  // nothing that failed was recorded
}

// ---- nc_matmul ---------------------------------------------------------------------------------------------

/// out[M, N] = lhsT[K, M]ᵀ · rhs[K, N] by the reference target (fp64 accumulation) on the given values.
std::vector<float> reference_matmul(const std::vector<float>& lhsT, const std::vector<float>& rhs, std::size_t k,
                                    std::size_t m, std::size_t n) {
  std::vector<float> out(m * n);
  trellis::matmul(trellis::reference{}, trellis::tensor_view<const float, 2>{lhsT.data(), {k, m}},
                  trellis::tensor_view<const float, 2>{rhs.data(), {k, n}}, trellis::tensor_view<float, 2>{out.data(), {m, n}},
                  {.transpose_a = true});
  return out;
}

TEST(SystolicIsa, NcMatmulIntegerValuesAreExact) {
  core<trn2> nc;
  const std::size_t k = 96, m = 72, n = 300;
  const std::vector<float> a = random_ints(k * m, -8, 8, 3), b = random_ints(k * n, -8, 8, 4);
  auto sa = upload<bf16>(nc, a, k, m);
  auto sb = upload<bf16>(nc, b, k, n);
  auto acc = nc.psum.tile<float>(m, n);
  nc_matmul(nc, acc, sa, sb);
  EXPECT_EQ(download(acc), reference_matmul(a, b, k, m, n));
}

TEST(SystolicIsa, NcMatmulAccumulationGroups) {
  core<trn2> nc;
  const std::size_t k = 128, m = 128, n = 512;
  const std::vector<float> a = random_ints(k * m, -4, 4, 5), b = random_ints(k * n, -4, 4, 6);
  const std::vector<float> c = random_ints(k * m, -4, 4, 7), d = random_ints(k * n, -4, 4, 8);
  auto sa = upload<bf16>(nc, a, k, m), sb = upload<bf16>(nc, b, k, n);
  auto sc = upload<bf16>(nc, c, k, m), sd = upload<bf16>(nc, d, k, n);
  auto acc = nc.psum.tile<float>(m, n);
  nc_matmul(nc, acc, sa, sb, {.accumulate = false});  // overwrites the NaN sentinel
  nc_matmul(nc, acc, sc, sd, {.accumulate = true});   // adds
  std::vector<float> expected = reference_matmul(a, b, k, m, n);
  const std::vector<float> second = reference_matmul(c, d, k, m, n);
  for (std::size_t i = 0; i < expected.size(); ++i) expected[i] += second[i];
  EXPECT_EQ(download(acc), expected);
  nc_matmul(nc, acc, sc, sd, {.accumulate = false});  // a new group overwrites again
  EXPECT_EQ(download(acc), second);
  // Accumulating into a fresh bank reads the NaN sentinel: the bug shows.
  auto fresh = nc.psum.tile<float>(m, n);
  nc_matmul(nc, fresh, sa, sb, {.accumulate = true});
  EXPECT_TRUE(std::isnan(fresh.peek(5, 5)));
  EXPECT_TRUE(nc.records().back().attributes.accumulate);
}

TEST(SystolicIsa, NcMatmulEveryInputDtype) {
  const std::size_t k = 128, m = 64, n = 128;
  const std::vector<float> a = random_values(k * m, -2.0f, 2.0f, 9), b = random_values(k * n, -2.0f, 2.0f, 10);
  auto run = [&](auto tag, dtype t) {
    using T = decltype(tag);
    core<trn2> nc;
    auto sa = upload<T>(nc, a, k, m), sb = upload<T>(nc, b, k, n);
    auto acc = nc.psum.tile<float>(m, n);
    nc_matmul(nc, acc, sa, sb);
    // Against fp64 on the operands as stored: only the fp32 accumulation error remains.
    std::vector<float> ra(a.size()), rb(b.size());
    for (std::size_t i = 0; i < a.size(); ++i) ra[i] = round_to(t, a[i]);
    for (std::size_t i = 0; i < b.size(); ++i) rb[i] = round_to(t, b[i]);
    const std::vector<float> expected = reference_matmul(ra, rb, k, m, n), got = download(acc);
    for (std::size_t i = 0; i < m; ++i)
      for (std::size_t j = 0; j < n; ++j) {
        double abs_sum = 0.0;
        for (std::size_t p = 0; p < k; ++p) abs_sum += std::fabs(double(ra[p * m + i]) * double(rb[p * n + j]));
        EXPECT_NEAR(got[i * n + j], expected[i * n + j], 2.0 * double(k) * 0x1p-24 * abs_sum) << to_string(t);
      }
  };
  run(float{}, dtype::f32);
  run(bf16{}, dtype::bf16);
  run(f16{}, dtype::f16);
  run(f8e4m3{}, dtype::f8e4m3);
  run(f8e5m2{}, dtype::f8e5m2);
}

TEST(SystolicIsa, NcMatmulRules) {
  core<trn2> nc;
  auto acc = nc.psum.tile<float>(128, 512);
  auto a = nc.sbuf.tile<bf16>(128, 128);
  auto wide_a = nc.sbuf.tile<bf16>(128, 256);
  auto b = nc.sbuf.tile<bf16>(128, 512);
  auto wide_b = nc.sbuf.tile<bf16>(128, 1024);
  auto b32 = nc.sbuf.tile<float>(128, 512);
  auto e4 = nc.sbuf.tile<f8e4m3>(128, 128);
  auto e5 = nc.sbuf.tile<f8e5m2>(128, 512);
  auto in_sbuf = nc.sbuf.tile<float>(128, 512);
  auto acc16 = nc.psum.tile<bf16>(128, 512);
  memset(nc, a, 1.0f);
  memset(nc, b, 1.0f);
  memset(nc, e4, 1.0f);
  memset(nc, e5, 1.0f);
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, a, wide_b); }),
            "nc_matmul: moving free size 1024 exceeds 512 on trn2 (one PSUM bank of fp32)");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, wide_a, b); }),
            "nc_matmul: stationary free size 256 exceeds 128 on trn2 (PE array columns)");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, in_sbuf, a, b); }), "nc_matmul: dst is in SBUF; the Tensor Engine writes PSUM only on trn2");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, acc.cols_range(0, 128), b); }),
            "nc_matmul: stationary is in PSUM; the Tensor Engine reads SBUF only on trn2");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, a.rows_range(0, 64), b); }),
            "nc_matmul: stationary has K = 64 partitions but moving has 128 (the contraction axis lies on partitions)");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc.cols_range(0, 256), a, b); }), "nc_matmul: dst shape [128, 256] is not [M, N] = [128, 512]");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, a, b32); }),
            "nc_matmul: stationary is bf16 but moving is fp32 (operands share a dtype; only the two fp8 formats may mix)");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc16, a, b); }), "nc_matmul: dst is bf16, expected fp32 on trn2 (matmuls accumulate in PSUM)");
  EXPECT_EQ(error_of([&] { nc_matmul(nc, acc.rows_range(0, 32), a.cols_range(0, 32), b.rows_range(16, 32)); }),
            "nc_matmul: moving starts at partition 16 with 32 partitions, which is not allowed on trn2 (start 0 when P > 64; "
            "0 or 64 when 32 < P <= 64; 0, 32, 64 or 96 when P <= 32)");
  EXPECT_NO_THROW(nc_matmul(nc, acc, e4, e5));  // the fp8 formats mix
  EXPECT_EQ(acc.peek(3, 3), 128.0f);
  // Quadrant operands: K = 32 partitions starting at 32, M = 32.
  nc_matmul(nc, acc.rows_range(0, 32), a.sub(32, 32, 0, 32), b.rows_range(32, 32));
  EXPECT_EQ(acc.peek(31, 511), 32.0f);
}

TEST(SystolicIsa, NcMatmulWideMovingOnTrn3) {
  core<trn3> nc;
  auto a = nc.sbuf.tile<bf16>(128, 128);
  auto b = nc.sbuf.tile<bf16>(128, 4097);
  memset(nc, a, 1.0f);
  memset(nc, b, 0.5f);
  {
    auto acc = nc.psum.tile<float>(128, 4096);  // all 16 KiB of PSUM per partition
    nc_matmul(nc, acc, a, b.cols_range(0, 4096));
    EXPECT_EQ(acc.peek(127, 4095), 64.0f);
    EXPECT_EQ(error_of([&] { nc_matmul(nc, acc, a, b); }), "nc_matmul: moving free size 4097 exceeds 4096 on trn3 (fp32 PSUM output)");
  }
  auto acc16 = nc.psum.tile<bf16>(128, 4096);
  nc_matmul(nc, acc16, a, b.cols_range(0, 4096));  // bf16 PSUM output on v4
  EXPECT_EQ(acc16.peek(0, 0), 64.0f);
}

// ---- nc_transpose ------------------------------------------------------------------------------------------

TEST(SystolicIsa, NcTranspose) {
  const std::vector<float> x = random_values(96 * 40, -3.0f, 3.0f, 11);
  core<trn2> nc;
  auto s = upload<bf16>(nc, x, 96, 40);
  auto t = nc.psum.tile<bf16>(40, 96);  // bit-exact mode keeps bf16 on v3
  nc_transpose(nc, t, s);
  for (std::size_t p = 0; p < 96; ++p)
    for (std::size_t f = 0; f < 40; ++f) ASSERT_EQ(t.peek(f, p), round_to(dtype::bf16, x[p * 40 + f]));
  auto v = nc.sbuf.tile<float>(32, 32);
  nc_transpose(nc, v, s.sub(0, 32, 0, 32), {.unit = engine::vector});
  EXPECT_EQ(v.peek(7, 3), s.peek(3, 7));
  EXPECT_EQ(error_of([&] { nc_transpose(nc, v, s.sub(0, 32, 0, 33), {.unit = engine::vector}); }),
            "nc_transpose: dst shape [32, 32] is not the transpose of src shape [32, 33]");
  auto v2 = nc.sbuf.tile<float>(40, 33);
  EXPECT_EQ(error_of([&] { nc_transpose(nc, v2, s.sub(0, 33, 0, 40), {.unit = engine::vector}); }),
            "nc_transpose: src shape [33, 40] exceeds 32 × 32 on trn2 (Vector Engine transpose block)");
  EXPECT_EQ(error_of([&] { nc_transpose(nc, t, s, {.unit = engine::scalar}); }),
            "nc_transpose: the Scalar engine cannot run it on trn2 (engines: tensor, vector)");
  core<trn1> v2core;
  auto s1 = upload<bf16>(v2core, x, 96, 40);
  auto t16 = v2core.psum.tile<bf16>(40, 96);
  auto t32 = v2core.psum.tile<float>(40, 96);
  EXPECT_EQ(error_of([&] { nc_transpose(v2core, t16, s1); }),
            "nc_transpose: dst is bf16, expected fp32 on trn1 (this generation transposes with an identity matmul into fp32 PSUM)");
  nc_transpose(v2core, t32, s1);
  EXPECT_EQ(t32.peek(39, 95), round_to(dtype::bf16, x[95 * 40 + 39]));
}

// ---- activation --------------------------------------------------------------------------------------------

double reference_activation(activation_function f, double x) {
  switch (f) {
    case activation_function::identity: return x;
    case activation_function::exp: return std::exp(x);
    case activation_function::gelu: return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
    case activation_function::gelu_tanh:
      return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    case activation_function::silu: return x / (1.0 + std::exp(-x));
    case activation_function::tanh: return std::tanh(x);
    case activation_function::sqrt: return std::sqrt(x);
    case activation_function::rsqrt: return 1.0 / std::sqrt(x);
    case activation_function::reciprocal: return 1.0 / x;
    case activation_function::square: return x * x;
    case activation_function::log: return std::log(x);
  }
  return x;
}

TEST(SystolicIsa, ActivationEveryFunctionWithScaleBiasAndReduce) {
  core<trn2> nc;
  const std::size_t p_count = 64, f_count = 100;
  const std::vector<float> x = random_values(p_count * f_count, 0.1f, 2.0f, 12);
  const std::vector<float> scale = random_values(p_count, 0.5f, 1.5f, 13), bias = random_values(p_count, 0.0f, 0.5f, 14);
  auto sx = upload<float>(nc, x, p_count, f_count);
  auto ss = upload<float>(nc, scale, p_count, 1);
  auto sbias = upload<float>(nc, bias, p_count, 1);
  auto y = nc.sbuf.tile<float>(p_count, f_count);
  auto y16 = nc.psum.tile<bf16>(p_count, f_count);
  auto sums = nc.sbuf.tile<float>(p_count, 1);
  for (auto f : {activation_function::identity, activation_function::exp, activation_function::gelu,
                 activation_function::gelu_tanh, activation_function::silu, activation_function::tanh,
                 activation_function::sqrt, activation_function::rsqrt, activation_function::reciprocal,
                 activation_function::square, activation_function::log}) {
    activation(nc, y, sx, f, {.scale = ss, .bias = sbias, .reduce_out = sums});
    activation(nc, y16, sx, f, {.scale = 2.0f, .bias = sbias});
    for (std::size_t p = 0; p < p_count; ++p) {
      double sum = 0.0;
      for (std::size_t i = 0; i < f_count; ++i) {
        const float arg = x[p * f_count + i] * scale[p] + bias[p];  // fp32, as the engine computes it
        const double expected = reference_activation(f, arg);
        sum += expected;
        ASSERT_NEAR(y.peek(p, i), expected, 4e-7 * std::fabs(expected) + 1e-7) << to_string(f);
        const double expected16 = reference_activation(f, double(x[p * f_count + i] * 2.0f + bias[p]));
        ASSERT_NEAR(y16.peek(p, i), expected16, 0.5 * trellis_test::bf16_ulp(float(expected16)) + 1e-6 * std::fabs(expected16)) << to_string(f);
      }
      ASSERT_NEAR(sums.peek(p, 0), sum, 1e-5 * std::fabs(sum)) << to_string(f);
    }
    EXPECT_EQ(nc.records().back().attributes.func, f);
  }
}

TEST(SystolicIsa, ActivationRules) {
  core<trn2> nc;
  auto x = nc.sbuf.tile<float>(64, 16);
  auto y = nc.sbuf.tile<float>(64, 16);
  auto two = nc.sbuf.tile<float>(64, 2);
  memset(nc, x, 1.0f);
  memset(nc, two, 1.0f);
  EXPECT_EQ(error_of([&] { activation(nc, y, x, activation_function::exp, {.bias = two}); }),
            "activation: bias shape [64, 2] is not [P, 1] = [64, 1] (one value per partition)");
  EXPECT_EQ(error_of([&] { activation(nc, y.rows_range(0, 32), x, activation_function::exp); }),
            "activation: dst shape [32, 16] differs from src shape [64, 16]");
  auto huge = nc.sbuf.tile<bf16>(1, 65537);
  auto huge_out = nc.sbuf.tile<bf16>(1, 65537);
  EXPECT_EQ(error_of([&] { activation(nc, huge_out, huge, activation_function::exp); }),
            "activation: dst free size 65537 exceeds 65536 on trn2 (engine access to SBUF)");
  core<trn3> v4;
  auto wide = v4.psum.tile<bf16>(128, 8192);
  auto wide_out = v4.sbuf.tile<bf16>(128, 8192);
  EXPECT_EQ(error_of([&] { activation(v4, wide_out, wide, activation_function::exp); }),
            "activation: src free size 8192 exceeds 4096 on trn3 (engine access to PSUM)");
}

// ---- Vector Engine ------------------------------------------------------------------------------------------

TEST(SystolicIsa, TensorTensorEveryOp) {
  core<trn2> nc;
  const std::vector<float> a = random_values(32 * 20, -3.0f, 3.0f, 15), b = random_values(32 * 20, -3.0f, 3.0f, 16);
  auto sa = upload<float>(nc, a, 32, 20);
  auto sb = upload<float>(nc, b, 32, 20);
  auto pb = nc.psum.tile<float>(32, 20);
  tensor_copy(nc, pb, sb);  // one input in PSUM
  auto y = nc.sbuf.tile<float>(32, 20);
  auto y16 = nc.sbuf.tile<bf16>(32, 20);
  for (auto op : {alu_op::bypass, alu_op::add, alu_op::subtract, alu_op::multiply, alu_op::divide, alu_op::max, alu_op::min,
                  alu_op::abs_max, alu_op::is_equal, alu_op::not_equal, alu_op::is_ge, alu_op::is_gt, alu_op::is_le,
                  alu_op::is_lt}) {
    tensor_tensor(nc, y, sa, pb, op);
    tensor_tensor(nc, y16, sa, sb, op, {.unit = engine::gpsimd});
    for (std::size_t i = 0; i < a.size(); ++i) {
      const float x0 = a[i], x1 = b[i];
      float e = 0.0f;
      switch (op) {
        case alu_op::bypass: e = x0; break;
        case alu_op::add: e = x0 + x1; break;
        case alu_op::subtract: e = x0 - x1; break;
        case alu_op::multiply: e = x0 * x1; break;
        case alu_op::divide: e = x0 / x1; break;
        case alu_op::max: e = x0 > x1 ? x0 : x1; break;
        case alu_op::min: e = x0 < x1 ? x0 : x1; break;
        case alu_op::abs_max: e = std::fabs(x0) > std::fabs(x1) ? std::fabs(x0) : std::fabs(x1); break;
        case alu_op::is_equal: e = x0 == x1; break;
        case alu_op::not_equal: e = x0 != x1; break;
        case alu_op::is_ge: e = x0 >= x1; break;
        case alu_op::is_gt: e = x0 > x1; break;
        case alu_op::is_le: e = x0 <= x1; break;
        case alu_op::is_lt: e = x0 < x1; break;
      }
      ASSERT_EQ(y.peek(i / 20, i % 20), e) << to_string(op);
      ASSERT_EQ(y16.peek(i / 20, i % 20), round_to(dtype::bf16, e)) << to_string(op);
    }
  }
  EXPECT_EQ(error_of([&] { tensor_tensor(nc, y, sa, pb, alu_op::add, {.unit = engine::gpsimd}); }),
            "tensor_tensor: in1 is in PSUM, which the GpSimd engine cannot region on trn2");
  EXPECT_EQ(error_of([&] { tensor_tensor(nc, y, sa, sb, alu_op::add, {.unit = engine::tensor}); }),
            "tensor_tensor: the Tensor engine cannot run it on trn2 (engines: vector, gpsimd)");
  EXPECT_EQ(error_of([&] { tensor_tensor(nc, y, sa, sb.cols_range(0, 10), alu_op::add); }),
            "tensor_tensor: in1 shape [32, 10] differs from in0 shape [32, 20]");
}

TEST(SystolicIsa, TensorScalarTwoChainedOps) {
  core<trn2> nc;
  const std::vector<float> x = random_values(16 * 30, -5.0f, 5.0f, 17), mean = random_values(16, -1.0f, 1.0f, 18);
  auto sx = upload<float>(nc, x, 16, 30);
  auto sm = upload<float>(nc, mean, 16, 1);
  auto y = nc.sbuf.tile<float>(16, 30);
  tensor_scalar(nc, y, sx, alu_op::subtract, sm, {.op1 = alu_op::multiply, .operand1 = 0.25f});
  for (std::size_t p = 0; p < 16; ++p)
    for (std::size_t f = 0; f < 30; ++f) ASSERT_EQ(y.peek(p, f), (x[p * 30 + f] - mean[p]) * 0.25f);
  tensor_scalar(nc, y, sx, alu_op::max, 0.0f, {.unit = engine::scalar});  // relu, one stage
  EXPECT_EQ(y.peek(3, 4), std::fmax(x[3 * 30 + 4], 0.0f));
  EXPECT_EQ(nc.records().back().attributes.op1, alu_op::bypass);
  EXPECT_EQ(error_of([&] { tensor_scalar(nc, y, sx, alu_op::add, sx); }),
            "tensor_scalar: operand0 shape [16, 30] is not [P, 1] = [16, 1] (one value per partition)");
}

TEST(SystolicIsa, TensorReduce) {
  core<trn2> nc;
  const std::vector<float> x = random_ints(8 * 12, -5, 5, 19);
  auto sx = upload<bf16>(nc, x, 8, 12);
  auto r = nc.sbuf.tile<float>(8, 1);
  for (auto op : {alu_op::add, alu_op::multiply, alu_op::max, alu_op::min, alu_op::abs_max}) {
    tensor_reduce(nc, r, sx, op, {.negate = op == alu_op::max});
    for (std::size_t p = 0; p < 8; ++p) {
      double e = op == alu_op::add ? 0 : op == alu_op::multiply ? 1 : op == alu_op::max ? -1e9 : op == alu_op::min ? 1e9 : 0;
      for (std::size_t f = 0; f < 12; ++f) {
        const double v = x[p * 12 + f];
        e = op == alu_op::add ? e + v : op == alu_op::multiply ? e * v : op == alu_op::max ? std::max(e, v)
            : op == alu_op::min ? std::min(e, v) : std::max(e, std::fabs(v));
      }
      ASSERT_EQ(r.peek(p, 0), op == alu_op::max ? -e : e) << to_string(op);
    }
  }
  EXPECT_EQ(error_of([&] { tensor_reduce(nc, r, sx, alu_op::subtract); }),
            "tensor_reduce: alu op subtract is not a reduction (add, multiply, max, min, abs_max)");
  EXPECT_EQ(error_of([&] { tensor_reduce(nc, r.rows_range(0, 4), sx, alu_op::add); }),
            "tensor_reduce: dst shape [4, 1] is not [P, 1] = [8, 1] (one value per partition)");
}

TEST(SystolicIsa, TensorCopyCastsAndEvictsPsum) {
  core<trn2> nc;
  const std::vector<float> x = random_values(128 * 64, -1000.0f, 1000.0f, 20);
  auto sx = upload<float>(nc, x, 128, 64);
  auto p = nc.psum.tile<float>(128, 64);
  tensor_copy(nc, p, sx, {.unit = engine::scalar});
  auto h = nc.sbuf.tile<bf16>(128, 64);
  auto e4 = nc.sbuf.tile<f8e4m3>(128, 64);
  auto e5 = nc.sbuf.tile<f8e5m2>(128, 64);
  auto g = nc.sbuf.tile<f16>(128, 64);
  tensor_copy(nc, h, p);
  tensor_copy(nc, e4, p);
  tensor_copy(nc, e5, sx, {.unit = engine::gpsimd});
  tensor_copy(nc, g, sx);
  for (std::size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(h.peek(i / 64, i % 64), round_to(dtype::bf16, x[i]));
    ASSERT_EQ(e4.peek(i / 64, i % 64), round_to(dtype::f8e4m3, x[i]));
    ASSERT_EQ(e5.peek(i / 64, i % 64), round_to(dtype::f8e5m2, x[i]));
    ASSERT_EQ(g.peek(i / 64, i % 64), round_to(dtype::f16, x[i]));
  }
  EXPECT_EQ(error_of([&] { tensor_copy(nc, h, p, {.unit = engine::gpsimd}); }),
            "tensor_copy: src is in PSUM, which the GpSimd engine cannot region on trn2");
  EXPECT_EQ(error_of([&] { tensor_copy(nc, h, p, {.unit = engine::tensor}); }),
            "tensor_copy: the Tensor engine cannot run it on trn2 (engines: vector, scalar, gpsimd)");
}

TEST(SystolicIsa, BnStatsAndAggr) {
  core<trn2> nc;
  const std::size_t p_count = 128, f_count = 1000;
  const std::vector<float> x = random_values(p_count * f_count, 2.0f, 4.0f, 21);
  auto sx = upload<bf16>(nc, x, p_count, f_count);
  auto stats = nc.sbuf.tile<float>(p_count, 2 * bn_stats_width);
  bn_stats(nc, stats.cols_range(0, 6), sx.cols_range(0, 500));
  bn_stats(nc, stats.cols_range(6, 6), sx.cols_range(500, 500));
  auto mv = nc.sbuf.tile<float>(p_count, 2);
  bn_aggr(nc, mv, stats);
  for (std::size_t p = 0; p < p_count; ++p) {
    double mean = 0.0, var = 0.0;
    for (std::size_t f = 0; f < f_count; ++f) mean += round_to(dtype::bf16, x[p * f_count + f]);
    mean /= double(f_count);
    for (std::size_t f = 0; f < f_count; ++f) var += std::pow(round_to(dtype::bf16, x[p * f_count + f]) - mean, 2.0);
    var /= double(f_count);
    ASSERT_NEAR(mv.peek(p, 0), mean, 1e-5 * mean);
    ASSERT_NEAR(mv.peek(p, 1), var, 1e-4 * var);
  }
  EXPECT_EQ(error_of([&] { bn_stats(nc, stats.cols_range(0, 6), sx.cols_range(0, 513)); }),
            "bn_stats: src free size 513 exceeds 512 on trn2 (split the row into chunks and combine them with bn_aggr)");
  EXPECT_EQ(error_of([&] { bn_stats(nc, stats.cols_range(0, 5), sx.cols_range(0, 8)); }),
            "bn_stats: dst free size 5 is not 6 (bn_stats writes 6 statistics per partition)");
  auto s16 = nc.sbuf.tile<bf16>(p_count, 6);
  EXPECT_EQ(error_of([&] { bn_stats(nc, s16, sx.cols_range(0, 8)); }),
            "bn_stats: dst is bf16, expected fp32 (statistics stay fp32 so bn_aggr can combine them)");
  EXPECT_EQ(error_of([&] { bn_aggr(nc, mv, stats.cols_range(0, 7)); }),
            "bn_aggr: src free size 7 is not a multiple of 6 (bn_stats outputs side by side)");
}

TEST(SystolicIsa, MemsetAndReciprocal) {
  core<trn2> nc;
  auto h = nc.sbuf.tile<bf16>(8, 8);
  memset(nc, h, 1.00390625f);  // 1 + 2^-8: a bf16 tie, rounds to 1
  EXPECT_EQ(h.peek(7, 7), 1.0f);
  EXPECT_EQ(nc.records().back().attributes.value, 1.00390625f);
  auto f = nc.sbuf.tile<float>(8, 8);
  memset(nc, f, 4.0f, {.unit = engine::gpsimd});
  auto r = nc.sbuf.tile<float>(8, 8);
  reciprocal(nc, r, f);
  EXPECT_EQ(r.peek(0, 0), 0.25f);
  EXPECT_EQ(error_of([&] { memset(nc, f, 0.0f, {.unit = engine::scalar}); }),
            "memset: the Scalar engine cannot run it on trn2 (engines: vector, gpsimd)");
  auto p = nc.psum.tile<float>(8, 8);
  EXPECT_EQ(error_of([&] { memset(nc, p, 0.0f, {.unit = engine::gpsimd}); }),
            "memset: dst is in PSUM, which the GpSimd engine cannot region on trn2");
}

// ---- GpSimd -------------------------------------------------------------------------------------------------

TEST(SystolicIsa, IotaAndAffineSelect) {
  core<trn2> nc;
  auto idx = nc.sbuf.tile<float>(128, 300);
  iota(nc, idx, {.base = 5, .channel_multiplier = 1000, .step = -2});
  EXPECT_EQ(idx.peek(0, 0), 5.0f);
  EXPECT_EQ(idx.peek(127, 299), 5.0f + 127000.0f - 598.0f);
  auto idx16 = nc.sbuf.tile<bf16>(2, 300);
  iota(nc, idx16, {.step = 1});
  EXPECT_EQ(idx16.peek(0, 257), 256.0f);  // 257 is not a bf16: rounds to even
  // A causal mask: keep column f where p − f ≥ 0.
  auto scores = nc.sbuf.tile<float>(64, 64);
  memset(nc, scores, 1.0f);
  auto masked = nc.sbuf.tile<float>(64, 64);
  affine_select(nc, masked, scores, {.base = 0, .channel_multiplier = 1, .step = -1});
  for (std::size_t p = 0; p < 64; ++p)
    for (std::size_t f = 0; f < 64; ++f) ASSERT_EQ(masked.peek(p, f), f <= p ? 1.0f : -INFINITY);
  affine_select(nc, masked, scores, {.base = -10, .channel_multiplier = 0, .step = 1}, {.compare = alu_op::is_lt, .on_false = 0.0f});
  EXPECT_EQ(masked.peek(3, 9), 1.0f);
  EXPECT_EQ(masked.peek(3, 10), 0.0f);
  EXPECT_EQ(error_of([&] { affine_select(nc, masked, scores, {}, {.compare = alu_op::add}); }),
            "affine_select: alu op add is not a comparison (is_equal, not_equal, is_ge, is_gt, is_le, is_lt)");
  auto p = nc.psum.tile<float>(8, 8);
  EXPECT_EQ(error_of([&] { iota(nc, p, {}); }), "iota: dst is in PSUM, which the GpSimd engine cannot region on trn2");
}

}  // namespace
