#pragma once
// The CPU norms' blocking and placement constants and the 4K-aliasing test, most with the measurement that
// chose them.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "trellis/core/config.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace cpu_detail {

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

}  // namespace cpu_detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
