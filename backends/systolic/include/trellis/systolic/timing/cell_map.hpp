#pragma once
// cell_map: 64-bit cell key → list of entry ids, for footprint_index. Open addressing with linear probing
// in a power-of-two table: a lookup is one hash and, almost always, one probe — std::unordered_map costs
// a node walk and an allocation per new key, which showed in the profile at several lookups per operand.
// Keys are never removed (an emptied cell keeps its slot and its list's capacity): kernels revisit the
// same tiles, so the table stops growing once every tile of the kernel has been touched. A cell is also
// known by its index (stable for the life of the map), so that an access looks its cells up once and
// then uses the indices for its query, its update and, later, its removal.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace trellis::systolic::timing {

class cell_map {
 public:
  /// A cell's entry ids: the first few inline, the rest on the heap; 32 bytes.
  class list {
   public:
    list() noexcept = default;
    list(const list&) = delete;
    list& operator=(const list&) = delete;
    list(list&& o) noexcept : size_(o.size_), capacity_(o.capacity_), version_(o.version_) {
      if (o.capacity_ > inline_capacity) {
        heap_ = o.heap_;
        o.capacity_ = inline_capacity;
        o.size_ = 0;
      } else {
        for (std::uint32_t i = 0; i < size_; ++i) inline_[i] = o.inline_[i];
      }
    }
    ~list() {
      if (capacity_ > inline_capacity) delete[] heap_;
    }

    std::uint32_t size() const noexcept { return size_; }
    /// Changes whenever the list does (an id added, removed or retagged).
    std::uint32_t version() const noexcept { return version_; }
    const std::uint32_t* begin() const noexcept { return data(); }
    const std::uint32_t* end() const noexcept { return data() + size_; }
    std::uint32_t operator[](std::uint32_t i) const noexcept { return data()[i]; }

    void push_back(std::uint32_t id) {
      if (size_ == capacity_) grow();
      data()[size_++] = id;
      ++version_;
    }
    /// Removes `id`, whatever its tag bit (order within a cell does not matter: the tracker orders
    /// entries by sequence number).
    void remove(std::uint32_t id) noexcept {
      std::uint32_t* d = data();
      for (std::uint32_t i = 0; i < size_; ++i)
        if ((d[i] & id_mask) == id) {
          d[i] = d[--size_];
          ++version_;
          return;
        }
    }
    /// Replaces `id` (whatever its tag bit) by `tagged`.
    void retag(std::uint32_t id, std::uint32_t tagged) noexcept {
      std::uint32_t* d = data();
      for (std::uint32_t i = 0; i < size_; ++i)
        if ((d[i] & id_mask) == id) {
          d[i] = tagged;
          ++version_;
          return;
        }
    }

   private:
    static constexpr std::uint32_t inline_capacity = 5;
    static constexpr std::uint32_t id_mask = ~(std::uint32_t{1} << 31);
    std::uint32_t* data() noexcept { return capacity_ > inline_capacity ? heap_ : inline_; }
    const std::uint32_t* data() const noexcept { return capacity_ > inline_capacity ? heap_ : inline_; }
    void grow() {
      const std::uint32_t capacity = capacity_ * 2;
      auto* d = new std::uint32_t[capacity];
      const std::uint32_t* old = data();
      for (std::uint32_t i = 0; i < size_; ++i) d[i] = old[i];
      if (capacity_ > inline_capacity) delete[] heap_;
      heap_ = d;
      capacity_ = capacity;
    }
    std::uint32_t size_ = 0, capacity_ = inline_capacity, version_ = 0;
    union {
      std::uint32_t inline_[inline_capacity];
      std::uint32_t* heap_;
    };
  };

  static constexpr std::uint32_t none = ~std::uint32_t{0};

  /// The index of `key`'s cell, or none when the key was never inserted.
  std::uint32_t find(std::uint64_t key) const noexcept {
    if (slots_.empty()) return none;
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const slot& sl = slots_[i];
      if (sl.cell == none || sl.key == key) return sl.cell;
    }
  }

  /// The index of `key`'s cell, created (empty) on first use.
  std::uint32_t index(std::uint64_t key) {
    if ((keyed_ + 1) * 4 > slots_.size() * 3) grow();  // load factor ≤ ¾
    std::size_t i = slot_of(key);
    for (; slots_[i].cell != none; i = (i + 1) & mask_)
      if (slots_[i].key == key) return slots_[i].cell;
    slots_[i] = {key, std::uint32_t(lists_.size())};
    lists_.emplace_back();
    ++keyed_;
    return slots_[i].cell;
  }

  /// Adds n cells that have no key (their owner knows their indices); returns the first index.
  std::uint32_t add_unkeyed(std::size_t n) {
    const auto first = std::uint32_t(lists_.size());
    lists_.resize(lists_.size() + n);
    return first;
  }

  list& operator[](std::uint32_t cell) noexcept { return lists_[cell]; }
  const list& operator[](std::uint32_t cell) const noexcept { return lists_[cell]; }

  /// The list of `key`, or null when the key was never inserted.
  const list* find_list(std::uint64_t key) const noexcept {
    const std::uint32_t c = find(key);
    return c == none ? nullptr : &lists_[c];
  }
  /// The list of `key`, created empty on first use.
  list& at(std::uint64_t key) { return lists_[index(key)]; }

 private:
  std::size_t slot_of(std::uint64_t key) const noexcept {
    key ^= key >> 31;  // keys are (row block, column block) mixes: spread both halves over the table
    return std::size_t((key * 0x9e3779b97f4a7c15ull) >> shift_);  // Fibonacci hashing: the top bits
  }

  void grow() {
    const std::size_t capacity = slots_.empty() ? 1024 : slots_.size() * 2;
    std::vector<slot> old(capacity);
    old.swap(slots_);
    mask_ = capacity - 1;
    shift_ = 64;
    for (std::size_t c = capacity; c > 1; c >>= 1) --shift_;
    for (const slot& sl : old) {
      if (sl.cell == none) continue;
      std::size_t i = slot_of(sl.key);
      while (slots_[i].cell != none) i = (i + 1) & mask_;
      slots_[i] = sl;
    }
  }

  /// A key and its cell (index into lists_), together: a look-up touches one cache line.
  struct slot {
    std::uint64_t key = 0;
    std::uint32_t cell = none;
  };
  std::vector<slot> slots_;
  std::vector<list> lists_;
  std::size_t keyed_ = 0;  ///< lists with a key
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace trellis::systolic::timing
