# Driver of the consumer.* tests (run with cmake -P by ctest). Builds and runs one out-of-tree project
# that uses Trellis the way a user would:
#
#   MODE=find_package      install this build tree of Trellis to <WORK_DIR>/prefix, then configure the
#                          find_package/ project with CMAKE_PREFIX_PATH=<WORK_DIR>/prefix
#   MODE=add_subdirectory  configure the add_subdirectory/ project with TRELLIS_SOURCE_DIR=<source tree>
#   MODE=fetchcontent      configure the fetchcontent/ project (FetchContent_Declare(SOURCE_DIR <source
#                          tree>) + FetchContent_MakeAvailable)
#
# then builds the project and runs its program (tests/consumer/main.cpp).
#
# Inputs (-D): MODE, TRELLIS_SOURCE_DIR, TRELLIS_BINARY_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM,
# CXX_COMPILER, BUILD_TYPE, CXX_FLAGS, LINKER_FLAGS (the last two let the sanitizer preset sanitize the
# consumer too). Everything under WORK_DIR is recreated on each run.
cmake_minimum_required(VERSION 3.25)

foreach(var IN ITEMS MODE TRELLIS_SOURCE_DIR TRELLIS_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

# Runs one step; stops the test with the step's name when it fails. Output streams to ctest's log.
function(step name)
  message(STATUS "consumer.${MODE}: ${name}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc COMMAND_ECHO STDOUT)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "consumer.${MODE}: ${name} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(consumer_build "${WORK_DIR}/build")
set(configure_args
  -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}"
  "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}"
  "-DCMAKE_EXE_LINKER_FLAGS=${LINKER_FLAGS}"
  "-DCMAKE_SHARED_LINKER_FLAGS=${LINKER_FLAGS}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()

if(MODE STREQUAL "find_package")
  set(prefix "${WORK_DIR}/prefix")
  step("install Trellis to ${prefix}" "${CMAKE_COMMAND}" --install "${TRELLIS_BINARY_DIR}" --prefix "${prefix}")
  # The project must see the installed copy only: no package registry, no source tree.
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
  set(consumer_source "${CMAKE_CURRENT_LIST_DIR}/find_package")
elseif(MODE STREQUAL "add_subdirectory" OR MODE STREQUAL "fetchcontent")
  list(APPEND configure_args "-DTRELLIS_SOURCE_DIR=${TRELLIS_SOURCE_DIR}")
  set(consumer_source "${CMAKE_CURRENT_LIST_DIR}/${MODE}")
else()
  message(FATAL_ERROR "run_consumer.cmake: MODE must be find_package, add_subdirectory or fetchcontent, got '${MODE}'")
endif()

step("configure" "${CMAKE_COMMAND}" -S "${consumer_source}" -B "${consumer_build}" ${configure_args})
step("build" "${CMAKE_COMMAND}" --build "${consumer_build}" --config "${BUILD_TYPE}" -j 2)
set(exe "${consumer_build}/consumer")
if(NOT EXISTS "${exe}" AND EXISTS "${consumer_build}/${BUILD_TYPE}/consumer")
  set(exe "${consumer_build}/${BUILD_TYPE}/consumer")  # multi-config generators
endif()
step("run" "${exe}")
