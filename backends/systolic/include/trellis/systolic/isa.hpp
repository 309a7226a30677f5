#pragma once
// The NKI-like instruction set of the NeuronCore model: free functions in trellis::systolic::isa that take
// the core first and the destination next, as NKI's ISA does:
//
//   using namespace trellis::systolic::isa;
//   dma_copy(nc, a, lhsT.tile(k, m, 128, 128));                 // HBM → SBUF
//   nc_matmul(nc, acc, a, b, {.accumulate = k > 0});            // PSUM [M, N] (+)= aᵀ·b
//   tensor_copy(nc, res, acc);                                  // evict PSUM → SBUF
//
// Each instruction validates its operands against the machine (memories per engine, partition and free
// limits, partition-start rule, dtypes), throws trellis::error naming the instruction, the rule, the
// machine and the value, computes when the core is functional, and records itself (records.hpp).

#include "trellis/systolic/isa/dma.hpp"
#include "trellis/systolic/isa/gpsimd_engine.hpp"
#include "trellis/systolic/isa/options.hpp"
#include "trellis/systolic/isa/scalar_engine.hpp"
#include "trellis/systolic/isa/tensor_engine.hpp"
#include "trellis/systolic/isa/vector_engine.hpp"
