#pragma once
// Umbrella header of the CPU target (link trellis::cpu): trellis::cpu, basic_cpu<Provider> and every op.
#include "trellis/cpu/attention.hpp"
#include "trellis/cpu/matmul.hpp"
#include "trellis/cpu/packed_matrix.hpp"
#include "trellis/cpu/norm.hpp"
#include "trellis/cpu/target.hpp"
#include "trellis/ops/attention.hpp"
#include "trellis/ops/matmul.hpp"
#include "trellis/ops/norm.hpp"
