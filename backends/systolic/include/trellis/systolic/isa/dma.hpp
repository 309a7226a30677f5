#pragma once
// dma_copy: moves a region between HBM and SBUF (or within either), casting dtypes on the way.
// DMA cannot reach PSUM: PSUM is evicted to SBUF with tensor_copy/activation first.

#include <cstring>
#include <source_location>

#include "trellis/systolic/isa/checks.hpp"
#include "trellis/systolic/isa/options.hpp"

namespace trellis::systolic::isa {

/// dst ← src, element by element (rows × cols), rounding to dst's dtype when the dtypes differ.
inline void dma_copy(core_state& nc, const region& dst, const region& src, dma_options options = {},
                     std::source_location where = std::source_location::current()) {
  const detail::checker check{"dma_copy", nc};
  check.operand("dst", dst, engine::dma, true);
  check.operand("src", src, engine::dma, false);
  check.same_shape("dst", dst, "src", src);
  const int queues = static_cast<int>(nc.spec().dma.queues);
  if (options.queue < -1 || options.queue >= queues)
    check.fail("queue " + std::to_string(options.queue) + " is outside 0.." + std::to_string(queues - 1) + check.on() +
               " (or -1 for round-robin)");
  if (nc.functional()) {
    if (dst.type == src.type) {  // bit copy: keeps NaN sentinels' payloads
      for (std::size_t r = 0; r < dst.rows; ++r)
        for (std::size_t c = 0; c < dst.cols; ++c) std::memmove(dst.element(r, c), src.element(r, c), dst.element_bytes());
    } else {
      for (std::size_t r = 0; r < dst.rows; ++r)
        for (std::size_t c = 0; c < dst.cols; ++c) store_element(dst.type, dst.element(r, c), load_element(src.type, src.element(r, c)));
    }
  }
  instruction_record rec = detail::record(engine::dma, opcode::dma_copy, where);
  rec.dma_queue = options.queue >= 0 ? options.queue : nc.next_dma_queue();
  rec.operands = {describe("dst", dst, true), describe("src", src, false)};
  nc.issue(std::move(rec));
}

}  // namespace trellis::systolic::isa
