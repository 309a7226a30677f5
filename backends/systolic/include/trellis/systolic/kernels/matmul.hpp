#pragma once
// Matmul kernels for the NeuronCore model, written against the ISA as a Trainium kernel author would:
// the four steps of the public NKI matmul tutorial (trainium.md, "How the public sample kernels are
// structured") and a tuned default.
//
//   C[M, N] = epilogue(Aᵀ·B)   A: lhsT [K, M] or [M, K]; B: rhs [K, N] or [N, K]; C fp32 or bf16
//   inputs bf16, fp16, fp8 (e4m3/e5m2, may mix) or fp32 (¼ rate); PSUM accumulates in fp32.
//
// Tiles: tile_m × tile_k stationary (≤ 128 × 128), tile_k × tile_n moving (tile_n ≤ one PSUM bank of
// fp32 on v2/v3), a [tile_m, tile_n] fp32 accumulation group in PSUM. Variants (policy.variant):
//   tiled         step 1: for m, n: for k: load both tiles, matmul. Buffers: `bufs` per input tile
//                 (default 2), one PSUM tile and one eviction tile, reused (freed when they leave scope).
//   hoisted       step 2: a column of lhsT tiles per m (all of K), an rhs strip per (m, n). Buffers:
//                 `bufs` columns and strips (default 2), one PSUM tile, one eviction tile.
//   blocked_free  step 3: the free dims blocked block_m × block_n tiles (default 2 × 2: 256 × 1024): an
//                 lhsT block per m block, an rhs block per (m, n) block, all of K. Buffers: `bufs` blocks
//                 each (default 1: two of each overflow SBUF at the tutorial shape), one PSUM tile, one
//                 eviction tile.
//   blocked       step 4: M, N and K blocked (default 16 × 2 × 8 tiles = 2048 × 1024 × 1024); for each
//                 (n, m) block, K blocks are streamed and each tile's K-block sum is added to fp32 partial
//                 sums in SBUF (zeroed first), then each M tile's row of results is stored in one DMA.
//                 Buffers: `bufs` input blocks each (default 2), one partial-sum block, one PSUM tile.
//   default       step 4 tuned so DMA overlaps compute and no engine waits on another's buffer: inputs
//                 multi-buffered, PSUM accumulators in rotation (up to 4 banks), two partial-sum blocks
//                 (the store of one overlaps the next), the first K block copied instead of zero + add,
//                 and, when K fits one block, the epilogue fused straight into the PSUM eviction. Block
//                 sizes shrink until the footprint fits the machine's SBUF (resolve_matmul_policy).
// A tutorial listing declares its tiles inside the loops and lets NKI's compiler allocate them; the model
// allocates only what a kernel asks for, so each variant states the buffers above (DESIGN.md §4).

#include <algorithm>
#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "trellis/core/error.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/isa.hpp"
#include "trellis/systolic/kernels/matmul_parts.hpp"

namespace trellis::systolic::kernels {

enum class matmul_variant { tiled, hoisted, blocked_free, blocked, default_ /* "default" */ };

inline constexpr std::array<matmul_variant, 5> all_matmul_variants{
    matmul_variant::tiled, matmul_variant::hoisted, matmul_variant::blocked_free, matmul_variant::blocked,
    matmul_variant::default_};

constexpr const char* to_string(matmul_variant v) noexcept {
  switch (v) {
    case matmul_variant::tiled: return "tiled";
    case matmul_variant::hoisted: return "hoisted";
    case matmul_variant::blocked_free: return "blocked_free";
    case matmul_variant::blocked: return "blocked";
    case matmul_variant::default_: return "default";
  }
  return "?";
}

inline std::optional<matmul_variant> parse_matmul_variant(std::string_view name) noexcept {
  for (matmul_variant v : all_matmul_variants)
    if (name == to_string(v)) return v;
  return std::nullopt;
}

/// Tile sizes and buffer counts. Zeros take the variant's defaults (resolve_matmul_policy).
struct matmul_policy {
  matmul_variant variant = matmul_variant::default_;
  std::size_t tile_m = 128;  ///< stationary free size (≤ PE columns)
  std::size_t tile_k = 128;  ///< contraction per matmul (≤ PE rows)
  std::size_t tile_n = 512;  ///< moving free size (≤ one PSUM bank of fp32 on v2/v3)
  std::size_t block_m = 0;   ///< tiles per block along M (blocked_free, blocked, default)
  std::size_t block_n = 0;   ///< ... along N
  std::size_t block_k = 0;   ///< ... along K (blocked, default)
  std::size_t bufs = 0;      ///< rotating SBUF buffers per input tile, strip or block
};

/// What a kernel computes. All regions are in HBM; a region's dtype is its tensor's.
struct matmul_problem {
  region a;  ///< lhsT [K, M] (a_layout k_major) or A [M, K] (k_minor)
  region b;  ///< rhs [K, N] (b_layout k_major) or B [N, K] (k_minor)
  region c;  ///< [M, N], fp32 or bf16
  operand_layout a_layout = operand_layout::k_major;
  operand_layout b_layout = operand_layout::k_major;
  matmul_epilogue epilogue{};

  std::size_t m() const noexcept { return c.rows; }
  std::size_t n() const noexcept { return c.cols; }
  std::size_t k() const noexcept { return a_layout == operand_layout::k_major ? a.rows : a.cols; }
};

namespace detail {

constexpr std::size_t ceil_div(std::size_t a, std::size_t b) noexcept { return (a + b - 1) / b; }

[[noreturn]] inline void matmul_kernel_error(const std::string& what) { raise_error("systolic matmul kernel: " + what); }

inline void validate_problem(const matmul_problem& p, const matmul_policy& policy) {
  const auto shape = [](const region& r) { return systolic::detail::shape_string(r.rows, r.cols); };
  for (const region* r : {&p.a, &p.b, &p.c})
    if (r->space != memory_space::hbm) matmul_kernel_error("a, b and c must be HBM tensors");
  const bool a_kmajor = p.a_layout == operand_layout::k_major, b_kmajor = p.b_layout == operand_layout::k_major;
  const std::size_t k = p.k(), m = a_kmajor ? p.a.cols : p.a.rows;
  const std::size_t kb = b_kmajor ? p.b.rows : p.b.cols, n = b_kmajor ? p.b.cols : p.b.rows;
  if (kb != k)
    matmul_kernel_error("a " + shape(p.a) + " and b " + shape(p.b) + " disagree on K (" + std::to_string(k) + " vs " +
                        std::to_string(kb) + ")");
  if (p.c.rows != m || p.c.cols != n)
    matmul_kernel_error("c is " + shape(p.c) + ", expected [M, N] = " + systolic::detail::shape_string(m, n));
  if (p.c.type != dtype::f32 && p.c.type != dtype::bf16)
    matmul_kernel_error(std::string("c is ") + to_string(p.c.type) + "; expected fp32 or bf16");
  if (!p.c.writable) matmul_kernel_error("c is a read-only tensor");
  if (policy.tile_m == 0 || policy.tile_k == 0 || policy.tile_n == 0)
    matmul_kernel_error("tile sizes must be positive");
  if (p.epilogue.bias.present() && (p.epilogue.bias.rows != 1 || p.epilogue.bias.cols != n))
    matmul_kernel_error("bias is " + shape(p.epilogue.bias) + ", expected [1, N] = [1, " + std::to_string(n) + "]");
  if (p.epilogue.residual.present() && (p.epilogue.residual.rows != m || p.epilogue.residual.cols != n))
    matmul_kernel_error("residual is " + shape(p.epilogue.residual) + ", expected [M, N] = " +
                        systolic::detail::shape_string(m, n));
}

/// PSUM banks a kernel's helpers hold beside its accumulators: the bias broadcast and the Tensor Engine
/// transposes of K-minor operands each borrow one.
inline std::size_t psum_banks_for_helpers(const machine_spec& spec, const matmul_problem& p) {
  const auto te_transpose = [&](const region& r, operand_layout layout) {
    return layout == operand_layout::k_minor && !(spec.dma.transpose_2byte && size_of(r.type) == 2);
  };
  return std::size_t(p.epilogue.bias.present()) + std::size_t(te_transpose(p.a, p.a_layout) || te_transpose(p.b, p.b_layout));
}

/// SBUF bytes per partition the blocked/default variants hold (inputs, partial sums, output tiles).
inline std::size_t blocked_footprint(const matmul_policy& q, std::size_t in_bytes, std::size_t out_bytes,
                                     std::size_t partial_bufs, bool bias) {
  const std::size_t a = q.bufs * q.block_k * q.block_m * q.tile_m * in_bytes;
  const std::size_t b = q.bufs * q.block_k * q.block_n * q.tile_n * in_bytes;
  const std::size_t partial = partial_bufs * q.block_m * q.block_n * q.tile_n * 4;
  const std::size_t out = 2 * q.block_n * q.tile_n * out_bytes + (bias ? 2 * q.block_n * q.tile_n * 4 : 0);
  return a + b + partial + out + 2 * 128 * in_bytes;  // + transpose staging
}

}  // namespace detail

/// The policy a run uses: `requested` with its zeros replaced by the variant's defaults (see the header
/// comment), block counts clipped to the problem, and the default variant's blocks shrunk to fit SBUF.
inline matmul_policy resolve_matmul_policy(const matmul_policy& requested, const machine_spec& spec,
                                           const matmul_problem& p) {
  using detail::ceil_div;
  matmul_policy q = requested;
  if (q.tile_m == 0 || q.tile_k == 0 || q.tile_n == 0) return q;  // rejected by validate_problem
  const std::size_t m_tiles = ceil_div(p.m(), q.tile_m), n_tiles = ceil_div(p.n(), q.tile_n),
                    k_tiles = ceil_div(p.k(), q.tile_k);
  const auto or_default = [](std::size_t v, std::size_t d) { return v != 0 ? v : d; };
  switch (q.variant) {
    case matmul_variant::tiled: q.bufs = or_default(q.bufs, 2); break;
    case matmul_variant::hoisted:  // blocked_free with one-tile "blocks": a column of lhsT, a strip of rhs
      q.block_m = 1;
      q.block_n = 1;
      q.bufs = or_default(q.bufs, 2);
      break;
    case matmul_variant::blocked_free:
      q.block_m = or_default(q.block_m, 2);
      q.block_n = or_default(q.block_n, 2);
      q.bufs = or_default(q.bufs, 1);
      break;
    case matmul_variant::blocked:
      q.block_m = or_default(q.block_m, 16);
      q.block_n = or_default(q.block_n, 2);
      q.block_k = or_default(q.block_k, 8);
      q.bufs = or_default(q.bufs, 2);
      break;
    case matmul_variant::default_: {
      // 16 × 2 × 4 tiles, double-buffered: the best of `trellis-sim tune matmul` at the tutorial shape on
      // trn1 and trn2 (docs/systolic-model.md); smaller M blocks where SBUF is short. Where fp8 runs the
      // Tensor Engine faster, K blocks grow by the same factor so the Vector Engine's partial-sum adds (one
      // per tile and K block) keep up: 16 × 2 × 8 for fp8 on trn2 (4.67 → 3.85 ms at the tutorial shape).
      const bool fp8 = p.a.type == dtype::f8e4m3 || p.a.type == dtype::f8e5m2;
      const bool shrink_m = requested.block_m == 0;
      q.block_m = or_default(q.block_m, 16);
      q.block_n = or_default(q.block_n, 2);
      q.block_k = or_default(q.block_k, 4 * (fp8 ? spec.matmul.fp8_rate_multiplier : 1));
      q.bufs = or_default(q.bufs, 2);
      const std::size_t in_bytes = size_of(p.a.type), out_bytes = size_of(p.c.type);
      const std::size_t budget = spec.memory.sbuf_bytes_per_partition;
      const bool bias = p.epilogue.bias.present();
      const std::size_t partial_bufs = ceil_div(k_tiles, q.block_k) > 1 ? 2 : 0;
      while (shrink_m && q.block_m > 1 && detail::blocked_footprint(q, in_bytes, out_bytes, partial_bufs, bias) > budget)
        q.block_m /= 2;
      break;
    }
  }
  if (q.block_m != 0) q.block_m = std::min(q.block_m, m_tiles);
  if (q.block_n != 0) q.block_n = std::min(q.block_n, n_tiles);
  if (q.block_k != 0) q.block_k = std::min(q.block_k, k_tiles);
  return q;
}

namespace detail {

/// One run of one variant; TA and TB are the inputs' storage types (the same, or two fp8 formats), TC the
/// output's.
template <class TA, class TB, class TC>
class matmul_run {
 public:
  matmul_run(core_state& nc, const matmul_problem& p, const matmul_policy& q)
      : nc_(nc), p_(p), q_(q), m_(p.m()), k_(p.k()), n_(p.n()), a_(nc, p.a, p.a_layout), b_(nc, p.b, p.b_layout) {}

  void run() {
    switch (q_.variant) {
      case matmul_variant::tiled: return tiled();
      case matmul_variant::hoisted:  // blocked_free with 1 × 1 tile blocks (resolve_matmul_policy)
      case matmul_variant::blocked_free: return blocked_free();
      case matmul_variant::blocked: return blocked(false);
      case matmul_variant::default_: return blocked(true);
    }
  }

 private:
  void tiled() {
    using namespace isa;
    const std::size_t tm = q_.tile_m, tk = q_.tile_k, tn = q_.tile_n;
    auto a_pool = nc_.sbuf.template pool<TA>({tk, tm}, q_.bufs);  // [K, M] stationary tiles
    auto b_pool = nc_.sbuf.template pool<TB>({tk, tn}, q_.bufs);  // [K, N] moving tiles
    result_writer<TC> out(nc_, p_.c, p_.epilogue, tm, tn, 0);
    for (std::size_t m = 0; m < m_; m += tm)
      for (std::size_t n = 0; n < n_; n += tn) {
        const std::size_t mt = std::min(tm, m_ - m), nt = std::min(tn, n_ - n);
        out.prepare_bias(n, nt, tm);
        auto acc = nc_.psum.template tile<float>(mt, nt);  // [mt, nt] fp32: one PSUM bank
        for (std::size_t k = 0; k < k_; k += tk) {
          const std::size_t kt = std::min(tk, k_ - k);
          const region a = a_pool.next().sub(0, kt, 0, mt);  // [kt, mt]
          const region b = b_pool.next().sub(0, kt, 0, nt);  // [kt, nt]
          a_.load(a, k, m, kt, mt);
          b_.load(b, k, n, kt, nt);
          nc_matmul(nc_, acc, /*stationary*/ a, /*moving*/ b, {.accumulate = k > 0});
        }
        out.write(acc, m, n);
      }
  }

  /// Steps 2 (hoisted: 1 × 1 tile blocks — a column of lhsT per m, an rhs strip per (m, n)) and 3.
  void blocked_free() {
    using namespace isa;
    const std::size_t tm = q_.tile_m, tk = q_.tile_k, tn = q_.tile_n, k_tiles = ceil_div(k_, tk);
    const std::size_t bm = q_.block_m * tm, bn = q_.block_n * tn;               // block extents
    auto a_pool = nc_.sbuf.template pool<TA>({tk, k_tiles * bm}, q_.bufs);  // k_tiles × [K, block M]
    auto b_pool = nc_.sbuf.template pool<TB>({tk, k_tiles * bn}, q_.bufs);  // k_tiles × [K, block N]
    result_writer<TC> out(nc_, p_.c, p_.epilogue, tm, tn, 0);
    for (std::size_t m0 = 0; m0 < m_; m0 += bm) {
      const std::size_t mw = std::min(bm, m_ - m0);
      const tile<TA>& a_block = a_pool.next();
      for (std::size_t i = 0; i < k_tiles; ++i) a_.load(a_block.sub(0, kt(i), i * bm, mw), i * tk, m0, kt(i), mw);
      for (std::size_t n0 = 0; n0 < n_; n0 += bn) {
        const std::size_t nw = std::min(bn, n_ - n0);
        const tile<TB>& b_block = b_pool.next();
        for (std::size_t i = 0; i < k_tiles; ++i) b_.load(b_block.sub(0, kt(i), i * bn, nw), i * tk, n0, kt(i), nw);
        for (std::size_t m = 0; m < mw; m += tm)
          for (std::size_t n = 0; n < nw; n += tn) {
            const std::size_t mt = std::min(tm, mw - m), nt = std::min(tn, nw - n);
            out.prepare_bias(n0 + n, nt, tm);
            auto acc = nc_.psum.template tile<float>(mt, nt);  // [mt, nt]
            for (std::size_t i = 0; i < k_tiles; ++i)
              nc_matmul(nc_, acc, a_block.sub(0, kt(i), i * bm + m, mt), b_block.sub(0, kt(i), i * bn + n, nt),
                        {.accumulate = i > 0});
            out.write(acc, m0 + m, n0 + n);
          }
      }
    }
  }

  /// Steps 4 (tuned = false) and the default (tuned = true); see the header comment.
  void blocked(bool tuned) {
    using namespace isa;
    const std::size_t tm = q_.tile_m, tk = q_.tile_k, tn = q_.tile_n;
    const std::size_t bm = q_.block_m * tm, bn = q_.block_n * tn, bk = q_.block_k * tk;  // block extents
    const bool one_k_block = bk >= k_;
    const bool fuse = tuned && one_k_block;  // the epilogue straight from PSUM: no partial sums
    auto a_pool = nc_.sbuf.template pool<TA>({tk, q_.block_k * bm}, q_.bufs);  // block_k × [K, block M]
    auto b_pool = nc_.sbuf.template pool<TB>({tk, q_.block_k * bn}, q_.bufs);  // block_k × [K, block N]
    std::optional<pool<float>> partial;  // block_m × [M tile, block N] fp32 partial sums, side by side
    if (!fuse) partial.emplace(nc_.sbuf.template pool<float>({tm, q_.block_m * bn}, tuned ? 2 : 1));
    std::optional<pool<float>> accumulators;  // tuned: PSUM groups in rotation
    if (tuned) {
      const std::size_t banks = nc_.spec().memory.psum_banks - psum_banks_for_helpers(nc_.spec(), p_);
      accumulators.emplace(nc_.psum.template pool<float>({tm, tn}, std::max<std::size_t>(1, std::min<std::size_t>(4, banks))));
    }
    result_writer<TC> out(nc_, p_.c, p_.epilogue, tm, bn, tuned ? 2 : 0);
    for (std::size_t n0 = 0; n0 < n_; n0 += bn) {
      const std::size_t nw = std::min(bn, n_ - n0);
      out.prepare_bias(n0, nw, tm);
      for (std::size_t m0 = 0; m0 < m_; m0 += bm) {
        const std::size_t mw = std::min(bm, m_ - m0);
        const tile<float>* sums = partial ? &partial->next() : nullptr;
        if (sums && !tuned) memset(nc_, *sums, 0.0f);
        for (std::size_t k0 = 0; k0 < k_; k0 += bk) {
          const std::size_t kw = std::min(bk, k_ - k0), k_count = ceil_div(kw, tk);
          const tile<TA>& a_block = a_pool.next();
          const tile<TB>& b_block = b_pool.next();
          for (std::size_t i = 0; i < k_count; ++i) {
            const std::size_t kt = std::min(tk, kw - i * tk);
            a_.load(a_block.sub(0, kt, i * bm, mw), k0 + i * tk, m0, kt, mw);
            b_.load(b_block.sub(0, kt, i * bn, nw), k0 + i * tk, n0, kt, nw);
          }
          for (std::size_t n = 0; n < nw; n += tn)
            for (std::size_t m = 0; m < mw; m += tm) {
              const std::size_t mt = std::min(tm, mw - m), nt = std::min(tn, nw - n);
              tile<float> scoped;
              const region acc = accumulators ? accumulators->next().sub(0, mt, 0, nt)
                                              : (scoped = nc_.psum.template tile<float>(mt, nt)).view();  // [mt, nt]
              for (std::size_t i = 0; i < k_count; ++i) {
                const std::size_t kt = std::min(tk, kw - i * tk);
                nc_matmul(nc_, acc, a_block.sub(0, kt, i * bm + m, mt), b_block.sub(0, kt, i * bn + n, nt),
                          {.accumulate = i > 0});
              }
              if (fuse) {
                out.write(acc, m0 + m, n0 + n);
                continue;
              }
              const region sum = sums->sub(0, mt, (m / tm) * bn + n, nt);  // this tile's partial sums
              if (tuned && k0 == 0)
                tensor_copy(nc_, sum, acc);
              else
                tensor_tensor(nc_, sum, sum, acc, alu_op::add);
            }
        }
        if (!fuse)
          for (std::size_t m = 0; m < mw; m += tm)  // one store per M tile's row of results
            out.write(sums->sub(0, std::min(tm, mw - m), (m / tm) * bn, nw), m0 + m, n0);
      }
    }
  }

  std::size_t kt(std::size_t i) const noexcept { return std::min(q_.tile_k, k_ - i * q_.tile_k); }

  core_state& nc_;
  const matmul_problem& p_;
  matmul_policy q_;
  std::size_t m_, k_, n_;
  operand_loader<TA> a_;
  operand_loader<TB> b_;
};

template <class TA, class TB>
void run_with_inputs(core_state& nc, const matmul_problem& p, const matmul_policy& q) {
  if (p.c.type == dtype::bf16) return matmul_run<TA, TB, bf16>(nc, p, q).run();
  return matmul_run<TA, TB, float>(nc, p, q).run();
}

template <class TA>
void run_with_input(core_state& nc, const matmul_problem& p, const matmul_policy& q) {
  if constexpr (std::is_same_v<TA, f8e4m3> || std::is_same_v<TA, f8e5m2>) {  // the fp8 formats may mix
    if (p.b.type == dtype::f8e4m3) return run_with_inputs<TA, f8e4m3>(nc, p, q);
    return run_with_inputs<TA, f8e5m2>(nc, p, q);
  } else {
    return run_with_inputs<TA, TA>(nc, p, q);
  }
}

}  // namespace detail

/// Runs `problem` with `policy` (its zeros resolved by resolve_matmul_policy) on the core.
inline void matmul(core_state& nc, const matmul_problem& problem, const matmul_policy& policy = {}) {
  detail::validate_problem(problem, policy);
  const matmul_policy q = resolve_matmul_policy(policy, nc.spec(), problem);
  const dtype a = problem.a.type, b = problem.b.type;
  const bool fp8 = (a == dtype::f8e4m3 || a == dtype::f8e5m2) && (b == dtype::f8e4m3 || b == dtype::f8e5m2);
  if (a != b && !fp8)
    detail::matmul_kernel_error(std::string("a is ") + to_string(a) + " but b is " + to_string(b) +
                                " (operands share a dtype; only the two fp8 formats may mix)");
  switch (a) {
    case dtype::f32: return detail::run_with_input<float>(nc, problem, q);
    case dtype::bf16: return detail::run_with_input<bf16>(nc, problem, q);
    case dtype::f16: return detail::run_with_input<f16>(nc, problem, q);
    case dtype::f8e4m3: return detail::run_with_input<f8e4m3>(nc, problem, q);
    case dtype::f8e5m2: return detail::run_with_input<f8e5m2>(nc, problem, q);
  }
}

}  // namespace trellis::systolic::kernels
