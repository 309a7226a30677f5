// Compiled with -march=haswell and without -maes (see tests/CMakeLists.txt): Highway 1.0.3 then uses its
// 128-bit SSSE3 target, and Trellis puts these kernels in their own ISA namespace.
#include "isa_probe.hpp"

isa_result isa_run_haswell_hwy128() { return probe(); }
