#pragma once
// Helpers shared by the systolic suites: moving host data in and out of a simulated core, and catching
// the message of a trellis::error.

#include <cstddef>
#include <string>
#include <vector>

#include <trellis/systolic.hpp>

namespace systolic_test {

using namespace trellis::systolic;

/// The message of the trellis::error f() throws, or "<no error>".
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const trellis::error& e) {
    return e.what();
  }
  return "<no error>";
}

/// A new SBUF tile of T holding `host` ([partitions, free] row-major), loaded by DMA (which casts).
template <class T>
tile<T> upload(core_state& nc, const std::vector<float>& host, std::size_t partitions, std::size_t free) {
  auto t = nc.sbuf.tile<T>(partitions, free);
  isa::dma_copy(nc, t, hbm<const float>{{host.data(), {partitions, free}}});
  return t;
}

/// Every element of a region, widened to float, row-major (host-side read; no instruction is issued).
inline std::vector<float> download(const region& a) {
  std::vector<float> v(a.rows * a.cols);
  for (std::size_t r = 0; r < a.rows; ++r)
    for (std::size_t c = 0; c < a.cols; ++c) v[r * a.cols + c] = load_element(a.type, a.element(r, c));
  return v;
}

}  // namespace systolic_test
