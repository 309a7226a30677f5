#pragma once
// layernorm_tiled and rmsnorm_tiled: the NKI LayerNorm / RMSNorm structure [trainium.md, "How the public
// sample kernels are structured"], written against the ISA as a kernel author would.
//
//   y[rows, H] = (s − mean(s))·(var(s) + eps)^-½ · γ + β      layernorm, s = x (+ r), statistics fp32
//   y[rows, H] = s·(mean(s²) + eps)^-½ · γ                     rmsnorm
//
// Rows lie on partitions, 128 per tile (the last tile ragged); a whole row stays in SBUF, so x (and r) are
// read from HBM once. Per row tile:
//
//   layernorm                                         rmsnorm
//   DMA     x (and r) → SBUF                          DMA     x (and r) → SBUF
//   Vector  s = x + r (fp32), DMA s → residual_out    Vector  s = x + r (fp32), DMA s → residual_out
//   Vector  bn_stats per ≤ 512-element chunk          Scalar  activation(square, reduce_out = Σ s²)
//   Vector  bn_aggr → mean, var                       Scalar  rstd = rsqrt(Σ s²·(1/H) + eps)
//   Scalar  rstd = rsqrt(var·1 + eps)                 Scalar  s·rstd  (tensor_scalar)
//   Scalar  (s − mean)·rstd  (one two-op tensor_scalar)
//   Vector  ·γ (tensor_tensor)                        Vector  ·γ (tensor_tensor)
//   GpSimd  +β (tensor_tensor)                        DMA     y → HBM
//   DMA     y → HBM
//
// Everything after the load is fp32 in SBUF (a bf16 x is widened on the engines' read, exactly); only the
// last instruction rounds to y's dtype, so a bf16 y is one rounding away from the fp32 result. rsqrt is an
// activation function of the model's Scalar Engine (the ISA has no pow ALU op), with eps as its
// per-partition bias.
//
// Pipeline. Every engine runs its instructions in issue order, so the kernel issues them in the order it
// wants them to overlap: loads run bufs − 1 tiles ahead; in iteration i the Scalar Engine normalises tile i
// while the Vector Engine computes the statistics of tile i + 1, then the Vector Engine applies γ and the
// GpSimd Engine β to tile i and the DMA stores it (the statistics of tile i + 1 are issued between the two,
// so neither engine waits for the other's work on the same tile).
//
// Engines. Vector carries bn_stats and ·γ, Scalar the rstd and the normalising tensor_scalar, GpSimd the +β:
// the cost table charges a tensor_tensor max(64, 2N) on either engine [trainium.md], and GpSimd clocks
// higher (1.4 vs 1.12 GHz on trn1, 1.2 vs 0.96 on trn2). On trn1 Vector and GpSimd share one SBUF port, so
// there they take turns; moving +β there still gains by the clock (see docs/systolic-model.md for the
// measured choices).
//
// γ and β are broadcast across partitions once per call, with a ones-matmul on the otherwise idle Tensor
// Engine: γ is DMAed into partition 0 of its [128, H] tile and onesᵀ[1, 128]·γ[1, ≤ 512] lands on all 128
// partitions in PSUM, copied back into the tile by the Scalar Engine. The other option, a DMA whose HBM
// side has partition stride 0, is expressible in the region model (an HBM row stride of 0), but it moves
// 128 × H × 4 bytes through the DMA engines and HBM — the resources a norm shares with its own loads —
// where the matmul reads γ once (H × 4 bytes). The broadcast copies the values exactly (1·γ, K = 1, fp32).
//
// Buffers (SBUF, per partition; bufs = policy.bufs ≥ 2):
//   x tiles        bufs × H × sizeof(TX)     loads run bufs − 1 tiles ahead
//   fp32 work      work_bufs × H × 4         only when x is bf16 (an fp32 x is worked on in place)
//   y              —                         in place: in the x tile when y has x's dtype, else in the fp32
//                                            work tile (x bf16, y fp32)
//   r tiles        (bufs − 1) × H × sizeof(TR)   only with a residual (read once, by the x + r)
//   γ, β           1 each × H × 4            broadcast once, fp32 (exact for bf16 γ/β)
//   squares        1 × H × 2                 rmsnorm: the discarded squares (only their sum is used)
//   statistics     2 × (6·chunks + 3) × 4    bn_stats, (mean, var), rstd; eps column 4; ones row 4·128
// PSUM: 2 rotating [128, 512] fp32 banks, during the broadcast only.
// A hidden size whose buffers do not fit a partition is a rule error that says how much fits (there is no
// chunked two-pass fallback: it would read x twice). default_norm_policy() takes bufs = 3 (and 3 work tiles
// with a residual) where they fit, else fewer; H = 8192 with γ, β and a residual, fp32 or bf16, fits trn1's
// 192 KiB partitions with bufs = 2.

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/isa.hpp"

namespace trellis::systolic::kernels {

/// Tile sizes, buffer counts and engine choices of the norm kernels (see the header comment).
struct norm_policy {
  std::size_t rows_per_tile = 128;         ///< rows per tile, one per partition
  std::size_t bufs = 3;                    ///< x tiles in rotation (≥ 2): loads run bufs − 1 tiles ahead
  std::size_t work_bufs = 2;               ///< fp32 work tiles when x is bf16 (≥ 2; 3 helps with a residual)
  std::size_t stats_chunk = 512;           ///< bn_stats free size (≤ the machine's bn_stats_free_max)
  engine normalize_unit = engine::scalar;  ///< the (s − mean)·rstd / s·rstd tensor_scalar: vector, scalar, gpsimd
  engine scale_unit = engine::vector;      ///< the ·γ tensor_tensor: vector or gpsimd
  engine shift_unit = engine::gpsimd;      ///< the +β tensor_tensor: vector or gpsimd
};

/// The optional HBM operands of a norm kernel; a default region is an absent operand.
struct norm_operands {
  region gamma{};         ///< [1, H], fp32 or bf16
  region beta{};          ///< [1, H], fp32 or bf16 (layernorm only)
  region residual{};      ///< [rows, H], fp32 or bf16: normalise s = x + r (the sum in fp32)
  region residual_out{};  ///< [rows, H], fp32 or bf16: receives s (needs residual)
  float eps = 1e-5f;
};

/// Which norm a kernel computes.
enum class norm_kind { layer, rms };

namespace detail {

inline const char* norm_name(norm_kind kind) noexcept {
  return kind == norm_kind::layer ? "layernorm_tiled" : "rmsnorm_tiled";
}

/// The SBUF bytes per partition the kernel holds for hidden size H: its tiles in allocation order, each
/// placed at the end of the previous one rounded up to its element size (first fit; nothing is freed while
/// the kernel runs, except the PSUM banks).
inline std::size_t norm_sbuf_bytes(norm_kind kind, dtype tx, const norm_operands& extra, const norm_policy& policy,
                                   std::size_t hidden, std::size_t partitions) {
  std::size_t end = 0;
  const auto place = [&](std::size_t tiles, std::size_t count, std::size_t elem) {
    for (std::size_t t = 0; t < tiles; ++t) end = (end + elem - 1) / elem * elem + count * elem;
  };
  const std::size_t chunks = (hidden + policy.stats_chunk - 1) / policy.stats_chunk;
  const bool gamma = extra.gamma.present(), beta = kind == norm_kind::layer && extra.beta.present();
  place(1, 1, 4);                                                  // eps column
  if (gamma || beta) place(1, partitions, 4);                      // ones row (partition 0)
  place(std::size_t(gamma) + std::size_t(beta), hidden, 4);        // γ, β broadcasts
  place(policy.bufs, hidden, size_of(tx));                         // x tiles
  if (tx != dtype::f32) place(policy.work_bufs, hidden, 4);       // fp32 work tiles
  if (extra.residual.present()) place(policy.bufs - 1, hidden, size_of(extra.residual.type));  // r tiles
  if (kind == norm_kind::rms) place(1, hidden, 2);                 // discarded squares (bf16)
  place(2, 6 * chunks, 4);                                         // bn_stats
  place(2, 2, 4);                                                  // (mean, var) or Σ s²
  place(2, 1, 4);                                                  // rstd
  return end;
}

/// Every check that needs no instruction: shapes, dtypes, the policy, the SBUF budget.
inline void check_norm_call(const core_state& nc, norm_kind kind, const region& x, const region& y,
                            const norm_operands& extra, const norm_policy& policy) {
  const std::string name = norm_name(kind);
  const std::string on = std::string(" on ") + nc.spec().name;
  const std::size_t rows = x.rows, hidden = x.cols;
  if (y.rows != rows || y.cols != hidden)
    raise_error(name + ": y shape " + systolic::detail::shape_string(y.rows, y.cols) + " is not x's shape " +
                systolic::detail::shape_string(rows, hidden));
  const auto check_hbm = [&](const region& r, const char* role, std::size_t want_rows) {
    if (!r.present()) return;
    if (r.space != memory_space::hbm)
      raise_error(name + ": " + role + " is in " + to_string(r.space) + ", expected HBM");
    if (r.type != dtype::f32 && r.type != dtype::bf16)
      raise_error(name + ": " + role + " is " + to_string(r.type) + ", expected fp32 or bf16");
    if (r.rows != want_rows || r.cols != hidden)
      raise_error(name + ": " + role + " shape " + systolic::detail::shape_string(r.rows, r.cols) + " is not " +
                  systolic::detail::shape_string(want_rows, hidden));
  };
  check_hbm(extra.gamma, "gamma", 1);
  check_hbm(extra.residual, "residual", rows);
  check_hbm(extra.residual_out, "residual_out", rows);
  if (kind == norm_kind::layer) check_hbm(extra.beta, "beta", 1);
  else if (extra.beta.present()) raise_error(name + ": beta is not an rmsnorm operand");
  if (extra.residual_out.present() && !extra.residual.present())
    raise_error(name + ": residual_out needs a residual (it receives x + r)");
  if (extra.residual_out.present() && !extra.residual_out.writable)
    raise_error(name + ": residual_out is a read-only (const) tensor");
  if (!(extra.eps >= 0.0f)) raise_error(name + ": eps " + std::to_string(extra.eps) + " is not ≥ 0");

  const std::size_t partitions = nc.spec().memory.partitions;
  if (policy.rows_per_tile == 0 || policy.rows_per_tile > partitions)
    raise_error(name + ": policy.rows_per_tile " + std::to_string(policy.rows_per_tile) + " is outside 1.." +
                std::to_string(partitions) + on + " (rows lie on partitions)");
  if (policy.bufs < 2)
    raise_error(name + ": policy.bufs " + std::to_string(policy.bufs) +
                " is below 2 (the pipeline loads the next tile while the current one is in use)");
  if (policy.work_bufs < 2)
    raise_error(name + ": policy.work_bufs " + std::to_string(policy.work_bufs) +
                " is below 2 (tile i + 1 gets its work tile while tile i is still in use)");
  const std::size_t bn_max = nc.spec().access.bn_stats_free_max;
  if (policy.stats_chunk == 0 || policy.stats_chunk > bn_max)
    raise_error(name + ": policy.stats_chunk " + std::to_string(policy.stats_chunk) + " is outside 1.." +
                std::to_string(bn_max) + on + " (bn_stats free size)");
  const auto check_unit = [&](engine unit, const char* field, const char* instruction, bool scalar_ok) {
    if (unit == engine::vector || unit == engine::gpsimd || (scalar_ok && unit == engine::scalar)) return;
    raise_error(name + ": policy." + field + " is the " + to_string(unit) + " engine; " + instruction + " runs on " +
                (scalar_ok ? "vector, scalar or gpsimd" : "vector or gpsimd"));
  };
  check_unit(policy.normalize_unit, "normalize_unit", "tensor_scalar", true);
  check_unit(policy.scale_unit, "scale_unit", "tensor_tensor", false);
  check_unit(policy.shift_unit, "shift_unit", "tensor_tensor", false);
  const std::size_t free_max = nc.spec().access.engine_free_max_sbuf;
  if (hidden > free_max)
    raise_error(name + ": hidden " + std::to_string(hidden) + " exceeds " + std::to_string(free_max) + on +
                " (a whole row is one engine access of at most this many elements per partition)");

  const auto need = [&](std::size_t h) {
    return norm_sbuf_bytes(kind, x.type, extra, policy, h, policy.rows_per_tile);
  };
  const std::size_t capacity = nc.spec().memory.sbuf_bytes_per_partition;
  if (need(hidden) > capacity) {
    std::size_t fits = 0, too_big = hidden;  // the largest hidden size that fits: need() grows with it
    while (too_big - fits > 1) {
      const std::size_t mid = fits + (too_big - fits) / 2;
      (need(mid) <= capacity ? fits : too_big) = mid;
    }
    raise_error(name + ": hidden " + std::to_string(hidden) + " needs " + std::to_string(need(hidden)) +
                " bytes per partition of SBUF" + on + ", which has " + std::to_string(capacity) +
                " (a whole row per partition: " + std::to_string(policy.bufs) + " x buffers" +
                (x.type != dtype::f32 ? std::string(" + fp32 work buffers") : std::string()) +
                (extra.residual.present() ? " + " + std::to_string(policy.bufs - 1) + " residual buffers"
                                          : std::string()) +
                " + the broadcast parameters); with this policy and these operands hidden ≤ " + std::to_string(fits) +
                " fits (fewer bufs fit more)");
  }
}

}  // namespace detail

/// The front doors' policy: norm_policy{} (bufs = 3) where its buffers fit a partition, else bufs = 2.
inline norm_policy default_norm_policy(const core_state& nc, norm_kind kind, dtype tx, const norm_operands& extra,
                                       std::size_t hidden) {
  // With a residual, a third work tile lets x + r of tile i + 1 start before tile i − 1's +β (GpSimd) has
  // finished reading the work tile it would reuse. Buffers are dropped in the order that costs least
  // (measured: docs/systolic-model.md) until they fit.
  const bool residual = extra.residual.present() && tx != dtype::f32;
  const std::pair<std::size_t, std::size_t> ladder[] = {{3, residual ? 3 : 2}, {3, 2}, {2, 2}};  // (bufs, work_bufs)
  norm_policy policy;
  for (const auto& [bufs, work] : ladder) {
    policy.bufs = bufs;
    policy.work_bufs = work;
    if (detail::norm_sbuf_bytes(kind, tx, extra, policy, hidden, policy.rows_per_tile) <=
        nc.spec().memory.sbuf_bytes_per_partition)
      break;
  }
  return policy;
}

namespace detail {

/// Rotating residual buffers of the residual's dtype (known at run time).
class residual_tiles {
 public:
  residual_tiles(core_state& nc, const region& residual, std::size_t partitions, std::size_t hidden, std::size_t bufs) {
    if (!residual.present()) return;
    if (residual.type == dtype::bf16) b16_.emplace(nc.sbuf.pool<bf16>({partitions, hidden}, bufs));
    else f32_.emplace(nc.sbuf.pool<float>({partitions, hidden}, bufs));
  }
  region next() { return b16_ ? b16_->next().view() : f32_->next().view(); }

 private:
  std::optional<pool<float>> f32_;
  std::optional<pool<bf16>> b16_;
};

/// [1, H] HBM parameter → all `partitions` rows of `dst` [partitions, H] fp32 SBUF, once per call: the row
/// is DMAed into partition 0 of dst, then onesᵀ[1, P]·row[1, n] (K = 1) puts it on every partition in PSUM,
/// 512 columns (one bank) at a time, and the Scalar Engine copies it back (2 PSUM banks rotate so the next
/// matmul overlaps the copy). Each copy overwrites only columns whose matmul has already read them.
inline void broadcast_partitions(core_state& nc, const tile<float>& dst, const region& row, const tile<float>& ones,
                                 pool<float>& banks) {
  using namespace trellis::systolic::isa;
  const std::size_t partitions = dst.partitions(), hidden = dst.free_size();
  const std::size_t bank = nc.spec().matmul.moving_free_max_fp32_out;
  dma_copy(nc, dst.sub(0, 1, 0, hidden), row);  // [1, H] into partition 0, cast to fp32
  for (std::size_t c = 0; c < hidden; c += bank) {
    const std::size_t n = std::min(bank, hidden - c);
    const region acc = banks.next().sub(0, partitions, 0, n);                     // [P, n] PSUM
    nc_matmul(nc, acc, /*stationary*/ ones.view(), /*moving*/ dst.sub(0, 1, c, n));  // onesᵀ·γ
    tensor_copy(nc, dst.sub(0, partitions, c, n), acc, {.unit = engine::scalar});
  }
}

/// The shared body of both kernels (see the header comment for the instruction sequence and the pipeline).
template <class TX, class TY>
void norm_tiled(core_state& nc, norm_kind kind, hbm<const TX> x, hbm<TY> y, const norm_operands& extra,
                const norm_policy& policy) {
  static_assert(std::is_same_v<TX, float> || std::is_same_v<TX, bf16>, "norm kernels: x must be fp32 or bf16");
  static_assert(std::is_same_v<TY, float> || std::is_same_v<TY, bf16>, "norm kernels: y must be fp32 or bf16");
  using namespace trellis::systolic::isa;
  constexpr bool x_is_f32 = std::is_same_v<TX, float>;
  const region xr = x, yr = y;
  check_norm_call(nc, kind, xr, yr, extra, policy);
  const std::size_t rows = xr.rows, hidden = xr.cols;
  if (rows == 0 || hidden == 0) return;
  const std::size_t P = std::min(policy.rows_per_tile, rows);  // partitions in use
  const std::size_t tiles = (rows + P - 1) / P, ahead = policy.bufs - 1;
  const std::size_t chunk = policy.stats_chunk, chunks = (hidden + chunk - 1) / chunk;
  const bool has_gamma = extra.gamma.present(), has_beta = kind == norm_kind::layer && extra.beta.present();
  const bool has_residual = extra.residual.present();

  // Once per call: eps on every partition (activation takes its bias per partition), γ and β broadcast.
  // The ones row lives as long as the kernel: a row tile reusing its bytes would wait for the broadcast.
  auto eps = nc.sbuf.tile<float>(P, 1);  // [P, 1]
  memset(nc, eps, extra.eps);
  tile<float> ones, gamma_b, beta_b;  // [1, P] stationary; [P, H] fp32, 1 buffer each
  if (has_gamma || has_beta) {
    ones = nc.sbuf.tile<float>(1, P);
    memset(nc, ones, 1.0f);
  }
  if (has_gamma) gamma_b = nc.sbuf.tile<float>(P, hidden);
  if (has_beta) beta_b = nc.sbuf.tile<float>(P, hidden);
  if (has_gamma || has_beta) {
    auto banks = nc.psum.pool<float>({P, nc.spec().matmul.moving_free_max_fp32_out}, 2);  // [P, 512] × 2 banks
    if (has_gamma) broadcast_partitions(nc, gamma_b, extra.gamma, ones, banks);
    if (has_beta) broadcast_partitions(nc, beta_b, extra.beta, ones, banks);
  }

  // Row-tile buffers (counts in the header comment).
  auto x_tiles = nc.sbuf.pool<TX>({P, hidden}, policy.bufs);  // [P, H] TX
  std::optional<pool<float>> work_tiles;                       // [P, H] fp32, when x is bf16
  if constexpr (!x_is_f32) work_tiles.emplace(nc.sbuf.pool<float>({P, hidden}, policy.work_bufs));
  residual_tiles r_tiles(nc, extra.residual, P, hidden, ahead);  // [P, H] TR
  std::optional<pool<bf16>> squares;                             // [P, H] bf16, rmsnorm
  if (kind == norm_kind::rms) squares.emplace(nc.sbuf.pool<bf16>({P, hidden}, 1));
  auto stats_tiles = nc.sbuf.pool<float>({P, 6 * chunks}, 2);  // [P, 6·chunks] bn_stats
  auto mv_tiles = nc.sbuf.pool<float>({P, 2}, 2);              // [P, 2] mean, var (rmsnorm: Σ s²)
  auto rstd_tiles = nc.sbuf.pool<float>({P, 1}, 2);            // [P, 1]

  struct row_tile {
    std::size_t r0 = 0, p = 0;
    region x, r, work, s, out;  // [p, H]: x, residual, fp32 work, the values normalised, y
    region mv, rstd;            // [p, 2], [p, 1]
  };
  std::vector<row_tile> ring(policy.bufs);  // tiles in flight
  const auto load = [&](std::size_t j) {    // DMA: x (and r) of tile j into SBUF
    row_tile& t = ring[j % ring.size()];
    t.r0 = j * P;
    t.p = std::min(P, rows - t.r0);
    t.x = x_tiles.next().sub(0, t.p, 0, hidden);
    dma_copy(nc, t.x, x.tile(t.r0, 0, t.p, hidden));
    if (has_residual) {
      t.r = r_tiles.next().sub(0, t.p, 0, hidden);
      dma_copy(nc, t.r, extra.residual.sub(t.r0, t.p, 0, hidden));
    }
  };
  const auto head = [&](std::size_t j) {  // s = x + r, the statistics and rstd of tile j
    row_tile& t = ring[j % ring.size()];
    t.work = x_is_f32 ? t.x : work_tiles->next().sub(0, t.p, 0, hidden);
    t.s = t.x;
    if (has_residual) {
      tensor_tensor(nc, t.work, t.x, t.r, alu_op::add);  // s = x + r, in fp32
      t.s = t.work;
      if (extra.residual_out.present()) dma_copy(nc, extra.residual_out.sub(t.r0, t.p, 0, hidden), t.work);
    }
    t.out = std::is_same_v<TX, TY> ? t.x : t.work;  // y is written in place
    t.rstd = rstd_tiles.next().sub(0, t.p, 0, 1);
    const region eps_p = eps.sub(0, t.p, 0, 1);
    if (kind == norm_kind::layer) {
      const region stats = stats_tiles.next().sub(0, t.p, 0, 6 * chunks);  // [p, 6·chunks]
      for (std::size_t c = 0; c < chunks; ++c)
        bn_stats(nc, stats.cols_range(6 * c, 6), t.s.cols_range(c * chunk, std::min(chunk, hidden - c * chunk)));
      t.mv = mv_tiles.next().sub(0, t.p, 0, 2);  // mean, var
      bn_aggr(nc, t.mv, stats);
      activation(nc, t.rstd, t.mv.cols_range(1, 1), activation_function::rsqrt, {.bias = eps_p});  // (var + eps)^-½
    } else {
      t.mv = mv_tiles.next().sub(0, t.p, 0, 1);  // Σ s²
      activation(nc, squares->next().sub(0, t.p, 0, hidden), t.s, activation_function::square, {.reduce_out = t.mv});
      activation(nc, t.rstd, t.mv, activation_function::rsqrt,
                 {.scale = 1.0f / float(hidden), .bias = eps_p});  // (Σ s²/H + eps)^-½
    }
  };
  const auto normalize = [&](std::size_t j) {  // (s − mean)·rstd, or s·rstd: one tensor_scalar
    const row_tile& t = ring[j % ring.size()];
    const region dst = has_gamma || has_beta ? t.work : t.out;
    if (kind == norm_kind::layer)
      tensor_scalar(nc, dst, t.s, alu_op::subtract, t.mv.cols_range(0, 1),
                    {.op1 = alu_op::multiply, .operand1 = t.rstd, .unit = policy.normalize_unit});
    else
      tensor_scalar(nc, dst, t.s, alu_op::multiply, t.rstd, {.unit = policy.normalize_unit});
  };
  const auto tail = [&](std::size_t j) {  // ·γ, +β, store
    const row_tile& t = ring[j % ring.size()];
    if (has_gamma)
      tensor_tensor(nc, has_beta ? t.work : t.out, t.work, gamma_b.sub(0, t.p, 0, hidden), alu_op::multiply,
                    {.unit = policy.scale_unit});
    if (has_beta)
      tensor_tensor(nc, t.out, t.work, beta_b.sub(0, t.p, 0, hidden), alu_op::add, {.unit = policy.shift_unit});
    dma_copy(nc, y.tile(t.r0, 0, t.p, hidden), t.out);
  };

  // Software pipeline. Each engine runs its instructions in issue order, so the issue order is the overlap:
  // the loads run bufs − 1 tiles ahead; the Vector Engine computes the statistics of tile i + 1 while the
  // Scalar Engine normalises tile i (issued first, so that tile i + 1's rstd queues behind it), then applies
  // γ and β to tile i.
  for (std::size_t j = 0; j < std::min(ahead, tiles); ++j) load(j);
  head(0);
  for (std::size_t i = 0; i < tiles; ++i) {
    if (i + ahead < tiles) load(i + ahead);
    normalize(i);
    if (i + 1 < tiles) head(i + 1);
    tail(i);
  }
}

}  // namespace detail

/// y = layernorm(x (+ r))·γ + β over the rows of x [rows, H]; fp32 statistics. See the header comment.
template <class Machine, class TX, class TY>
void layernorm_tiled(core<Machine>& nc, hbm<const TX> x, hbm<TY> y, const norm_operands& extra = {},
                     const norm_policy& policy = {}) {
  detail::norm_tiled<TX, TY>(nc, norm_kind::layer, x, y, extra, policy);
}

/// y = rmsnorm(x (+ r))·γ over the rows of x [rows, H]; fp32 statistics. See the header comment.
template <class Machine, class TX, class TY>
void rmsnorm_tiled(core<Machine>& nc, hbm<const TX> x, hbm<TY> y, const norm_operands& extra = {},
                   const norm_policy& policy = {}) {
  detail::norm_tiled<TX, TY>(nc, norm_kind::rms, x, y, extra, policy);
}

}  // namespace trellis::systolic::kernels
