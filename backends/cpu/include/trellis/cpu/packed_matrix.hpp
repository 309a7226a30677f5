#pragma once
// packed_matrix: a B operand (weights) packed once into the GEMM's micro-panel layout and reused by
// every matmul that multiplies with it, as inference engines do with weights.
//
//   trellis::packed_matrix<float> w(host, w_nk, {.transpose_b = true});  // w_nk is [N, K]
//   matmul(host, x, w, y, {.epilogue = epilogue::bias_gelu(bias)});      // y = gelu(x·w_nkᵀ +
//   bias)
//
// The layout belongs to the provider and ISA it was packed for (the type says which). bytes() is
// the whole cost in memory: ⌈N/NR⌉·NR · K fp32 values (bf16 on AVX-512 BF16: ⌈K/2⌉ pairs of 4
// bytes).

#include <cstddef>
#include <cstdlib>
#include <memory>
#include <type_traits>

#include "trellis/core/validate.hpp"
#include "trellis/cpu/gemm/gemm.hpp"
#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/simd_hwy.hpp"
#include "trellis/cpu/simd_xsimd.hpp"
#include "trellis/cpu/target.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE

struct pack_options {
  bool transpose_b = false;  ///< b is given as [N, K]
};

template <class Provider, class T>
class basic_packed_matrix {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, bf16>,
                "packed_matrix: T must be float or bf16");
  using simd = cpu_detail::simd<Provider>;
  static constexpr bool pairs = cpu_detail::uses_pairs_v<simd, T>;
  using element = cpu_detail::gemm_element<pairs>;
  static constexpr std::size_t nr = cpu_detail::gemm_tile<simd>::nr;

 public:
  using value_type = T;
  using provider = Provider;

  basic_packed_matrix() = default;

  /// Packs b ([K, N], or [N, K] with transpose_b) using the target's threads.
  template <tensor_view_of_rank<2> B>
  basic_packed_matrix(const basic_cpu<Provider>& target, const B& b,
                      const pack_options& opts = {}) {
    static_assert(std::is_same_v<typename B::value_type, T>,
                  "packed_matrix: b's element type must be T");
    const tensor_view<const T, 2> bv = b;
    detail::check_not_null("packed_matrix", detail::describe("b", bv));
    const tensor_view<const T, 2> logical = opts.transpose_b ? bv.transposed() : bv;
    k_ = logical.extent(0);
    n_ = logical.extent(1);
    steps_ = cpu_detail::gemm_steps<pairs>(k_);
    const std::size_t micro_panels = (n_ + nr - 1) / nr;
    const std::size_t count = micro_panels * nr * steps_;
    if (count != 0) {
      data_.reset(
          static_cast<element*>(std::aligned_alloc(64, (count * sizeof(element) + 63) / 64 * 64)));
      if (!data_)
        raise_error("packed_matrix: b: expected memory for " +
                    std::to_string(count * sizeof(element)) +
                    " packed bytes, got an allocation failure");
    }
    bytes_ = count * sizeof(element);
    element* dst = data_.get();
    cpu_detail::parallel_for(target.threads, micro_panels, [&](std::size_t jr) {
      cpu_detail::pack_b_micro_panel<simd, pairs>(logical, jr * nr, std::min(nr, n_ - jr * nr),
                                                  dst + jr * nr * steps_);
    });
  }

  /// Rows (K) and columns (N) of the logical [K, N] matrix.
  std::size_t k() const noexcept { return k_; }
  std::size_t n() const noexcept { return n_; }
  /// Memory held by the packed copy.
  std::size_t bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return k_ == 0 || n_ == 0; }

  /// Start of the packed storage (for validation messages and overlap checks).
  const void* data() const noexcept { return data_.get(); }
  /// The packed micro-panels (internal: the GEMM reads them directly).
  cpu_detail::prepacked_b<pairs> panels() const noexcept { return {data_.get()}; }

 private:
  struct free_deleter {
    void operator()(element* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<element, free_deleter> data_;
  std::size_t k_ = 0, n_ = 0, steps_ = 0, bytes_ = 0;
};

template <class T>
using packed_matrix = basic_packed_matrix<default_simd_provider, T>;

TRELLIS_END_ISA_NAMESPACE

template <class Provider, class T>
inline constexpr bool is_packed_matrix_v<basic_packed_matrix<Provider, T>> = true;

}  // namespace trellis
