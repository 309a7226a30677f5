// Compiled with -march=haswell (see tests/CMakeLists.txt).
#include "isa_probe.hpp"

isa_result isa_run_haswell() { return probe(); }
