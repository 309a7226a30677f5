#pragma once
// trellis::aligned_allocator and trellis::aligned_vector: storage that starts on a 64-byte cache line.
// The CPU kernels accept any address, but they are fastest on line-aligned rows: a buffer from
// std::vector's default allocator starts 16 bytes past a line once it is large (glibc's mmap chunk
// header), and every vector load of it then straddles two lines (docs/performance.md, "Seventh session").

#include <cstddef>
#include <new>
#include <vector>

namespace trellis {

template <class T, std::size_t Alignment = 64>
struct aligned_allocator {
  static_assert(Alignment >= alignof(T) && (Alignment & (Alignment - 1)) == 0,
                "a power of two no smaller than the element's own alignment");
  using value_type = T;
  template <class U>
  struct rebind {
    using other = aligned_allocator<U, Alignment>;
  };

  aligned_allocator() = default;
  template <class U>
  aligned_allocator(const aligned_allocator<U, Alignment>&) noexcept {}

  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{Alignment}));
  }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p, std::align_val_t{Alignment}); }

  template <class U>
  bool operator==(const aligned_allocator<U, Alignment>&) const noexcept {
    return true;
  }
};

/// A std::vector whose data() is 64-byte aligned.
template <class T>
using aligned_vector = std::vector<T, aligned_allocator<T>>;

}  // namespace trellis
