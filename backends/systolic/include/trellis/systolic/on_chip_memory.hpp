#pragma once
// SBUF and PSUM: 128 partitions × bytes, with an allocator that enforces capacity, PSUM banks and the
// partition-start rule, RAII tiles (space is reused when a tile leaves scope), explicit placement and
// rotating pools for multi-buffering.
//
//   auto acc = nc.psum.tile<float>(128, 512);              // [128, 512] fp32: one PSUM bank
//   auto b = nc.psum.tile<float>(128, 512, {.bank = 3});   // explicit bank
//   auto x = nc.sbuf.tile<bf16>(32, 256, {.partition_start = 64, .byte_offset = 4096});
//   auto loads = nc.sbuf.pool<bf16>({128, 512}, 2);        // double buffering: loads.next() rotates
//
// Fresh tiles (and each pool.next()) are filled with a NaN sentinel of their dtype unless the core turned
// it off, so a kernel that reads memory it never wrote gets NaN in its result. Tiles must not outlive
// the core that allocated them.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <source_location>
#include <string>
#include <utility>
#include <vector>

#include "trellis/core/error.hpp"
#include "trellis/systolic/region.hpp"
#include "trellis/systolic/dtype.hpp"
#include "trellis/systolic/machine.hpp"

namespace trellis::systolic {

/// Where a tile goes; every field left empty is chosen by the allocator (first fit: lowest partition start,
/// then lowest byte offset).
struct placement {
  std::optional<std::size_t> partition_start{};  ///< must satisfy the partition-start rule
  std::optional<std::size_t> byte_offset{};      ///< within each partition; a multiple of the element size
  std::optional<std::size_t> bank{};             ///< PSUM only: the tile lies in this bank
};

/// One live allocation: the same byte range on a run of contiguous partitions.
struct allocation {
  std::uint64_t id = 0;
  dtype type = dtype::f32;
  std::size_t partition_start = 0, partitions = 0;
  std::size_t byte_offset = 0, bytes = 0;  ///< per partition
  std::size_t free_size = 0;               ///< elements per partition
  std::source_location where;

  bool overlaps(std::size_t p0, std::size_t np, std::size_t b0, std::size_t nb) const noexcept {
    return p0 < partition_start + partitions && partition_start < p0 + np && b0 < byte_offset + bytes &&
           byte_offset < b0 + nb;
  }
};

template <class T>
class tile;
template <class T>
class pool;

class on_chip_memory {
 public:
  on_chip_memory(memory_space space, const machine_spec& spec, bool with_storage, bool nan_fill)
      : space_(space), spec_(&spec), nan_fill_(nan_fill) {
    if (with_storage) storage_.reset(static_cast<std::byte*>(std::calloc(partitions() * bytes_per_partition(), 1)));
  }
  on_chip_memory(const on_chip_memory&) = delete;
  on_chip_memory& operator=(const on_chip_memory&) = delete;

  memory_space space() const noexcept { return space_; }
  const char* name() const noexcept { return space_ == memory_space::psum ? "psum" : "sbuf"; }
  const machine_spec& spec() const noexcept { return *spec_; }
  std::size_t partitions() const noexcept { return spec_->memory.partitions; }
  std::size_t bytes_per_partition() const noexcept {
    return space_ == memory_space::psum ? spec_->memory.psum_bytes_per_partition : spec_->memory.sbuf_bytes_per_partition;
  }
  /// PSUM bank size per partition; 0 for SBUF (no banks).
  std::size_t bank_bytes() const noexcept { return space_ == memory_space::psum ? spec_->memory.psum_bank_bytes : 0; }
  bool has_storage() const noexcept { return storage_ != nullptr; }

  /// Fills fresh tiles with NaN sentinels (the default on functional cores).
  void set_nan_fill(bool on) noexcept { nan_fill_ = on; }
  bool nan_fill() const noexcept { return nan_fill_; }

  /// A [partitions, free_size] tile of T, freed when it leaves scope.
  template <class T>
  systolic::tile<T> tile(std::size_t partition_count, std::size_t free_size, placement where = {},
                         std::source_location loc = std::source_location::current());

  /// `bufs` tiles of `shape` handed out in rotation by next(): multi-buffering.
  template <class T>
  systolic::pool<T> pool(std::array<std::size_t, 2> shape, std::size_t bufs,
                         std::source_location loc = std::source_location::current());

  const std::vector<allocation>& live() const noexcept { return live_; }
  /// Bytes held by live tiles, summed over partitions.
  std::size_t bytes_in_use() const noexcept { return in_use_; }
  std::size_t peak_bytes() const noexcept { return peak_; }
  std::size_t capacity_bytes() const noexcept { return partitions() * bytes_per_partition(); }

  /// Low level: reserves space (validated) and returns it; tile<T> and pool<T> call this.
  allocation allocate(dtype type, std::size_t partition_count, std::size_t free_size, const placement& where,
                      std::source_location loc) {
    const std::string what = std::string(name()) + ".tile: ";
    const std::string on = " on " + std::string(spec_->name);
    const std::size_t elem = size_of(type), bytes = free_size * elem, bank = bank_bytes();
    const std::string desc = detail::shape_string(partition_count, free_size) + " " + to_string(type);
    if (partition_count == 0 || partition_count > partitions())
      raise_error(what + "partition count " + std::to_string(partition_count) + " of " + desc + " is outside 1.." +
                  std::to_string(partitions()) + on);
    if (free_size == 0) raise_error(what + "free size of " + desc + " is 0");
    const std::size_t psum_max = spec_->memory.psum_tile_max_bytes;
    if (bank && bytes > psum_max)
      raise_error(what + std::to_string(bytes) + " bytes per partition (" + desc + ") exceed " +
                  (psum_max == bank ? "one PSUM bank (" + std::to_string(bank) + " bytes)"
                                    : "the PSUM tile limit (" + std::to_string(psum_max) + " bytes)") + on);
    if (bytes > bytes_per_partition())
      raise_error(what + std::to_string(bytes) + " bytes per partition (" + desc + ") exceed the " +
                  std::to_string(bytes_per_partition()) + " bytes of a partition" + on);
    if (where.partition_start && !detail::partition_start_allowed(*where.partition_start, partition_count, partitions()))
      raise_error(what + "partition start " + std::to_string(*where.partition_start) + " is not allowed for " +
                  std::to_string(partition_count) + " partitions" + on + " (" + detail::partition_start_rule + ")");
    if (where.bank && !bank) raise_error(what + "SBUF has no banks (placement.bank is for PSUM tiles)");
    if (where.bank && *where.bank >= spec_->memory.psum_banks)
      raise_error(what + "bank " + std::to_string(*where.bank) + " is outside 0.." +
                  std::to_string(spec_->memory.psum_banks - 1) + on);
    if (where.byte_offset) {
      const std::size_t b0 = *where.byte_offset;
      if (b0 % elem) raise_error(what + "byte offset " + std::to_string(b0) + " is not a multiple of the " +
                                 std::to_string(elem) + "-byte " + to_string(type) + " element");
      if (b0 + bytes > bytes_per_partition())
        raise_error(what + "bytes [" + std::to_string(b0) + ", " + std::to_string(b0 + bytes) + ") exceed the " +
                    std::to_string(bytes_per_partition()) + " bytes of a partition" + on);
      if (bank && !bank_fit(b0, bytes))
        raise_error(what + "bytes [" + std::to_string(b0) + ", " + std::to_string(b0 + bytes) +
                    ") cross a PSUM bank boundary (banks of " + std::to_string(bank) + " bytes)" + on);
      if (where.bank && b0 / bank != *where.bank)
        raise_error(what + "byte offset " + std::to_string(b0) + " is not in bank " + std::to_string(*where.bank) + on);
    }

    // Candidate byte offsets: the explicit one, or 0 / bank starts / the end of every live tile.
    std::vector<std::size_t> offsets;
    if (where.byte_offset) {
      offsets.push_back(*where.byte_offset);
    } else {
      const std::size_t lo = where.bank ? *where.bank * bank : 0;
      const std::size_t hi = where.bank ? std::min(lo + std::max(bank, bytes), bytes_per_partition()) : bytes_per_partition();
      offsets.push_back(lo);
      if (bank && !where.bank)
        for (std::size_t b = bank; b < hi; b += bank) offsets.push_back(b);
      for (const allocation& a : live_) {
        const std::size_t end = (a.byte_offset + a.bytes + elem - 1) / elem * elem;
        if (end >= lo && end < hi) offsets.push_back(end);
      }
      std::sort(offsets.begin(), offsets.end());
      offsets.erase(std::unique(offsets.begin(), offsets.end()), offsets.end());
      offsets.erase(std::remove_if(offsets.begin(), offsets.end(),
                                   [&](std::size_t b0) {
                                     return b0 + bytes > hi || (bank && !bank_fit(b0, bytes));
                                   }),
                    offsets.end());
    }
    std::vector<std::size_t> starts;
    if (where.partition_start) starts.push_back(*where.partition_start);
    else
      for (std::size_t p = 0; p < partitions(); p += 32)
        if (detail::partition_start_allowed(p, partition_count, partitions())) starts.push_back(p);

    const allocation* blocker = nullptr;
    // Lowest partition start first, then lowest byte offset: automatically placed tiles start at partition 0
    // whenever they can, so the operands of an engine instruction line up lane by lane (isa/checks.hpp).
    for (std::size_t p0 : starts)
      for (std::size_t b0 : offsets) {
        const auto hit = std::find_if(live_.begin(), live_.end(),
                                      [&](const allocation& a) { return a.overlaps(p0, partition_count, b0, bytes); });
        if (hit == live_.end()) return commit(type, p0, partition_count, b0, bytes, free_size, loc);
        blocker = &*hit;
      }
    if (where.byte_offset && where.partition_start && blocker)
      raise_error(what + "explicit placement of " + desc + " at partitions [" + std::to_string(*where.partition_start) +
                  ", " + std::to_string(*where.partition_start + partition_count) + "), bytes [" +
                  std::to_string(*where.byte_offset) + ", " + std::to_string(*where.byte_offset + bytes) +
                  ") overlaps the live tile allocated at " + blocker->where.file_name() + ":" +
                  std::to_string(blocker->where.line()) + on);
    raise_error(what + "out of " + (bank ? std::string("PSUM") : std::string("SBUF")) + on + ": no room for " + desc +
                " (" + std::to_string(bytes) + " bytes per partition" + (where.bank ? " in bank " + std::to_string(*where.bank) : "") +
                "); " + std::to_string(live_.size()) + " live tiles hold " + std::to_string(in_use_) + " of " +
                std::to_string(capacity_bytes()) + " bytes");
  }

  /// Gives the space of allocation `id` back.
  void release(std::uint64_t id) noexcept {
    const auto it = std::find_if(live_.begin(), live_.end(), [&](const allocation& a) { return a.id == id; });
    if (it == live_.end()) return;
    in_use_ -= it->partitions * it->bytes;
    live_.erase(it);
  }

  /// The region of a whole allocation.
  region region_of(const allocation& a) const noexcept {
    region r;
    r.space = space_;
    r.type = a.type;
    r.rows = a.partitions;
    r.cols = a.free_size;
    r.row_stride_bytes = static_cast<std::ptrdiff_t>(bytes_per_partition());
    r.col_stride_bytes = static_cast<std::ptrdiff_t>(size_of(a.type));
    if (storage_) r.origin = storage_.get() + a.partition_start * bytes_per_partition() + a.byte_offset;
    r.memory = this;
    r.allocation = a.id;
    r.partition_start = a.partition_start;
    r.byte_offset = a.byte_offset;
    return r;
  }

  /// Writes the NaN sentinel of the region's dtype to every element (when storage exists and filling is on).
  void fill_sentinel(const region& r) const noexcept {
    if (!r.origin || !nan_fill_) return;
    for (std::size_t p = 0; p < r.rows; ++p)
      for (std::size_t f = 0; f < r.cols; ++f) store_nan_sentinel(r.type, r.element(p, f));
  }

 private:
  /// PSUM: a tile of at most one bank stays inside one bank; a larger one (trn3) starts at a bank start.
  bool bank_fit(std::size_t b0, std::size_t bytes) const noexcept {
    const std::size_t bank = bank_bytes();
    return bytes <= bank ? b0 / bank == (b0 + bytes - 1) / bank : b0 % bank == 0;
  }

  allocation commit(dtype type, std::size_t p0, std::size_t np, std::size_t b0, std::size_t bytes, std::size_t free_size,
                    std::source_location loc) {
    allocation a{++next_id_, type, p0, np, b0, bytes, free_size, loc};
    live_.push_back(a);
    in_use_ += np * bytes;
    peak_ = std::max(peak_, in_use_);
    fill_sentinel(region_of(a));
    return a;
  }

  struct free_deleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };

  memory_space space_;
  const machine_spec* spec_;
  bool nan_fill_;
  std::unique_ptr<std::byte[], free_deleter> storage_;  // partition p at p × bytes_per_partition()
  std::vector<allocation> live_;
  std::uint64_t next_id_ = 0;
  std::size_t in_use_ = 0, peak_ = 0;
};

/// A [partitions, free] tile of T in SBUF or PSUM; move-only, its space is released when it is destroyed.
template <class T>
class tile {
  static_assert(is_element_type_v<T>, "tile<T>: T must be float, bf16, f16, f8e4m3 or f8e5m2");

 public:
  using value_type = T;
  tile() = default;
  tile(on_chip_memory& memory, const allocation& a) noexcept : memory_(&memory), info_(a) {}
  tile(tile&& other) noexcept : memory_(std::exchange(other.memory_, nullptr)), info_(other.info_) {}
  tile& operator=(tile&& other) noexcept {
    if (this != &other) {
      reset();
      memory_ = std::exchange(other.memory_, nullptr);
      info_ = other.info_;
    }
    return *this;
  }
  ~tile() { reset(); }

  /// Frees the space now (the tile becomes empty).
  void reset() noexcept {
    if (memory_) memory_->release(info_.id);
    memory_ = nullptr;
  }

  explicit operator bool() const noexcept { return memory_ != nullptr; }
  std::size_t partitions() const noexcept { return info_.partitions; }
  std::size_t free_size() const noexcept { return info_.free_size; }
  std::array<std::size_t, 2> shape() const noexcept { return {info_.partitions, info_.free_size}; }
  const allocation& placement_info() const noexcept { return info_; }

  /// The whole tile as an instruction operand.
  region view() const noexcept { return memory_ ? memory_->region_of(info_) : region{}; }
  operator region() const noexcept { return view(); }  // NOLINT: instructions take any region
  region sub(std::size_t p0, std::size_t np, std::size_t f0, std::size_t nf, std::size_t step = 1) const {
    return view().sub(p0, np, f0, nf, step);
  }
  region rows_range(std::size_t p0, std::size_t np) const { return view().rows_range(p0, np); }
  region cols_range(std::size_t f0, std::size_t nf) const { return view().cols_range(f0, nf); }
  region free_pattern(std::initializer_list<pattern_dim> dims) const { return view().free_pattern(dims); }

  /// Host-side read of one element, for tests and debugging (functional cores only).
  float peek(std::size_t p, std::size_t f) const {
    const region r = view();
    if (!r.origin) raise_error("tile.peek: the tile has no storage (a timing-only core, or an empty tile)");
    if (p >= r.rows || f >= r.cols)
      raise_error("tile.peek: element (" + std::to_string(p) + ", " + std::to_string(f) + ") is outside " +
                  detail::shape_string(r.rows, r.cols));
    return load_element(r.type, r.element(p, f));
  }

 private:
  template <class U>
  friend class pool;
  on_chip_memory* memory_ = nullptr;
  allocation info_{};
};

/// `bufs` tiles of one shape handed out in rotation: buffer i mod bufs on the i-th next().
template <class T>
class pool {
 public:
  pool(std::vector<systolic::tile<T>> buffers) noexcept : buffers_(std::move(buffers)) {}
  /// The next buffer in rotation, refilled with the NaN sentinel: a kernel that reads a buffer before
  /// writing it in this round sees NaN, not the previous round's data.
  systolic::tile<T>& next() noexcept {
    systolic::tile<T>& t = buffers_[next_];
    next_ = next_ + 1 == buffers_.size() ? 0 : next_ + 1;
    if (t.memory_ && t.memory_->has_storage() && t.memory_->nan_fill()) {  // timing-only: nothing to fill
      const region r = t.view();
      r.memory->fill_sentinel(r);
    }
    return t;
  }
  std::size_t bufs() const noexcept { return buffers_.size(); }
  const systolic::tile<T>& operator[](std::size_t i) const noexcept { return buffers_[i]; }

 private:
  std::vector<systolic::tile<T>> buffers_;
  std::size_t next_ = 0;
};

inline std::size_t free_pattern_dims_of(const on_chip_memory* memory) noexcept {
  return memory ? memory->spec().access.free_pattern_dims : max_free_pattern_dims;
}
inline const char* machine_name_of(const on_chip_memory* memory) noexcept { return memory ? memory->spec().name : "?"; }

template <class T>
systolic::tile<T> on_chip_memory::tile(std::size_t partition_count, std::size_t free_size, placement where,
                                       std::source_location loc) {
  static_assert(is_element_type_v<T>, "tile<T>: T must be float, bf16, f16, f8e4m3 or f8e5m2");
  return systolic::tile<T>(*this, allocate(dtype_of<T>, partition_count, free_size, where, loc));
}

template <class T>
systolic::pool<T> on_chip_memory::pool(std::array<std::size_t, 2> shape, std::size_t bufs, std::source_location loc) {
  if (bufs == 0) raise_error(std::string(name()) + ".pool: bufs must be at least 1");
  std::vector<systolic::tile<T>> buffers;
  buffers.reserve(bufs);
  for (std::size_t i = 0; i < bufs; ++i) buffers.push_back(tile<T>(shape[0], shape[1], {}, loc));
  return systolic::pool<T>(std::move(buffers));
}

}  // namespace trellis::systolic
