# Finds the CPU target's dependencies: Highway, xsimd and OpenMP (trellisConfig.cmake.in mirrors this list).
find_package(hwy REQUIRED)
find_package(xsimd REQUIRED)
find_package(OpenMP REQUIRED COMPONENTS CXX)
include(TrellisXsimdFix)
