#pragma once
// dma_copy: moves a region between HBM and SBUF (or within either), casting dtypes on the way.
// DMA cannot reach PSUM: PSUM is evicted to SBUF with tensor_copy/activation first.
// With {.transpose = true} (v3+: "DMA can transpose 2-byte data during HBM→SBUF transfer"), the transfer
// writes dst[F, P] = src[P, F]ᵀ; both sides hold the same 2-byte dtype (no cast while transposing).

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
  if (options.transpose) {
    if (!nc.spec().dma.transpose_2byte)
      check.fail(std::string("transpose during DMA is not supported") + check.on() + " (" + nc.spec().neuron_core +
                 "; v3+ transposes 2-byte data during HBM -> SBUF transfers)");
    if (src.space != memory_space::hbm || dst.space != memory_space::sbuf)
      check.fail(std::string("a transposing transfer goes HBM -> SBUF, not ") + to_string(src.space) + " -> " +
                 to_string(dst.space) + check.on());
    if (src.element_bytes() != 2 || dst.type != src.type)
      check.fail(std::string("a transposing transfer moves 2-byte data of one dtype, not ") + to_string(src.type) +
                 " -> " + to_string(dst.type) + check.on());
    if (dst.rows != src.cols || dst.cols != src.rows)
      check.fail("dst shape " + detail::shape_string(dst.rows, dst.cols) + " is not the transpose of src shape " +
                 detail::shape_string(src.rows, src.cols));
  } else {
    check.same_shape("dst", dst, "src", src);
  }
  const int queues = static_cast<int>(nc.spec().dma.queues);
  if (options.queue < -1 || options.queue >= queues)
    check.fail("queue " + std::to_string(options.queue) + " is outside 0.." + std::to_string(queues - 1) + check.on() +
               " (or -1 for round-robin)");
  if (nc.functional() && options.transpose) {
    for (std::size_t r = 0; r < src.rows; ++r)
      for (std::size_t c = 0; c < src.cols; ++c) std::memmove(dst.element(c, r), src.element(r, c), 2);
  } else if (nc.functional()) {
    if (dst.type == src.type) {  // bit copy: keeps NaN sentinels' payloads
      for (std::size_t r = 0; r < dst.rows; ++r)
        for (std::size_t c = 0; c < dst.cols; ++c) std::memmove(dst.element(r, c), src.element(r, c), dst.element_bytes());
    } else {
      for (std::size_t r = 0; r < dst.rows; ++r)
        for (std::size_t c = 0; c < dst.cols; ++c) store_element(dst.type, dst.element(r, c), load_element(src.type, src.element(r, c)));
    }
  }
  instruction_record& rec = nc.begin_issue(engine::dma, opcode::dma_copy, where);
  rec.dma_queue = options.queue >= 0 ? options.queue : nc.next_dma_queue();
  nc.add_operand(operand_role::dst, dst, true);
  nc.add_operand(operand_role::src, src, false);
  rec.attributes.transpose = options.transpose;
  nc.finish_issue();
}

}  // namespace trellis::systolic::isa
