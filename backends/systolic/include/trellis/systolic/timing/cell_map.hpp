#pragma once
// cell_map: 64-bit cell key → list of entry ids, for footprint_index. Open addressing with linear probing
// in a power-of-two table: a lookup is one hash and, almost always, one probe — std::unordered_map costs
// a node walk and an allocation per new key, which showed in the profile at several lookups per operand.
// Keys are never removed (an emptied cell keeps its slot and its list's capacity): kernels revisit the
// same tiles, so the table stops growing once every tile of the kernel has been touched.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace trellis::systolic::timing {

class cell_map {
 public:
  using list = std::vector<std::uint32_t>;

  /// The list of `key`, or null when the key was never inserted.
  const list* find(std::uint64_t key) const noexcept {
    if (keys_.empty()) return nullptr;
    for (std::size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const std::uint32_t c = cells_of_[i];
      if (c == none) return nullptr;
      if (keys_[i] == key) return &lists_[c];
    }
  }

  /// The list of `key`, created empty on first use.
  list& at(std::uint64_t key) {
    if ((lists_.size() + 1) * 4 > keys_.size() * 3) grow();  // load factor ≤ ¾
    std::size_t i = slot_of(key);
    for (; cells_of_[i] != none; i = (i + 1) & mask_)
      if (keys_[i] == key) return lists_[cells_of_[i]];
    keys_[i] = key;
    cells_of_[i] = std::uint32_t(lists_.size());
    return lists_.emplace_back();
  }

 private:
  static constexpr std::uint32_t none = ~std::uint32_t{0};

  std::size_t slot_of(std::uint64_t key) const noexcept {
    key ^= key >> 31;  // keys are (row block, column block) mixes: spread both halves over the table
    return std::size_t((key * 0x9e3779b97f4a7c15ull) >> shift_);  // Fibonacci hashing: the top bits
  }

  void grow() {
    const std::size_t capacity = keys_.empty() ? 1024 : keys_.size() * 2;
    std::vector<std::uint64_t> old_keys(capacity);
    std::vector<std::uint32_t> old_cells(capacity, none);
    old_keys.swap(keys_);
    old_cells.swap(cells_of_);
    mask_ = capacity - 1;
    shift_ = 64;
    for (std::size_t c = capacity; c > 1; c >>= 1) --shift_;
    for (std::size_t j = 0; j < old_keys.size(); ++j) {
      if (old_cells[j] == none) continue;
      std::size_t i = slot_of(old_keys[j]);
      while (cells_of_[i] != none) i = (i + 1) & mask_;
      keys_[i] = old_keys[j];
      cells_of_[i] = old_cells[j];
    }
  }

  std::vector<std::uint64_t> keys_;
  std::vector<std::uint32_t> cells_of_;  ///< index into lists_, or none for an empty slot
  std::vector<list> lists_;
  std::size_t mask_ = 0;
  unsigned shift_ = 64;
};

}  // namespace trellis::systolic::timing
