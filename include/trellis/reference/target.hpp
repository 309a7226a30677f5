#pragma once
// trellis::reference — the oracle target: plain loops, fp64 accumulation, no cleverness.
// Every other target is tested against it, so its code must be easy to trust by reading.

#include "trellis/core/config.hpp"

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
struct reference {};
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
