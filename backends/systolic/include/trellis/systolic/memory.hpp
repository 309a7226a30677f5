#pragma once
// The NeuronCore's memories: HBM tensors (hbm.hpp), SBUF and PSUM with tiles and pools (on_chip_memory.hpp),
// the regions instructions read and write (region.hpp), and the element types they hold (dtype.hpp).
#include "trellis/systolic/region.hpp"
#include "trellis/systolic/dtype.hpp"
#include "trellis/systolic/hbm.hpp"
#include "trellis/systolic/hbm_memory.hpp"
#include "trellis/systolic/on_chip_memory.hpp"
