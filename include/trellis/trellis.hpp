#pragma once
// Everything: core types, front doors, the reference target, and every backend whose headers are on the
// include path (link trellis::trellis to get them all; trellis::cpu for the CPU target alone).
#include "trellis/core/aligned_allocator.hpp"
#include "trellis/core/bf16.hpp"
#include "trellis/core/error.hpp"
#include "trellis/core/tensor_view.hpp"
#include "trellis/ops/attention.hpp"
#include "trellis/ops/matmul.hpp"
#include "trellis/ops/norm.hpp"
#include "trellis/reference.hpp"
#if __has_include(<trellis/cpu.hpp>)
#include <trellis/cpu.hpp>
#endif
#if __has_include(<trellis/systolic.hpp>)
#include <trellis/systolic.hpp>
#endif
