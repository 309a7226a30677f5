#pragma once
// Umbrella header of the reference target (trellis::core).
#include "trellis/reference/attention.hpp"
#include "trellis/reference/matmul.hpp"
#include "trellis/reference/norm.hpp"
#include "trellis/reference/target.hpp"
