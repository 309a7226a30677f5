// Compiled with -march=native (see tests/CMakeLists.txt).
#include "isa_probe.hpp"

isa_result isa_run_native() { return probe(); }
