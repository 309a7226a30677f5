// systolic: matmul on the NeuronCore model — the front door matmul(nc, ...) against trellis::reference
// with the same oracle check as the CPU suite (tests/matmul_check.hpp), every kernel variant on ragged
// shapes and both operand layouts, fp8 inputs, rule violations, and timing-only runs of the tutorial shape.
//
// Numerics (DESIGN.md §4.5): operands are stored in their dtype, products of bf16/fp8 values are exact in
// fp32, PSUM accumulates in fp32 and the epilogue runs in fp32 engine math — the same forward error bound
// as an fp32 GEMM, so the CPU suite's bound applies unchanged; integer-valued inputs are exact.

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "matmul_check.hpp"
#include "systolic_support.hpp"

namespace {

using namespace trellis_test::matmul_check;
using namespace systolic_test;
using trellis::bf16;
namespace kernels = trellis::systolic::kernels;

/// The oracle check through matmul(nc, ...) on a functional core of Machine.
template <class Machine, class TA, class TC>
bool check_on(const mm_params& p, fill_kind kind, std::uint32_t seed) {
  SCOPED_TRACE(Machine::spec.name);
  const auto on_core = [](auto a, auto b, auto c, const trellis::matmul_options& o) {
    core<Machine> nc;
    trellis::matmul(nc, a, b, c, o);
    EXPECT_GT(nc.report().total_ns, 0.0);
  };
  return check_matmul_runs<TA, TC>(p, kind, seed, on_core);
}

template <class Machine, class TA, class TC>
void integer_sweep(int phase) {
  int failures = 0;
  for (const mm_params& p : tail_sweep(23, phase))
    if (!check_on<Machine, TA, TC>(p, fill_kind::integers, 1234u + unsigned(p.m * 7 + p.n * 3 + p.k)) && ++failures >= 3)
      return ADD_FAILURE() << "stopping after 3 failing shapes";
}

// trn1 transposes K-minor operands on the Tensor Engine; trn2 transposes 2-byte data during the DMA.
TEST(SystolicMatmul, ExactTailSweepTrn1F32) { integer_sweep<trn1, float, float>(0); }
TEST(SystolicMatmul, ExactTailSweepTrn1Bf16) { integer_sweep<trn1, bf16, float>(1); }
TEST(SystolicMatmul, ExactTailSweepTrn2Bf16) { integer_sweep<trn2, bf16, float>(2); }
TEST(SystolicMatmul, ExactTailSweepTrn2Bf16Out) { integer_sweep<trn2, bf16, bf16>(3); }
TEST(SystolicMatmul, ExactTailSweepTrn2F32) { integer_sweep<trn2, float, float>(4); }

TEST(SystolicMatmul, RandomWithinErrorBound) {
  const activation acts[] = {activation::none, activation::gelu_tanh, activation::gelu_erf, activation::silu};
  int c = 0;
  for (mm_params p : tail_sweep(37, 5)) {
    p.act = acts[c % 4];
    p.alpha = c % 3 == 0 ? 1.0f : c % 3 == 1 ? 0.7f : -1.3f;
    p.beta = c % 5 < 2 ? 0.0f : c % 5 == 2 ? 1.0f : -0.3f;
    ++c;
    if (!check_on<trn2, bf16, float>(p, fill_kind::uniform, 777u + unsigned(c))) return;
    if (!check_on<trn1, bf16, bf16>(p, fill_kind::uniform, 778u + unsigned(c))) return;
    if (!check_on<trn1, float, float>(p, fill_kind::uniform, 779u + unsigned(c))) return;
  }
}

TEST(SystolicMatmul, LargerThanOneBlockWithEpilogue) {
  // K spans several K blocks (partial sums in SBUF), N several N blocks, M a ragged M block.
  mm_params p{300, 1100, 2200};
  p.tb = true;  // [N, K] weights: transposed on the way in
  p.bias = true;
  p.residual = true;
  p.beta = 0.5f;
  p.act = activation::silu;
  EXPECT_TRUE((check_on<trn2, bf16, float>(p, fill_kind::uniform, 99u)));
  p.act = activation::none;
  EXPECT_TRUE((check_on<trn1, bf16, bf16>(p, fill_kind::integers, 98u)));
}

/// Host data for a direct kernel call: integer values in [-3, 3], exact in every input dtype.
std::vector<float> small_integers(std::size_t count, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(-3, 3);
  std::vector<float> v(count);
  for (float& x : v) x = float(d(rng));
  return v;
}

/// Runs one kernel variant on `Machine` with A given in `a_layout` and B in `b_layout`, T inputs, and
/// compares with the exact product (integer inputs: every fp32 sum is exact).
template <class Machine, class T>
void check_variant(const kernels::matmul_policy& policy, kernels::operand_layout a_layout,
                   kernels::operand_layout b_layout, std::size_t m, std::size_t k, std::size_t n) {
  SCOPED_TRACE(std::string(Machine::spec.name) + " " + to_string(policy.variant) + " M=" + std::to_string(m) +
               " K=" + std::to_string(k) + " N=" + std::to_string(n) + " a " +
               (a_layout == kernels::operand_layout::k_major ? "[K, M]" : "[M, K]") + " b " +
               (b_layout == kernels::operand_layout::k_major ? "[K, N]" : "[N, K]"));
  const std::vector<float> a = small_integers(m * k, 1), b = small_integers(k * n, 2);  // a [M, K], b [K, N]
  const bool a_km = a_layout == kernels::operand_layout::k_major, b_kn = b_layout == kernels::operand_layout::k_major;
  std::vector<T> a_dev(m * k), b_dev(k * n);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t p = 0; p < k; ++p) a_dev[a_km ? p * m + i : i * k + p] = T(a[i * k + p]);
  for (std::size_t p = 0; p < k; ++p)
    for (std::size_t j = 0; j < n; ++j) b_dev[b_kn ? p * n + j : j * k + p] = T(b[p * n + j]);
  std::vector<float> c(m * n, -1.0f);
  core<Machine> nc;
  kernels::matmul_problem problem;
  problem.a = hbm<const T>{{a_dev.data(), a_km ? std::array{k, m} : std::array{m, k}}};
  problem.b = hbm<const T>{{b_dev.data(), b_kn ? std::array{k, n} : std::array{n, k}}};
  problem.c = hbm<float>{{c.data(), {m, n}}};
  problem.a_layout = a_layout;
  problem.b_layout = b_layout;
  kernels::matmul(nc, problem, policy);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double want = 0;
      for (std::size_t p = 0; p < k; ++p) want += double(a[i * k + p]) * b[p * n + j];
      if (c[i * n + j] != float(want) && bad++ < 3)
        ADD_FAILURE() << "C(" << i << ", " << j << ") = " << c[i * n + j] << ", want " << want;
    }
  EXPECT_EQ(bad, 0u);
}

TEST(SystolicMatmul, EveryVariantOnRaggedShapesAndLayouts) {
  using kernels::operand_layout;
  for (kernels::matmul_variant v : kernels::all_matmul_variants) {
    // Small blocks so the ragged edges fall inside blocks: 2 × 2 × 2 tiles of 64 × 64 × 128.
    const kernels::matmul_policy policy{.variant = v, .tile_m = 64, .tile_k = 64, .tile_n = 128, .block_m = 2,
                                        .block_n = 2, .block_k = 2};
    check_variant<trn2, bf16>(policy, operand_layout::k_major, operand_layout::k_major, 200, 300, 530);
    check_variant<trn2, bf16>(policy, operand_layout::k_minor, operand_layout::k_minor, 130, 129, 257);
    check_variant<trn1, bf16>(policy, operand_layout::k_minor, operand_layout::k_major, 65, 200, 100);
    check_variant<trn1, float>(policy, operand_layout::k_major, operand_layout::k_minor, 1, 7, 300);
  }
}

TEST(SystolicMatmul, MixedFp8Formats) {
  // e4m3 weights against e5m2 activations (the ISA lets the two fp8 formats mix): small integers are
  // exact in both, so the product is exact.
  const std::size_t m = 130, k = 200, n = 300;
  const std::vector<float> a = small_integers(m * k, 3), b = small_integers(k * n, 4);  // a [M, K], b [K, N]
  std::vector<f8e5m2> lhsT(k * m);
  std::vector<f8e4m3> rhs(k * n);
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t p = 0; p < k; ++p) lhsT[p * m + i] = f8e5m2(a[i * k + p]);
  for (std::size_t i = 0; i < k * n; ++i) rhs[i] = f8e4m3(b[i]);
  std::vector<float> c(m * n);
  core<trn2> nc;
  kernels::matmul(nc, {.a = hbm<const f8e5m2>{{lhsT.data(), {k, m}}}, .b = hbm<const f8e4m3>{{rhs.data(), {k, n}}},
                       .c = hbm<float>{{c.data(), {m, n}}}});
  std::size_t bad = 0;
  for (std::size_t i = 0; i < m; ++i)
    for (std::size_t j = 0; j < n; ++j) {
      double want = 0;
      for (std::size_t p = 0; p < k; ++p) want += double(a[i * k + p]) * b[p * n + j];
      bad += c[i * n + j] != float(want);
    }
  EXPECT_EQ(bad, 0u);
  EXPECT_NE(error_of([] {
              core<trn2> nc2{{.functional = false}};
              kernels::matmul(nc2, {.a = hbm<const bf16>::shape_only({64, 64}), .b = hbm<const f8e4m3>::shape_only({64, 64}),
                                    .c = hbm<float>::shape_only({64, 64})});
            }).find("only the two fp8 formats may mix"),
            std::string::npos);
}

TEST(SystolicMatmul, Fp8InputsAtTwiceTheBf16RateOnTrn2) {
  using kernels::operand_layout;
  const kernels::matmul_policy policy{.variant = kernels::matmul_variant::default_};
  check_variant<trn2, f8e4m3>(policy, operand_layout::k_major, operand_layout::k_major, 256, 512, 512);
  check_variant<trn1, f8e5m2>(policy, operand_layout::k_minor, operand_layout::k_major, 100, 130, 70);
}

/// A timing-only run of `variant` on the tutorial's bf16 problem (lhsT [K, M], rhs [K, N]).
template <class Machine>
timing::report tutorial_run(kernels::matmul_variant variant, std::size_t m, std::size_t k, std::size_t n,
                            kernels::matmul_policy policy = {}) {
  core<Machine> nc{{.functional = false}};
  kernels::matmul_problem problem;
  problem.a = hbm<const bf16>::shape_only({k, m});
  problem.b = hbm<const bf16>::shape_only({k, n});
  problem.c = hbm<float>::shape_only({m, n});
  policy.variant = variant;
  kernels::matmul(nc, problem, policy);
  return nc.report();
}

TEST(SystolicMatmul, TutorialStepsEachHelpOnTrn1AndTrn2) {
  // The tutorial shape, timing-only. Each step of the tutorial reuses data more than the one before; the
  // model must show it (an emergent property of the scheduler, the DMA model and the buffers, not scripted).
  const auto times = [](auto run) {
    std::vector<double> t;
    for (kernels::matmul_variant v : kernels::all_matmul_variants) t.push_back(run(v).total_ns);
    return t;
  };
  for (const auto& t : {times([](auto v) { return tutorial_run<trn1>(v, 4096, 8192, 8192); }),
                        times([](auto v) { return tutorial_run<trn2>(v, 4096, 8192, 8192); })}) {
    EXPECT_GT(t[0], t[1]) << "hoisted beats tiled";
    EXPECT_GT(t[1], t[3]) << "blocked beats hoisted";
    EXPECT_GE(t[3], t[4]) << "default is at least as fast as blocked";
  }
  const timing::report r = tutorial_run<trn1>(kernels::matmul_variant::default_, 4096, 8192, 8192);
  EXPECT_GT(r.mfu, 0.5);
  EXPECT_LE(r.mfu, 1.0);
  EXPECT_DOUBLE_EQ(r.model_flops, 2.0 * 4096 * 8192 * 8192);
}

TEST(SystolicMatmul, RuleViolationsNameTheRule) {
  // An accumulator wider than one PSUM bank of fp32.
  const std::string bank =
      error_of([] { tutorial_run<trn2>(kernels::matmul_variant::tiled, 256, 256, 2048, {.tile_n = 1024}); });
  EXPECT_NE(bank.find("[128, 1024] fp32) exceed one PSUM bank (2048 bytes) on trn2"), std::string::npos) << bank;
  // Two 64-tile lhsT columns and rhs strips of 8192-deep K overflow trn1's 192 KiB SBUF partitions.
  const std::string sbuf = error_of([] {
    tutorial_run<trn1>(kernels::matmul_variant::blocked_free, 4096, 8192, 8192, {.bufs = 2});
  });
  EXPECT_NE(sbuf.find("sbuf.tile"), std::string::npos) << sbuf;
  // Shapes that do not agree.
  EXPECT_NE(error_of([] {
              core<trn2> nc{{.functional = false}};
              kernels::matmul(nc, {.a = hbm<const bf16>::shape_only({128, 64}),
                                   .b = hbm<const bf16>::shape_only({256, 64}),
                                   .c = hbm<float>::shape_only({64, 64})});
            }).find("disagree on K"),
            std::string::npos);
}

TEST(SystolicMatmul, FrontDoorPaysForTransposes) {
  // A row-major A must be transposed on chip: by DMA on trn2 (2-byte data), on the Tensor Engine on trn1.
  std::vector<bf16> a(256 * 384, bf16(1.0f)), b(384 * 512, bf16(1.0f));
  std::vector<float> c(256 * 512);
  const trellis::tensor_view<const bf16, 2> av{a.data(), {256, 384}}, bv{b.data(), {384, 512}};
  const trellis::tensor_view<float, 2> cv{c.data(), {256, 512}};
  const auto count = [](const core_state& nc, opcode op, engine unit) {
    std::size_t n = 0;
    for (const instruction_record& r : nc.records()) n += r.op == op && r.unit == unit;
    return n;
  };
  core<trn1> nc1;
  trellis::matmul(nc1, av, bv, cv);
  EXPECT_EQ(count(nc1, opcode::nc_transpose, engine::tensor), 2u * 3u);  // 2 × 3 pieces of 128 × 128
  EXPECT_EQ(c[0], 384.0f);
  core<trn2> nc2;
  trellis::matmul(nc2, av, bv, cv);
  EXPECT_EQ(count(nc2, opcode::nc_transpose, engine::tensor), 0u);
  std::size_t dma_transposes = 0;
  for (const instruction_record& r : nc2.records()) dma_transposes += r.op == opcode::dma_copy && r.attributes.transpose;
  EXPECT_EQ(dma_transposes, 3u);  // one per 128-deep K tile of the 256-row A block
  EXPECT_EQ(c[511], 384.0f);
  // A given K-major (transpose_a of a [K, M] array) is loaded as it is: no transposes at all.
  core<trn1> nc3;
  trellis::matmul(nc3, trellis::tensor_view<const bf16, 2>{a.data(), {384, 256}}, bv, cv, {.transpose_a = true});
  EXPECT_EQ(count(nc3, opcode::nc_transpose, engine::tensor), 0u);
}

}  // namespace
