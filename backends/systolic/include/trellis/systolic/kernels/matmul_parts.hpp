#pragma once
// The parts every matmul kernel variant shares (kernels/matmul.hpp): bringing an operand on chip with
// its contraction axis K on partitions, and evicting a result with the fused epilogue.
//
// Operands. The Tensor Engine contracts over partitions: both nc_matmul inputs must be [K, F] in SBUF.
// An operand stored K-major in HBM (the tutorial's lhsT [K, M] and rhs [K, N]) is one DMA per tile. One
// stored K-minor (a row-major A [M, K], or inference weights B [N, K]) is transposed the way the hardware
// would, and paid for in time: during the DMA where the machine can (v3+: 2-byte data, HBM → SBUF), else
// on the Tensor Engine — load [F, K] rows, nc_transpose each ≤ 128 × 128 piece into PSUM, copy it back
// to SBUF on the Vector Engine.
//
// Epilogue, in the library's order (ops/matmul.hpp): C ← act(α·A·B + bias) + residual + β·C₀, applied
// while the fp32 accumulator (PSUM, or SBUF partial sums) is evicted to the output tile:
//   α (and the activation when there is no bias)  one Scalar activation (func(x·α))
//   bias                                          one Vector tensor_tensor add with the bias broadcast
//                                                 across partitions (below)
//   activation after a bias                       one Scalar activation
//   residual                                      DMA of the [M, N] tile (cast to fp32), one add
//   β·C₀                                          DMA of C's tile, one tensor_scalar (·β), one add
// Intermediate steps write an fp32 work tile; the last writes the output tile in C's dtype (a bf16 C is
// rounded once). With no epilogue the eviction is one tensor_copy, as in the tutorial.
//
// Bias broadcast: M lies on partitions, so a bias over N varies along the free axis and each partition
// needs the whole row. It is broadcast on the Tensor Engine with a ones-vector matmul (trainium.md:
// "partition broadcasts … (ones-vector matmuls)"): ones[1, M]ᵀ · bias[1, n] = [M, n] in PSUM, then copied
// to SBUF once per column range (fp32 operands: exact).

#include <algorithm>
#include <cstddef>
#include <optional>

#include "trellis/core/activation.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/isa.hpp"

namespace trellis::systolic::kernels {

/// How an operand lies in HBM relative to the contraction axis K.
enum class operand_layout {
  k_major,  ///< [K, F]: the tutorial's lhsT [K, M] and rhs [K, N], loaded as they are
  k_minor,  ///< [F, K]: a row-major A [M, K] or weights [N, K], transposed on the way in
};

/// The epilogue of a matmul kernel: C ← act(α·A·B + bias) + residual + β·C₀ (ops/matmul.hpp's order).
struct matmul_epilogue {
  float alpha = 1.0f;
  float beta = 0.0f;                     ///< 0 never reads C
  activation act = activation::none;
  region bias{};                         ///< HBM, one row of N values ([1, N]); absent: none
  region residual{};                     ///< HBM [M, N]; absent: none
};

/// The model's activation function for the library's epilogue activation.
constexpr activation_function to_activation_function(activation a) noexcept {
  switch (a) {
    case activation::none: return activation_function::identity;
    case activation::gelu_tanh: return activation_function::gelu_tanh;
    case activation::gelu_erf: return activation_function::gelu;
    case activation::silu: return activation_function::silu;
  }
  return activation_function::identity;
}

namespace detail {

/// Brings [K, F] operand tiles on chip from a K-major or K-minor HBM tensor (see the header comment).
/// Buffers for the Tensor Engine transpose (only when it is needed): 2 SBUF staging tiles [128, 128] and
/// 2 PSUM tiles [128, 128] fp32, so the next piece loads while the previous one is transposed.
template <class T>
class operand_loader {
 public:
  operand_loader(core_state& nc, const region& source, operand_layout layout) : nc_(&nc), source_(source), layout_(layout) {
    const machine_spec& spec = nc.spec();
    dma_transpose_ = layout == operand_layout::k_minor && spec.dma.transpose_2byte && sizeof(T) == 2;
    if (layout == operand_layout::k_minor && !dma_transpose_) {
      const std::size_t piece = spec.matmul.pe_columns;
      stage_.emplace(nc.sbuf.template pool<T>({piece, spec.matmul.pe_rows}, 2));       // [F piece, K]
      transposed_.emplace(nc.psum.template pool<float>({spec.matmul.pe_rows, piece}, 2));  // [K, F piece]
    }
  }

  /// dst [kt, ft] (SBUF) ← the operand's K rows [k0, k0 + kt) and F columns [f0, f0 + ft).
  void load(const region& dst, std::size_t k0, std::size_t f0, std::size_t kt, std::size_t ft) {
    using namespace isa;
    if (layout_ == operand_layout::k_major) return dma_copy(*nc_, dst, source_.sub(k0, kt, f0, ft));
    if (dma_transpose_) return dma_copy(*nc_, dst, source_.sub(f0, ft, k0, kt), {.transpose = true});
    const std::size_t piece = nc_->spec().matmul.pe_columns;
    for (std::size_t f = 0; f < ft; f += piece) {
      const std::size_t fc = std::min(piece, ft - f);
      const region rows = stage_->next().sub(0, fc, 0, kt);        // [fc, kt]
      dma_copy(*nc_, rows, source_.sub(f0 + f, fc, k0, kt));
      const region columns = transposed_->next().sub(0, kt, 0, fc);  // [kt, fc] PSUM
      nc_transpose(*nc_, columns, rows);
      tensor_copy(*nc_, dst.sub(0, kt, f, fc), columns);
    }
  }

 private:
  core_state* nc_;
  region source_;
  operand_layout layout_;
  bool dma_transpose_ = false;
  std::optional<pool<T>> stage_;
  std::optional<pool<float>> transposed_;
};

/// The bias row broadcast across partitions, for one column range at a time (see the header comment).
/// Buffers, held for the whole kernel: the broadcast [rows, capacity] fp32, a bias row [1, capacity] fp32
/// and ones [1, rows] fp32 in SBUF; each recomputation borrows one PSUM bank while it runs.
class bias_broadcast {
 public:
  bias_broadcast(core_state& nc, const region& bias, std::size_t rows, std::size_t capacity)
      : nc_(&nc), bias_(bias), rows_(rows) {
    const std::size_t bank = nc.spec().memory.psum_bank_bytes / sizeof(float);
    chunk_ = std::min(bank, nc.spec().matmul.moving_free_max_fp32_out);
    broadcast_ = nc.sbuf.tile<float>(rows, capacity);
    row_ = nc.sbuf.tile<float>(1, capacity);
    ones_ = nc.sbuf.tile<float>(1, rows);
    isa::memset(nc, ones_, 1.0f);
  }

  /// [mt, width] of the bias for columns [n0, n0 + width) (width ≤ capacity); computed when the range is
  /// not inside the one computed last.
  region columns(std::size_t n0, std::size_t width, std::size_t mt) {
    using namespace isa;
    if (n0 < n0_ || n0 + width > n0_ + width_) {
      n0_ = n0;
      width_ = width;
      dma_copy(*nc_, row_.sub(0, 1, 0, width), bias_.sub(0, 1, n0, width));
      const tile<float> product = nc_->psum.tile<float>(rows_, std::min(chunk_, width));
      for (std::size_t c = 0; c < width; c += chunk_) {
        const std::size_t cw = std::min(chunk_, width - c);
        const region p = product.sub(0, rows_, 0, cw);  // [rows, cw] = ones[1, rows]ᵀ · row[1, cw]
        nc_matmul(*nc_, p, ones_, row_.sub(0, 1, c, cw));
        tensor_copy(*nc_, broadcast_.sub(0, rows_, c, cw), p);
      }
    }
    return broadcast_.sub(0, mt, n0 - n0_, width);
  }

 private:
  core_state* nc_;
  region bias_;
  std::size_t rows_, chunk_ = 0;
  std::size_t n0_ = 0, width_ = 0;
  tile<float> broadcast_, row_, ones_;
};

/// Evicts fp32 accumulators through the epilogue into C's dtype and stores them (see the header comment).
template <class TC>
class result_writer {
 public:
  /// out_bufs = 0: each eviction takes a fresh tile that is freed after its store (one buffer, reused);
  /// otherwise a pool of out_bufs [rows, width] tiles so stores overlap the next evictions.
  result_writer(core_state& nc, const region& c, const matmul_epilogue& epilogue, std::size_t rows, std::size_t width,
                std::size_t out_bufs)
      : nc_(&nc), c_(c), epilogue_(epilogue) {
    if (epilogue.bias.present()) bias_.emplace(nc, epilogue.bias, rows, width);
    if (out_bufs > 0) out_.emplace(nc.sbuf.template pool<TC>({rows, width}, out_bufs));
  }

  bool has_bias() const noexcept { return bias_.has_value(); }
  /// Computes the bias broadcast for columns [n0, n0 + width) ahead of the evictions that use it.
  void prepare_bias(std::size_t n0, std::size_t width, std::size_t rows) {
    if (bias_) bias_->columns(n0, width, rows);
  }

  /// C[m0 : m0 + mt, n0 : n0 + nt] ← epilogue(acc), acc [mt, nt] fp32 in PSUM or SBUF.
  void write(const region& acc, std::size_t m0, std::size_t n0) {
    using namespace isa;
    const std::size_t mt = acc.rows, nt = acc.cols;
    const region c_tile = c_.sub(m0, mt, n0, nt);
    const matmul_epilogue& e = epilogue_;
    const bool act = e.act != activation::none, bias = e.bias.present(), residual = e.residual.present();
    const bool beta = e.beta != 0.0f;
    const int steps = int(e.alpha != 1.0f || (act && !bias)) + int(bias) + int(act && bias) + int(residual) + int(beta);
    if (steps == 0 && std::is_same_v<TC, float> && acc.space == memory_space::sbuf)
      return dma_copy(*nc_, c_tile, acc);  // already fp32 in SBUF: store it as it is
    tile<TC> fresh;
    region out;
    if (out_) {
      out = out_->next().sub(0, mt, 0, nt);
    } else {
      fresh = nc_->sbuf.template tile<TC>(mt, nt);
      out = fresh.view();
    }
    tile<float> work_tile;
    region work = out;  // where intermediate steps write: the output itself when it is fp32
    if (!std::is_same_v<TC, float> && steps > 1) {
      work_tile = nc_->sbuf.template tile<float>(mt, nt);
      work = work_tile.view();
    }
    int done = 0;
    region x = acc;
    const auto next_dst = [&] { return ++done == steps ? out : work; };
    if (steps == 0) tensor_copy(*nc_, out, acc);
    if (e.alpha != 1.0f || (act && !bias)) {
      const region dst = next_dst();
      activation(*nc_, dst, x, bias ? activation_function::identity : to_activation_function(e.act), {.scale = e.alpha});
      x = dst;
    }
    if (bias) {
      const region dst = next_dst();
      tensor_tensor(*nc_, dst, x, bias_->columns(n0, nt, mt), alu_op::add);
      x = dst;
      if (act) {
        const region dst2 = next_dst();
        activation(*nc_, dst2, x, to_activation_function(e.act));
        x = dst2;
      }
    }
    if (residual) {
      tile<float> r = nc_->sbuf.template tile<float>(mt, nt);
      dma_copy(*nc_, r, e.residual.sub(m0, mt, n0, nt));
      const region dst = next_dst();
      tensor_tensor(*nc_, dst, x, r, alu_op::add);
      x = dst;
    }
    if (beta) {
      tile<float> c0 = nc_->sbuf.template tile<float>(mt, nt);
      dma_copy(*nc_, c0, c_tile);
      tensor_scalar(*nc_, c0, c0, alu_op::multiply, e.beta);
      const region dst = next_dst();
      tensor_tensor(*nc_, dst, x, c0, alu_op::add);
    }
    dma_copy(*nc_, c_tile, out);
  }

 private:
  core_state* nc_;
  region c_;
  matmul_epilogue epilogue_;
  std::optional<bias_broadcast> bias_;
  std::optional<pool<TC>> out_;
};

}  // namespace detail
}  // namespace trellis::systolic::kernels
