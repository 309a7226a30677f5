#pragma once
// layernorm and rmsnorm on the CPU target: one row at a time (cache-resident long rows in groups, see
// norm_blocking::group_rows), in SIMD, rows split statically over threads.
//
// Each row is read from DRAM once: s = x (+ r) is formed in a per-thread fp32 row buffer (or read in
// place when x already is contiguous fp32, or built in residual_out's row when that is cached fp32).
// Statistics take one pass over that L1/L2-hot row (norm/statistics.hpp). The fused residual normalises the
// fp32 sum x + r (the value written to residual_out is that sum rounded to its type). The write pass then
// reads s, γ and β and writes y (norm/write_row.hpp) in an order, and with γ and β at addresses, chosen
// against 4K aliasing (norm_blocking::alias_ring, norm/blocking.hpp).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "trellis/core/rows.hpp"
#include "trellis/cpu/norm/blocking.hpp"
#include "trellis/cpu/norm/statistics.hpp"
#include "trellis/cpu/norm/write_row.hpp"
#include "trellis/cpu/parallel.hpp"
#include "trellis/cpu/row_io.hpp"
#include "trellis/cpu/scratch.hpp"
#include "trellis/cpu/simd_hwy.hpp"
#include "trellis/cpu/simd_xsimd.hpp"
#include "trellis/cpu/target.hpp"
#include "trellis/ops/norm.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// γ and β (absent: null) as contiguous fp32 for the write pass, which loads them beside s and stores the
/// outputs (y_address: the first output row). Widened from bf16, or an fp32 γ or β read in place, or copied
/// when there are enough rows to repay the copy (norm_blocking::param_copy_min_rows) and it lies where its
/// loads are slow:
/// - at another offset within a vector than the vectors write_row's body aligns (body_address: y's first row
///   when the outputs are streamed, else s's: x's first row when s is x itself, residual_out's first row
///   when s is built there, 0 for the aligned row buffer), so that γ and β are loaded aligned too;
/// - near y in the 4 KiB address ring (norm_blocking::alias_bytes): each load may then share its low 12
///   address bits with a store a few vectors older, still in the store queue, and wait for it.
/// The copies go half the ring away from y, at body_address's offset within a vector.
template <class S>
std::pair<const float*, const float*> params_as_f32(const any_view& gamma, const any_view& beta,
                                                    std::uintptr_t body_address, std::uintptr_t y_address,
                                                    std::size_t rows, std::size_t hidden) {
  constexpr std::size_t V = S::lanes * sizeof(float), ring = norm_blocking::alias_ring;
  // Bytes from γ's slot to β's: whole rings, so β lies where γ does in the ring.
  const std::size_t pitch = (hidden * sizeof(float) + ring - 1) / ring * ring;
  float* scratch = thread_scratch(scratch_slot::row_params).get((2 * pitch + ring) / sizeof(float));
  const std::uintptr_t base = reinterpret_cast<std::uintptr_t>(scratch);
  const std::uintptr_t target = ((y_address + ring / 2) / V * V + body_address % V) % ring;  // γ's place in the ring
  float* slots = reinterpret_cast<float*>(base + (target + ring - base % ring) % ring);
  const auto slow = [&](const float* f) {
    const std::uintptr_t a = reinterpret_cast<std::uintptr_t>(f);
    const std::uintptr_t ahead = (a - y_address) % ring, behind = (y_address - a) % ring;
    return a % V != body_address % V || (ahead > 0 && std::min(ahead, behind) < norm_blocking::alias_bytes);
  };
  const auto as_f32 = [&](const any_view& p, float* slot) -> const float* {
    if (!p) return nullptr;
    const float* f = row_as_f32<S>(p, 0, p.stride(0), hidden, slot);  // in place when contiguous fp32
    if (f == slot || rows < norm_blocking::param_copy_min_rows || !slow(f)) return f;
    std::copy(f, f + hidden, slot);
    return slot;
  };
  return {as_f32(gamma, slots), as_f32(beta, slots + pitch / sizeof(float))};
}

/// Whether s = x + r is built in place in residual_out's row: a cached fp32 residual_out. The statistics and
/// the write pass then read s from there (L1-hot), and no copy to residual_out follows (64 × 4096 residual
/// layernorm, one thread: a quarter of the time went to that copy).
template <bool Stream, class Options>
bool sum_in_residual_out(const Options& opts) noexcept {
  return !Stream && opts.residual_out && opts.residual_out.type() == dtype::f32;
}

/// The row s = x (+ r) that the statistics and the write pass read, as contiguous fp32: x itself, or built
/// in residual_out's row (sum_in_residual_out) or in row_buffer (hidden floats). With a residual, x + r is
/// also written to residual_out (streamed with Stream when fp32).
template <class S, bool Stream, class TX, std::size_t Rank, class Options>
const float* row_input(tensor_view<const TX, Rank> x, std::size_t row, std::size_t hidden, const Options& opts,
                       float* row_buffer) {
  using io = simd_io<S>;
  constexpr std::size_t L = S::lanes;
  const TX* xr = detail::row_pointer(x, row);
  if (!opts.residual) return row_as_f32<S>(xr, 1, hidden, row_buffer);
  const float* rr = row_as_f32<S>(opts.residual, detail::row_offset(opts.residual, row), 1, hidden, row_buffer);
  const bool in_out = sum_in_residual_out<Stream>(opts);
  float* sum = in_out ? static_cast<float*>(opts.residual_out.data()) + detail::row_offset(opts.residual_out, row)
                      : row_buffer;
  std::size_t j = 0;  // rr may be row_buffer, and sum x or r (the documented aliases): each vector is read
                      // before it is overwritten
  for (; j + L <= hidden; j += L) S::store(sum + j, S::add(io::load(xr + j), S::load(rr + j)));
  if (const std::size_t n = hidden - j)
    S::store_n(sum + j, S::add(io::load_n(xr + j, n), S::load_n(rr + j, n)), n);
  if (opts.residual_out && !in_out) {
    const std::size_t o = detail::row_offset(opts.residual_out, row);
    if (Stream && opts.residual_out.type() == dtype::f32)
      write_row<S, Stream>(static_cast<float*>(opts.residual_out.data()) + o, row_buffer, hidden,
                           [](std::size_t, typename S::vec v, std::size_t) { return v; }, [](std::size_t) {});
    else
      store_row<S>(opts.residual_out, o, row_buffer, hidden);
  }
  return sum;
}

template <class S, bool Stream, class TX, class TY, std::size_t Rank, class Options>
void normalize_rows_as(norm_kind kind, int threads, tensor_view<const TX, Rank> x, const any_view& gamma,
                    const any_view& beta, tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden,
                    const Options& opts) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  if (rows == 0 || hidden == 0) return;
  // γ and β, prepared once by the calling thread and shared read-only by the workers, aligned like the
  // vectors of write_row's body: y's when streamed, else s's (x itself for fp32 rows without a residual,
  // residual_out's rows when s is built there, else the aligned row buffer).
  const bool s_is_x = std::is_same_v<TX, float> && !opts.residual;
  const auto y_address = reinterpret_cast<std::uintptr_t>(detail::row_pointer(y, 0));
  const std::uintptr_t body_address =
      Stream                                ? y_address
      : s_is_x                              ? reinterpret_cast<std::uintptr_t>(detail::row_pointer(x, 0))
      : sum_in_residual_out<Stream>(opts) ? reinterpret_cast<std::uintptr_t>(opts.residual_out.data()) +
                                                detail::row_offset(opts.residual_out, 0) * sizeof(float)
                                          : 0;
  const auto params = params_as_f32<S>(gamma, beta, body_address, y_address, rows, hidden);
  const float* g = params.first;
  const float* b = params.second;
  const std::size_t ahead =
      std::max<std::size_t>(1, norm_blocking::prefetch_bytes / (hidden * sizeof(TX)));  // rows of prefetch

  // One contiguous share of the rows per thread (any split gives the same rows), so that each thread
  // fences its own streamed stores once at the end.
  const std::size_t useful = std::max<std::size_t>(1, rows * hidden * sizeof(TX) / norm_blocking::min_bytes_per_thread);
  run_team(threads, std::min(rows, useful), [&](team tm) {
    const auto [first, last] = tm.static_range(rows);
    const std::size_t group = norm_blocking::group_rows(hidden, bool(opts.residual), Stream);
    const std::size_t chunk = group > 1 ? norm_blocking::column_chunk : hidden;
    float* buffer = thread_scratch(scratch_slot::row).get(group * hidden);
    const std::size_t r_size = opts.residual ? size_of(opts.residual.type()) : 0;
    struct row_lines {  // the bytes of x and r of one row, for prefetching
      const char* x = nullptr;
      const char* r = nullptr;
    };
    const auto lines_of = [&](std::size_t row) {
      return row_lines{reinterpret_cast<const char*>(detail::row_pointer(x, row)),
                       opts.residual ? static_cast<const char*>(opts.residual.data()) +
                                           detail::row_offset(opts.residual, row) * r_size
                                     : nullptr};
    };
    const auto prefetch = [=](const row_lines& p, std::size_t j) {  // the line(s) of element j, into L2
      __builtin_prefetch(p.x + j * sizeof(TX), 0, 2);
      if (p.r) __builtin_prefetch(p.r + j * r_size, 0, 2);
    };
    constexpr std::size_t line = 64 / sizeof(TX);
    const bool prefetching = bool(opts.residual);  // see norm_blocking::prefetch_bytes
    for (std::size_t row = first + 1; prefetching && row < std::min(last, first + ahead); ++row) {  // fill the pipeline
      const row_lines p = lines_of(row);
      for (std::size_t j = 0; j < hidden; j += line) prefetch(p, j);
    }

    // A group of rows (norm_blocking::group_rows): each row's s = x (+ r) and statistics, then the outputs
    // column chunk by column chunk across the group.
    struct row_plan {
      const float* s;
      float shift, centre, rstd;
    };
    std::array<row_plan, norm_blocking::max_group_rows> plan;
    // Streamed y only (Stream rows are not grouped, so they come one after another).
    stream_carry carry;
    stream_carry* const y_carry = Stream ? &carry : nullptr;
    for (std::size_t g0 = first; g0 < last; g0 += group) {
      const std::size_t group_end = std::min(last, g0 + group);
      for (std::size_t row = g0; row < group_end; ++row) {
        const float* s = row_input<S, Stream>(x, row, hidden, opts, buffer + (row - g0) * hidden);
        const auto [shift, centre, var] = statistics_of<S>(kind, s, hidden);
        plan[row - g0] = {s, shift, centre, 1.0f / std::sqrt(var + opts.eps)};
      }

      for (std::size_t c0 = 0; c0 < hidden; c0 += chunk) {
        const std::size_t width = std::min(chunk, hidden - c0);
        for (std::size_t row = g0; row < group_end; ++row) {
          const row_plan& rp = plan[row - g0];
          TY* yr = detail::row_pointer(y, row) + c0;
          const vec vshift = S::set(rp.shift), vcentre = S::set(rp.centre), vrstd = S::set(rp.rstd);
          const float* gc = g ? g + c0 : nullptr;
          const float* bc = b ? b + c0 : nullptr;
          // Every product that meets a sum is one explicit fma (x̂·γ + β, or d·rstd + β without γ): left to
          // the compiler, the contraction could differ between the vector body and the masked head and tail,
          // and an output's last bit with y's alignment.
          const auto normalized = [=](std::size_t j, vec sj, std::size_t n) {
            const auto param = [&](const float* p) { return n == L ? S::load(p + j) : S::load_n(p + j, n); };
            const vec d = S::sub(S::sub(sj, vshift), vcentre);
            if (!gc) return bc ? S::fma(d, vrstd, param(bc)) : S::mul(d, vrstd);
            const vec xhat = S::mul(d, vrstd);
            return bc ? S::fma(xhat, param(gc), param(bc)) : S::mul(xhat, param(gc));
          };
          // While this row is written from cache, pull row + ahead of x and r towards L2: the statistics
          // passes leave DRAM idle otherwise, and with two streams the hardware prefetcher falls behind.
          // (Prefetching rows are not grouped: chunk = hidden, c0 = 0.)
          if (prefetching && row + ahead < last) {
            const row_lines p = lines_of(row + ahead);
            write_row<S, Stream>(
                yr, rp.s + c0, width, normalized, [=](std::size_t j) { if (j % line < L) prefetch(p, j); }, y_carry);
          } else {
            write_row<S, Stream>(yr, rp.s + c0, width, normalized, [](std::size_t) {}, y_carry);
          }
        }
      }
    }
    if constexpr (Stream) {
      carry.release<S>();
      S::stream_fence();
    }
  });
}

template <class S, class TX, class TY, std::size_t Rank, class Options>
void normalize_rows(norm_kind kind, int threads, tensor_view<const TX, Rank> x, const any_view& gamma,
                    const any_view& beta, tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden,
                    const Options& opts) {
  if constexpr (has_stream<S> && std::is_same_v<TY, float>) {
    std::size_t out_bytes = rows * hidden * sizeof(float);
    if (opts.residual_out) out_bytes += rows * hidden * size_of(opts.residual_out.type());
    if (out_bytes >= norm_blocking::stream_min_bytes)
      return normalize_rows_as<S, true>(kind, threads, x, gamma, beta, y, rows, hidden, opts);
  }
  normalize_rows_as<S, false>(kind, threads, x, gamma, beta, y, rows, hidden, opts);
}

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE

template <class Provider>
struct op_impl<layernorm_fn, basic_cpu<Provider>> {
  template <class TX, class TY, std::size_t Rank>
  static void run(const basic_cpu<Provider>& target, tensor_view<const TX, Rank> x, const any_view& gamma,
                  const any_view& beta, tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden,
                  const layernorm_options& opts) {
    cpu_detail::normalize_rows<cpu_detail::simd<Provider>>(cpu_detail::norm_kind::layer, target.threads, x, gamma,
                                                           beta, y, rows, hidden, opts);
  }
};

template <class Provider>
struct op_impl<rmsnorm_fn, basic_cpu<Provider>> {
  template <class TX, class TY, std::size_t Rank>
  static void run(const basic_cpu<Provider>& target, tensor_view<const TX, Rank> x, const any_view& gamma,
                  tensor_view<TY, Rank> y, std::size_t rows, std::size_t hidden, const rmsnorm_options& opts) {
    cpu_detail::normalize_rows<cpu_detail::simd<Provider>>(cpu_detail::norm_kind::rms, target.threads, x, gamma,
                                                           any_view{}, y, rows, hidden, opts);
  }
};

}  // namespace trellis
