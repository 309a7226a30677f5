#pragma once
// attention on the CPU target: flash-style online softmax over KV blocks, in SIMD over the head dim.
//
// Each task owns QB query rows of one (batch, head) and never materialises more than a QB × KB block
// of scores: per KV block it computes the scores, updates each row's running max m and sum l, rescales
// the running output by e^(m_old − m_new) and adds P·V. Keys are visited in order, so results are
// identical for any thread count. With causal masking the visible keys of a row are a prefix, so blocks
// past the last visible key of the tile are never touched. A row that sees no key is 0.
// (Register-tiled QKᵀ/PV on the GEMM micro-kernels and the split-KV decode path are the attention
// performance work.)

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/cpu/simd_hwy.hpp"
#include "trellis/cpu/simd_xsimd.hpp"
#include "trellis/cpu/target.hpp"
#include "trellis/ops/attention.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

struct attention_blocking {
  static constexpr std::size_t qb = 16;  // query rows per task
  static constexpr std::size_t kb = 64;  // keys per online-softmax step
};

/// Σ_d x[d]·y[d] over n values; x is fp32 and zero-padded to whole vectors, y is T.
template <class S, class T>
float dot(const float* x, const T* y, std::size_t n) {
  using io = simd_io<S>;
  typename S::vec acc = S::zero();
  std::size_t d = 0;
  for (; d + S::lanes <= n; d += S::lanes) acc = S::fma(S::load(x + d), io::load(y + d), acc);
  if (d < n) acc = S::fma(S::load(x + d), io::load_n(y + d, n - d), acc);
  return S::reduce_add(acc);
}

/// acc[0, n) += p·y (acc zero-padded to whole vectors; y is T).
template <class S, class T>
void axpy(float* acc, float p, const T* y, std::size_t n) {
  using io = simd_io<S>;
  const typename S::vec pv = S::set(p);
  std::size_t d = 0;
  for (; d + S::lanes <= n; d += S::lanes) S::store(acc + d, S::fma(pv, io::load(y + d), S::load(acc + d)));
  if (d < n) S::store(acc + d, S::fma(pv, io::load_n(y + d, n - d), S::load(acc + d)));
}

template <class S, class T, class TO>
void flash_attention(int threads, tensor_view<const T, 4> q, tensor_view<const T, 4> k, tensor_view<const T, 4> v,
                     tensor_view<TO, 4> o, float scale, bool causal) {
  using blk = attention_blocking;
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const std::size_t batch = q.extent(0), heads = q.extent(1), seq_q = q.extent(2), dim = q.extent(3);
  const std::size_t kv_heads = k.extent(1), seq_kv = k.extent(2);
  if (batch == 0 || heads == 0 || seq_q == 0 || dim == 0) return;
  const std::size_t dim_pad = (dim + L - 1) / L * L;
  const std::size_t q_tiles = (seq_q + blk::qb - 1) / blk::qb;

  parallel_for(threads, batch * heads * q_tiles, [&](std::size_t task) {
    const std::size_t bi = task / (heads * q_tiles), h = task / q_tiles % heads, q0 = task % q_tiles * blk::qb;
    const std::size_t hk = h / (heads / kv_heads);  // GQA: consecutive query heads share a kv head
    const std::size_t rows = std::min(blk::qb, seq_q - q0);

    float* q_tile = thread_scratch(scratch_slot::attention_q).get(blk::qb * dim_pad);    // [QB, D] fp32
    float* acc = thread_scratch(scratch_slot::attention_acc).get(blk::qb * dim_pad);     // [QB, D] running P·V
    float* p = thread_scratch(scratch_slot::attention_scores).get(blk::qb * blk::kb);  // [QB, KB]
    float m[blk::qb], l[blk::qb];
    std::size_t visible[blk::qb];
    std::size_t kv_end = 0;
    for (std::size_t i = 0; i < rows; ++i) {
      const T* qi = &q(bi, h, q0 + i, 0);
      for (std::size_t d = 0; d < dim_pad; ++d) q_tile[i * dim_pad + d] = d < dim ? float(qi[d]) : 0.0f;
      std::fill(acc + i * dim_pad, acc + (i + 1) * dim_pad, 0.0f);
      m[i] = -std::numeric_limits<float>::infinity();
      l[i] = 0.0f;
      visible[i] = causal ? detail::causal_visible_keys(q0 + i, seq_q, seq_kv) : seq_kv;
      kv_end = std::max(kv_end, visible[i]);
    }

    for (std::size_t j0 = 0; j0 < kv_end; j0 += blk::kb) {
      const std::size_t kb = std::min(blk::kb, kv_end - j0);
      std::size_t count[blk::qb];  // keys of this block row i sees: a prefix of the block
      for (std::size_t i = 0; i < rows; ++i) count[i] = visible[i] > j0 ? std::min(kb, visible[i] - j0) : 0;
      // Scores S = scale · Q·Kᵀ for the visible part of the block.
      for (std::size_t j = 0; j < kb; ++j) {
        const T* kj = &k(bi, hk, j0 + j, 0);
        for (std::size_t i = 0; i < rows; ++i)
          if (j < count[i]) p[i * blk::kb + j] = scale * dot<S>(q_tile + i * dim_pad, kj, dim);
      }
      // Online softmax: new running max, P = e^(S − m), rescale the running sum and output.
      for (std::size_t i = 0; i < rows; ++i) {
        const std::size_t c = count[i];
        if (c == 0) continue;
        float* pi = p + i * blk::kb;
        vec vmax = S::set(-std::numeric_limits<float>::infinity());
        std::size_t j = 0;
        for (; j + L <= c; j += L) vmax = S::max(vmax, S::load(pi + j));
        float block_max = S::reduce_max(vmax);
        for (; j < c; ++j) block_max = std::max(block_max, pi[j]);
        const float m_new = std::max(m[i], block_max);
        const float correction = l[i] == 0.0f ? 0.0f : std::exp(m[i] - m_new);
        const vec shift = S::set(m_new);
        vec vsum = S::zero();
        for (j = 0; j + L <= c; j += L) {
          const vec e = S::exp(S::sub(S::load(pi + j), shift));
          S::store(pi + j, e);
          vsum = S::add(vsum, e);
        }
        if (j < c) {
          const vec e = S::exp(S::sub(S::load_n(pi + j, c - j), shift));
          S::store_n(pi + j, e, c - j);
          vsum = S::add(vsum, S::load_n(pi + j, c - j));
        }
        l[i] = l[i] * correction + S::reduce_add(vsum);
        m[i] = m_new;
        if (correction != 1.0f) {
          for (std::size_t d = 0; d < dim_pad; d += L)
            S::store(acc + i * dim_pad + d, S::mul(S::set(correction), S::load(acc + i * dim_pad + d)));
        }
      }
      // Running output += P·V.
      for (std::size_t j = 0; j < kb; ++j) {
        const T* vj = &v(bi, hk, j0 + j, 0);
        for (std::size_t i = 0; i < rows; ++i)
          if (j < count[i]) axpy<S>(acc + i * dim_pad, p[i * blk::kb + j], vj, dim);
      }
    }

    for (std::size_t i = 0; i < rows; ++i) {
      TO* oi = &o(bi, h, q0 + i, 0);
      const vec inv = S::set(l[i] > 0.0f ? 1.0f / l[i] : 0.0f);  // no visible key: 0, not NaN
      std::size_t d = 0;
      for (; d + L <= dim; d += L) simd_io<S>::store(oi + d, S::mul(inv, S::load(acc + i * dim_pad + d)));
      if (d < dim) simd_io<S>::store_n(oi + d, S::mul(inv, S::load(acc + i * dim_pad + d)), dim - d);
    }
  });
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE

template <class Provider>
struct op_impl<attention_fn, basic_cpu<Provider>> {
  template <class T, class TO>
  static void run(const basic_cpu<Provider>& target, tensor_view<const T, 4> q, tensor_view<const T, 4> k,
                  tensor_view<const T, 4> v, tensor_view<TO, 4> o, float scale, const attention_options& opts) {
    cpu_detail::flash_attention<cpu_detail::simd<Provider>>(target.threads, q, k, v, o, scale, opts.causal);
  }
};

}  // namespace trellis
