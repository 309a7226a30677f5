#pragma once
// hbm_memory: the core's share of device HBM, with capacity tracking. Tensors allocated here count
// against gib_per_chip / cores_per_chip of the machine; allocating past it is a rule error.
//
//   auto x = nc.hbm.tensor<bf16>({4096, 4096});    // owning; host memory on functional cores,
//   hbm<const bf16> in = x;                        // shape-only (no memory) on timing-only cores
//   std::copy(src.begin(), src.end(), x.data());   // functional cores: fill from the host
//
// Views of user memory (hbm<T>{tensor_view}) are not counted: the user owns that memory.

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <memory>
#include <source_location>
#include <string>
#include <utility>

#include "trellis/core/error.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/machine.hpp"

namespace trellis::systolic {

class hbm_memory;

/// An HBM tensor owned by a core's hbm_memory; move-only, its bytes are returned when it is destroyed.
template <class T, std::size_t Rank = 2>
class hbm_tensor {
 public:
  hbm_tensor() = default;
  hbm_tensor(hbm_tensor&& other) noexcept
      : owner_(std::exchange(other.owner_, nullptr)), bytes_(other.bytes_), storage_(std::move(other.storage_)),
        view_(other.view_) {}
  hbm_tensor& operator=(hbm_tensor&& other) noexcept {
    if (this != &other) {
      reset();
      owner_ = std::exchange(other.owner_, nullptr);
      bytes_ = other.bytes_;
      storage_ = std::move(other.storage_);
      view_ = other.view_;
    }
    return *this;
  }
  ~hbm_tensor() { reset(); }
  void reset() noexcept;

  /// Host pointer to the elements (null on timing-only cores).
  T* data() const noexcept { return storage_.get(); }
  std::size_t bytes() const noexcept { return bytes_; }
  const hbm<T, Rank>& view() const noexcept { return view_; }
  operator hbm<T, Rank>() const noexcept { return view_; }               // NOLINT: use as an HBM tensor
  operator hbm<const T, Rank>() const noexcept { return view_; }         // NOLINT
  operator region() const noexcept requires(Rank == 2) { return view_; }  // NOLINT
  hbm<T, Rank> tile(std::size_t row0, std::size_t col0, std::size_t rows, std::size_t cols) const
    requires(Rank == 2)
  {
    return view_.tile(row0, col0, rows, cols);
  }

 private:
  friend class hbm_memory;
  struct free_deleter {
    void operator()(T* p) const noexcept { std::free(p); }
  };
  hbm_memory* owner_ = nullptr;
  std::size_t bytes_ = 0;
  std::unique_ptr<T, free_deleter> storage_;
  hbm<T, Rank> view_{};
};

class hbm_memory {
 public:
  hbm_memory(const machine_spec& spec, bool with_storage) : spec_(&spec), with_storage_(with_storage) {}
  hbm_memory(const hbm_memory&) = delete;
  hbm_memory& operator=(const hbm_memory&) = delete;

  /// The core's share of the chip's HBM [trainium.md: "HBM per core is the chip figure shared by its cores"].
  std::size_t capacity_bytes() const noexcept {
    return static_cast<std::size_t>(spec_->hbm.gib_per_chip * 1024.0 * 1024.0 * 1024.0) / spec_->hbm.cores_per_chip;
  }
  std::size_t bytes_in_use() const noexcept { return in_use_; }
  std::size_t peak_bytes() const noexcept { return peak_; }

  /// A new tensor of `shape`: zero-filled host memory on functional cores, shape-only on timing-only ones.
  template <class T, std::size_t Rank = 2>
  hbm_tensor<T, Rank> tensor(const std::array<std::size_t, Rank>& shape,
                             std::source_location loc = std::source_location::current()) {
    std::size_t elements = 1;
    for (std::size_t e : shape) elements *= e;
    const std::size_t bytes = elements * sizeof(T);
    if (elements == 0) raise_error("hbm.tensor: a tensor needs at least one element");
    if (in_use_ + bytes > capacity_bytes())
      raise_error("hbm.tensor: " + std::to_string(bytes) + " bytes exceed the HBM share of a core on " + spec_->name +
                  " (" + std::to_string(capacity_bytes()) + " bytes = chip HBM / " +
                  std::to_string(spec_->hbm.cores_per_chip) + " cores; " + std::to_string(in_use_) +
                  " bytes in use; allocated at " + loc.file_name() + ":" + std::to_string(loc.line()) + ")");
    hbm_tensor<T, Rank> t;
    t.owner_ = this;
    t.bytes_ = bytes;
    if (with_storage_) {
      t.storage_.reset(static_cast<T*>(std::calloc(elements, sizeof(T))));
      if (!t.storage_) raise_error("hbm.tensor: the host has no memory for " + std::to_string(bytes) + " bytes");
      t.view_ = hbm<T, Rank>(tensor_view<T, Rank>{t.storage_.get(), shape});
    } else {
      t.view_ = hbm<T, Rank>::shape_only(shape);
    }
    in_use_ += bytes;
    peak_ = std::max(peak_, in_use_);
    return t;
  }

  void release(std::size_t bytes) noexcept { in_use_ -= bytes; }

 private:
  const machine_spec* spec_;
  bool with_storage_;
  std::size_t in_use_ = 0, peak_ = 0;
};

template <class T, std::size_t Rank>
void hbm_tensor<T, Rank>::reset() noexcept {
  if (owner_) owner_->release(bytes_);
  owner_ = nullptr;
  storage_.reset();
  view_ = {};
}

}  // namespace trellis::systolic
