# Install and export rules: `cmake --install <build>` gives a prefix that find_package(trellis) accepts.
#
#   <prefix>/include/trellis/...                   headers of include/ and backends/*/include/
#   <prefix>/<libdir>/cmake/trellis/
#     trellisConfig.cmake, trellisConfigVersion.cmake, trellisTargets.cmake, TrellisXsimdFix.cmake
#
# Exported: trellis::core, trellis::cpu, trellis::trellis (and trellis::systolic once it exists). The
# interface carries include directories, cxx_std_20, the dependencies (Highway, xsimd, OpenMP) and
# TRELLIS_DEFAULT_SIMD_XSIMD when configured with TRELLIS_SIMD=xsimd — never -march or warning flags:
# trellis_own_flags is for Trellis's own binaries and stays out of the export set.
include(CMakePackageConfigHelpers)

set(TRELLIS_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/trellis"
    CACHE STRING "Where trellisConfig.cmake is installed, relative to the prefix")
mark_as_advanced(TRELLIS_INSTALL_CMAKEDIR)

set(_trellis_export_targets trellis_core trellis_cpu trellis_trellis)
if(TARGET trellis_systolic)
  list(APPEND _trellis_export_targets trellis_systolic)
endif()
install(TARGETS ${_trellis_export_targets} EXPORT trellisTargets)

set(_trellis_header_dirs "${PROJECT_SOURCE_DIR}/include/" "${PROJECT_SOURCE_DIR}/backends/cpu/include/")
if(EXISTS "${PROJECT_SOURCE_DIR}/backends/systolic/include")
  list(APPEND _trellis_header_dirs "${PROJECT_SOURCE_DIR}/backends/systolic/include/")
endif()
install(DIRECTORY ${_trellis_header_dirs}
        DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp" PATTERN "*.h")

install(EXPORT trellisTargets
        NAMESPACE trellis::
        DESTINATION "${TRELLIS_INSTALL_CMAKEDIR}")

configure_package_config_file(
  "${PROJECT_SOURCE_DIR}/cmake/trellisConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/trellisConfig.cmake"
  INSTALL_DESTINATION "${TRELLIS_INSTALL_CMAKEDIR}")
# Header-only: one package serves 32- and 64-bit consumers alike.
write_basic_package_version_file(
  "${PROJECT_BINARY_DIR}/trellisConfigVersion.cmake"
  VERSION "${PROJECT_VERSION}"
  COMPATIBILITY SameMajorVersion
  ARCH_INDEPENDENT)

install(FILES
          "${PROJECT_BINARY_DIR}/trellisConfig.cmake"
          "${PROJECT_BINARY_DIR}/trellisConfigVersion.cmake"
          "${PROJECT_SOURCE_DIR}/cmake/TrellisXsimdFix.cmake"
        DESTINATION "${TRELLIS_INSTALL_CMAKEDIR}")

unset(_trellis_export_targets)
unset(_trellis_header_dirs)
