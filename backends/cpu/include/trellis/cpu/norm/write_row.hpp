#pragma once
// The norms' write pass over one row: out[j] = f(j, s_j) in vectors, aligned and ordered against split
// lines and 4K aliasing, with non-temporal stores for DRAM-sized outputs (stream_carry joins the partial
// vectors where one streamed row continues another).

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "trellis/cpu/norm/blocking.hpp"
#include "trellis/cpu/row_io.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

/// How many of n floats starting at p come before a vector boundary: the head that aligns write_row's
/// vectors. (The statistics passes do not align: their order of summation, and so a row's last bits,
/// would then depend on the row's address, and copies of the same input could normalise differently.)
template <class S>
std::size_t head_to_alignment(const void* p, std::size_t n) noexcept {
  constexpr std::size_t L = S::lanes;
  const std::size_t misaligned = reinterpret_cast<std::uintptr_t>(p) % (L * sizeof(float)) / sizeof(float);
  return misaligned ? std::min(n, L - misaligned) : 0;
}

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

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
