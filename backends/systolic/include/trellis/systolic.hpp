#pragma once
// Umbrella header of the systolic target (link trellis::systolic): the model of one Trainium NeuronCore —
// machine configs, memories, the NKI-like ISA, the instruction records and timing, and the kernels.
#include "trellis/systolic/attention.hpp"
#include "trellis/systolic/core.hpp"
#include "trellis/systolic/isa.hpp"
#include "trellis/systolic/kernels/matmul.hpp"
#include "trellis/systolic/machine.hpp"
#include "trellis/systolic/matmul.hpp"
#include "trellis/systolic/memory.hpp"
#include "trellis/systolic/norm.hpp"
#include "trellis/systolic/records.hpp"
