#pragma once
// Argument-checking helpers shared by every front door. Each check either passes or raises one
// trellis::error of the form "<op>: <argument>: expected <what>, got <what>".

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>

#include "trellis/core/config.hpp"
#include "trellis/core/dtype.hpp"
#include "trellis/core/error.hpp"
#include "trellis/core/tensor_view.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
namespace detail {

/// What a check needs to know about any operand: address, element size, shape and strides.
struct operand {
  std::string_view name;
  const void* data = nullptr;
  std::size_t element_size = 4;
  std::size_t rank = 0;
  std::array<std::size_t, 4> shape{};
  std::array<std::size_t, 4> strides{};

  std::size_t size() const noexcept {
    std::size_t n = 1;
    for (std::size_t a = 0; a < rank; ++a) n *= shape[a];
    return n;
  }
};

template <class T, std::size_t Rank>
operand describe(std::string_view name, const tensor_view<T, Rank>& v) {
  static_assert(Rank <= 4, "operands of rank > 4 are not supported");
  operand o{name, v.data(), sizeof(T), Rank, {}, {}};
  for (std::size_t a = 0; a < Rank; ++a) {
    o.shape[a] = v.extent(a);
    o.strides[a] = v.stride(a);
  }
  return o;
}

template <bool Mutable>
operand describe(std::string_view name, const basic_any_view<Mutable>& v) {
  operand o{name, v.data(), size_of(v.type()), v.rank(), {}, {}};
  for (std::size_t a = 0; a < v.rank(); ++a) {
    o.shape[a] = v.extent(a);
    o.strides[a] = v.stride(a);
  }
  return o;
}

/// "[2, 3]" for a shape, "{3, 1}" for strides: the first `rank` values between the brackets.
inline std::string list_string(const std::array<std::size_t, 4>& values, std::size_t rank,
                               char open, char close) {
  std::ostringstream s;
  s << open;
  for (std::size_t a = 0; a < rank; ++a) s << (a ? ", " : "") << values[a];
  s << close;
  return s.str();
}

inline std::string shape_string(const operand& o) { return list_string(o.shape, o.rank, '[', ']'); }
inline std::string strides_string(const operand& o) {
  return list_string(o.strides, o.rank, '{', '}');
}

[[noreturn]] inline void fail(std::string_view op, std::string_view argument,
                              const std::string& expected, const std::string& got) {
  raise_error(std::string(op) + ": " + std::string(argument) + ": expected " + expected + ", got " +
              got);
}

/// A tensor with elements must have memory behind it.
inline void check_not_null(std::string_view op, const operand& o) {
  if (o.data == nullptr && o.size() != 0)
    fail(op, o.name, "a non-null pointer for a " + shape_string(o) + " tensor", "nullptr");
}

/// Checks one extent: "expected <what> = <want> in axis <axis>, got <shape>".
inline void check_extent(std::string_view op, const operand& o, std::size_t axis, std::size_t want,
                         std::string_view meaning) {
  if (o.shape[axis] != want)
    fail(op, o.name,
         "extent " + std::to_string(want) + " in axis " + std::to_string(axis) + " (" +
             std::string(meaning) + ")",
         "shape " + shape_string(o));
}

/// The last axis must be contiguous (stride 1) whenever it has more than one element.
inline void check_unit_last_stride(std::string_view op, const operand& o) {
  if (o.rank && o.shape[o.rank - 1] > 1 && o.strides[o.rank - 1] != 1)
    fail(op, o.name, "stride 1 in the last axis", "strides " + strides_string(o));
}

/// An output must not write one element through two index tuples: ordered by stride, every axis
/// must step past the whole extent of the axes inside it.
inline void check_not_self_overlapping(std::string_view op, const operand& o) {
  if (o.size() == 0)
    return;  // no elements, nothing to write twice (row-major strides of [3, 0] are {0, 1})
  std::array<std::size_t, 4> axes{};
  std::size_t n = 0;
  for (std::size_t a = 0; a < o.rank; ++a)
    if (o.shape[a] > 1) axes[n++] = a;
  for (std::size_t i = 1; i < n; ++i)  // insertion sort by stride (at most 4 axes)
    for (std::size_t j = i; j > 0 && o.strides[axes[j]] < o.strides[axes[j - 1]]; --j)
      std::swap(axes[j], axes[j - 1]);
  std::size_t span = 1;  // elements covered by the axes seen so far
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t a = axes[i];
    if (o.strides[a] < span)
      fail(op, o.name,
           "strides that give every element its own address (an output cannot broadcast)",
           "shape " + shape_string(o) + " with strides " + strides_string(o));
    span = o.strides[a] * o.shape[a];
  }
}

/// [first, last) byte range a view touches (empty for a view without elements).
inline std::pair<std::uintptr_t, std::uintptr_t> byte_range(const operand& o) {
  if (o.size() == 0 || o.data == nullptr) return {0, 0};
  std::size_t last = 0;
  for (std::size_t a = 0; a < o.rank; ++a) last += (o.shape[a] - 1) * o.strides[a];
  const auto first = reinterpret_cast<std::uintptr_t>(o.data);
  return {first, first + (last + 1) * o.element_size};
}

inline bool same_layout(const operand& x, const operand& y) {
  if (x.data != y.data || x.element_size != y.element_size || x.rank != y.rank) return false;
  for (std::size_t a = 0; a < x.rank; ++a)
    if (x.shape[a] != y.shape[a] || (x.shape[a] > 1 && x.strides[a] != y.strides[a])) return false;
  return true;
}

enum class identical_alias { forbidden, allowed };

/// An output may not share memory with an input that is still read while the output is written.
/// Exactly identical views are allowed where the op reads each element before writing it
/// (in-place).
inline void check_no_overlap(std::string_view op, const operand& out, const operand& in,
                             identical_alias identical = identical_alias::forbidden) {
  if (identical == identical_alias::allowed && same_layout(out, in)) return;
  const auto [o0, o1] = byte_range(out);
  const auto [i0, i1] = byte_range(in);
  if (o0 < o1 && i0 < i1 && o0 < i1 && i0 < o1)
    fail(op, out.name,
         std::string("memory disjoint from ") + std::string(in.name) +
             (identical == identical_alias::allowed ? " (or exactly the same view)" : ""),
         "overlapping byte ranges");
}

/// Optional operands arrive type-erased: check rank and extents in one go.
inline void check_optional_shape(std::string_view op, const operand& o, std::size_t rank,
                                 const std::array<std::size_t, 4>& shape,
                                 std::string_view meaning) {
  operand want = o;
  want.rank = rank;
  want.shape = shape;
  bool ok = o.rank == rank;
  for (std::size_t a = 0; ok && a < rank; ++a) ok = o.shape[a] == shape[a];
  if (!ok)
    fail(op, o.name, "shape " + shape_string(want) + " (" + std::string(meaning) + ")",
         "shape " + shape_string(o));
}

}  // namespace detail
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
