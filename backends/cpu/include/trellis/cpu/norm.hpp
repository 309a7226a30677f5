#pragma once
// layernorm and rmsnorm on the CPU target: one row at a time (cache-resident long rows in groups, see
// norm_blocking::group_rows), in SIMD, rows split statically over threads.
//
// Each row is read from DRAM once: s = x (+ r) is formed in a per-thread fp32 row buffer (or read in
// place when x already is contiguous fp32, or built in residual_out's row when that is cached fp32).
// Statistics take one pass over that L1/L2-hot row: Σd and Σd²
// of d = s − shift, with the shift the mean of the row's first vector, so the mean of a row like 1e4 +
// noise keeps the noise's precision. When the row's mean lies more than one standard deviation from the
// shift (var_d < mean_d², where E[d²] − E[d]² would lose more than one bit to cancellation) the row takes
// two passes instead: the mean, then Σ(d − mean_d)². The fused residual normalises the fp32 sum x + r (the
// value written to residual_out is that sum rounded to its type). The write pass then reads s, γ and β and
// writes y in an order, and with γ and β at addresses, chosen against 4K aliasing (norm_blocking::alias_ring).

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "trellis/core/rows.hpp"
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

enum class norm_kind { layer, rms };

/// How many of n floats starting at p come before a vector boundary: the head that aligns write_row's
/// vectors. (The statistics passes do not align: their order of summation, and so a row's last bits,
/// would then depend on the row's address, and copies of the same input could normalise differently.)
template <class S>
std::size_t head_to_alignment(const void* p, std::size_t n) noexcept {
  constexpr std::size_t L = S::lanes;
  const std::size_t misaligned = reinterpret_cast<std::uintptr_t>(p) % (L * sizeof(float)) / sizeof(float);
  return misaligned ? std::min(n, L - misaligned) : 0;
}

/// Σ ((s_j − shift) − centre)^Power over a row (Power 1 or 2), four vector chains to hide the add latency.
template <class S, int Power>
float centred_sum(const float* s, std::size_t n, float shift, float centre) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const vec vshift = S::set(shift), vcentre = S::set(centre);
  const auto term = [&](vec x) {
    const vec d = S::sub(S::sub(x, vshift), vcentre);
    return Power == 2 ? S::mul(d, d) : d;
  };
  vec acc0 = S::zero(), acc1 = S::zero(), acc2 = S::zero(), acc3 = S::zero();
  std::size_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L) {
    acc0 = S::add(acc0, term(S::load(s + j)));
    acc1 = S::add(acc1, term(S::load(s + j + L)));
    acc2 = S::add(acc2, term(S::load(s + j + 2 * L)));
    acc3 = S::add(acc3, term(S::load(s + j + 3 * L)));
  }
  for (; j + L <= n; j += L) acc0 = S::add(acc0, term(S::load(s + j)));
  float total = S::reduce_add(S::add(S::add(acc0, acc1), S::add(acc2, acc3)));
  for (; j < n; ++j) {
    const float d = (s[j] - shift) - centre;
    total += Power == 2 ? d * d : d;
  }
  return total;
}

/// Σd and Σd² of d = s_j − shift in one pass (four chains each).
template <class S>
std::pair<float, float> shifted_moments(const float* s, std::size_t n, float shift) {
  using vec = typename S::vec;
  constexpr std::size_t L = S::lanes;
  const vec vshift = S::set(shift);
  vec sum[4] = {S::zero(), S::zero(), S::zero(), S::zero()}, sq[4] = {S::zero(), S::zero(), S::zero(), S::zero()};
  std::size_t j = 0;
  for (; j + 4 * L <= n; j += 4 * L)
    for (std::size_t c = 0; c < 4; ++c) {
      const vec d = S::sub(S::load(s + j + c * L), vshift);
      sum[c] = S::add(sum[c], d);
      sq[c] = S::fma(d, d, sq[c]);
    }
  for (; j + L <= n; j += L) {
    const vec d = S::sub(S::load(s + j), vshift);
    sum[0] = S::add(sum[0], d);
    sq[0] = S::fma(d, d, sq[0]);
  }
  float total = S::reduce_add(S::add(S::add(sum[0], sum[1]), S::add(sum[2], sum[3])));
  float total_sq = S::reduce_add(S::add(S::add(sq[0], sq[1]), S::add(sq[2], sq[3])));
  for (; j < n; ++j) {
    const float d = s[j] - shift;
    total += d;
    total_sq += d * d;
  }
  return {total, total_sq};
}

/// A row's mean = shift + centre and its variance (layernorm), or its mean square (rmsnorm: shift =
/// centre = 0). See the header comment for the one-pass statistics and when a row takes two passes.
struct row_statistics {
  float shift = 0, centre = 0, var = 0;
};

template <class S>
row_statistics statistics_of(norm_kind kind, const float* s, std::size_t n) {
  row_statistics st;
  if (kind == norm_kind::rms) {
    st.var = centred_sum<S, 2>(s, n, 0.0f, 0.0f) / float(n);
    return st;
  }
  const std::size_t head = std::min(n, S::lanes);
  st.shift = S::reduce_add(head == S::lanes ? S::load(s) : S::load_n(s, head)) / float(head);
  const auto [sum, sum_sq] = shifted_moments<S>(s, n, st.shift);
  st.centre = sum / float(n);
  st.var = sum_sq / float(n) - st.centre * st.centre;
  if (!(st.var >= st.centre * st.centre)) {  // cancellation (or NaN): the exact two-pass form
    st.centre = centred_sum<S, 1>(s, n, st.shift, 0.0f) / float(n);
    st.var = centred_sum<S, 2>(s, n, st.shift, st.centre) / float(n);
  }
  return st;
}

struct norm_blocking {
  /// Outputs at least this large (y, or y and residual_out together) are written with non-temporal
  /// stores: they cannot stay in the 32 MiB L3 anyway, and streaming saves the read-for-ownership of
  /// every output line (a third DRAM stream). Smaller outputs stay cached for the next op.
  static constexpr std::size_t stream_min_bytes = std::size_t(16) << 20;
  /// With a fused residual, x and r are prefetched this many bytes of rows ahead (at least one row)
  /// while a row is written: with two input streams the hardware prefetcher falls behind (8192 × 4096,
  /// 1 thread: 30.3–31.3 ms with, 39–40 without). With x alone it does better by itself: software
  /// prefetching made plain layernorm slower in 3 of 4 cells (medians of 101 calls, one Zen 4 VM:
  /// 8192 × 1024, 1 / 2 threads: 3.46 / 1.81 ms with, 2.55 / 1.45 without; 8192 × 4096: 13.6 / 6.2 with,
  /// 12.3 / 7.6 without), so plain rows are not prefetched.
  static constexpr std::size_t prefetch_bytes = 16 << 10;
  /// A thread joins only for at least this many bytes of x: waking a passively waiting OpenMP thread
  /// costs tens of µs, about what one core takes to normalise 1 MiB from cache (measured with
  /// bench/norm_bench: 64 × 4096 fp32 ran slower on 2 threads than on 1).
  static constexpr std::size_t min_bytes_per_thread = std::size_t(1) << 20;
  /// Cache-resident plain norms (outputs not streamed, no residual) over rows longer than column_chunk
  /// go in groups of rows: the statistics of each row first, then the outputs one column chunk at a time
  /// across the group, so that a chunk of γ and β (8 KiB) is read from L1 by every row of the group,
  /// instead of the whole of γ and β (32 KiB at hidden 4096: more than L1) streaming from L2 once per row.
  /// A group holds group_bytes of fp32 rows, which stay in L2 between the two phases. 64 × 4096 on one
  /// thread: 55 → 44–49 µs (bench/norm_bench, alternated runs). Streamed (DRAM-sized) outputs keep one row
  /// at a time: grouping split their reads and writes into bursts and was slower (32768 × 8192: 96 → 108–138
  /// ms); so does the fused residual, whose prefetch pipeline (prefetch_bytes) is measured for that.
  static constexpr std::size_t column_chunk = 1024;
  static constexpr std::size_t group_bytes = std::size_t(256) << 10;
  static constexpr std::size_t max_group_rows = 64;
  static constexpr std::size_t group_rows(std::size_t hidden, bool residual, bool streamed) noexcept {
    if (residual || streamed || hidden <= column_chunk) return 1;
    return std::clamp<std::size_t>(group_bytes / (hidden * sizeof(float)), 1, max_group_rows);
  }
  /// An fp32 γ or β whose loads would be slow (another offset within a vector than the rows', or too near
  /// y: see params_as_f32) is copied for at least this many rows (a copy costs about what one row's
  /// misaligned γ and β loads do): 64 × 4096 layernorm, one thread, 41.5–42.6 → 39.3–39.7 µs.
  static constexpr std::size_t param_copy_min_rows = 8;
  /// A load waits for an older store still in the store queue whose address shares its low 12 bits
  /// (Zen 4, "4K aliasing"). The write pass loads s, γ and β and stores y in lockstep, so a load stream that
  /// lies a little behind y's in this ring of addresses meets, at every step, a store a few vectors old (64 ×
  /// 4096 layernorm, one thread, γ and β k vectors behind y: k = 1: 45 µs, 2: 39, 4: 35, 8–16: 34, 32–64:
  /// 33). write_row walks backward when s lies so (consecutive buffers from one allocator do: y = x + 16
  /// bytes) and y is cached; params_as_f32 moves γ and β away from y. Streamed rows always walk forward:
  /// backward, their non-temporal stores ran slower still (8192 × 1024, y = x + 16 bytes: 4.8 against 3.3 ms).
  static constexpr std::size_t alias_ring = 4096;
  /// γ or β within this distance of y in the ring (either side: write_row may walk either way) is copied;
  /// at exactly y's place it is not: there each load meets only the store of a whole ring (64 vectors) ago.
  /// For bf16 y, which advances 2 bytes per element against s's 4, the distance drifts along a row: the
  /// placement then helps less, but it never costs correctness.
  static constexpr std::size_t alias_bytes = 1024;
  /// Loads of s trail the stores to out within the ring: a forward walk would stall on them.
  static bool loads_trail_stores(const void* out, const void* s) noexcept {
    const auto address = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
    const std::size_t ahead = (address(out) - address(s)) % alias_ring;
    return ahead > 0 && ahead < alias_ring / 2;
  }
};

/// A streamed row's partial last vector, held until the next row, which continues it in memory, completes
/// it: the two then go out as one non-temporal store instead of two ordinary masked stores into a line that
/// must first be read from DRAM (stores commit in order, so that read held up the row's non-temporal stores
/// behind it). 8192 × 1024 layernorm, rows 16 bytes off a line, one thread (bench/norm_bench): 2.17–2.20
/// ms with the line prefetched for writing instead, 1.79–1.99 with the carry; 2.42 with neither (harness).
struct stream_carry {
  alignas(64) float v[16];
  float* at = nullptr;    // where v[0] goes
  std::size_t count = 0;  // elements held (fewer than a vector)

  /// Holds the first n lanes of `values`, which go to `where`.
  template <class S>
  void hold(float* where, typename S::vec values, std::size_t n) {
    static_assert(S::lanes <= 16, "stream_carry holds one vector");
    S::store(v, values);
    at = where;
    count = n;
  }
  /// Before a row that starts at `out`, `head` elements short of a vector boundary: when the row continues
  /// what is held, completes it with head_values() and streams it (returns true: the head is written);
  /// otherwise writes what is held with an ordinary store (returns false).
  template <class S, class H>
  bool join(float* out, std::size_t head, H head_values) {
    const bool joined = count && head && at + count == out && count + head == S::lanes;
    if (joined) {
      S::store_n(v + count, head_values(), head);
      S::stream(at, S::load(v));
      count = 0;
    } else {
      release<S>();
    }
    return joined;
  }
  /// Writes what is still held (the last row of a thread's share) with an ordinary store.
  template <class S>
  void release() {
    if (count) S::store_n(at, S::load(v), count);
    count = 0;
  }
};

/// Writes out[j] = f(j, s_j, n) for j in [0, hidden) of a contiguous row: f maps a vector of s (n valid
/// lanes) to its output. With Stream the row's 64-byte-aligned body goes out through non-temporal stores,
/// a head to the alignment and the tail through ordinary masked stores, except where `carry` (given only
/// with Stream) joins this row's head to the previous row's tail and holds this row's tail for the next;
/// without Stream, the head aligns s, and the walk goes backward when the loads of s would trail the stores
/// (norm_blocking::loads_trail_stores).
/// `each_line(j)` runs once per vector step, for prefetching. f and each_line are taken by value, and the
/// callers' lambdas capture by value: the SIMD stores may alias anything, so state reached through a
/// reference would be reloaded from memory after every store (it was: 8192 × 1024 layernorm took 3.3 ms
/// instead of 2.5 on one thread).
template <class S, bool Stream, class TY, class F, class P>
void write_row(TY* out, const float* s, std::size_t hidden, F f, P each_line, stream_carry* carry = nullptr) {
  using io = simd_io<S>;
  constexpr std::size_t L = S::lanes;
  // A head of fewer than L elements brings the body to a vector boundary: of out with Stream (non-temporal
  // stores need whole aligned lines), else of s, whose loads then never split a cache line (and out, when it
  // shares s's misalignment as rows from one allocator usually do, is aligned too). 64 × 4096 layernorm with
  // x and y 16 bytes off a line: 45–50 µs unaligned, 36–37 µs with the head, 35 µs aligned (one thread).
  const std::size_t head = Stream ? head_to_alignment<S>(out, hidden) : head_to_alignment<S>(s, hidden);
  const std::size_t body_end = head + (hidden - head) / L * L, tail = hidden - body_end;
  // (These two capture by reference, unlike the callers' lambdas: they are local and inlined, so nothing is
  // reached through memory.)
  const auto part = [&](std::size_t j, std::size_t n) { io::store_n(out + j, f(j, S::load_n(s + j, n), n), n); };
  const auto whole = [&](std::size_t j) {
    each_line(j);
    if constexpr (Stream) S::stream(out + j, f(j, S::load(s + j), L));
    else io::store(out + j, f(j, S::load(s + j), L));
  };
  if (!Stream && norm_blocking::loads_trail_stores(out, s)) {
    if (tail) part(body_end, tail);
    for (std::size_t j = body_end; j > head;) whole(j -= L);
    if (head) part(0, head);
    return;
  }
  bool head_written = head == 0;
  if constexpr (Stream) {
    if (carry) head_written |= carry->join<S>(out, head, [&] { return f(0, S::load_n(s, head), head); });
    else if (tail) __builtin_prefetch(out + body_end, 1, 3);  // the tail's line, for writing (see stream_carry)
  }
  if (!head_written) part(0, head);
  for (std::size_t j = head; j < body_end; j += L) whole(j);
  if (!tail) return;
  if constexpr (Stream) {
    if (carry) return carry->hold<S>(out + body_end, f(body_end, S::load_n(s + body_end, tail), tail), tail);
  }
  part(body_end, tail);
}

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
