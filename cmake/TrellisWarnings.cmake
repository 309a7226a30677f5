# Warnings for Trellis's own code (tests, examples, tools); consumers get none of these.
function(trellis_set_warnings target)
  target_compile_options(${target} INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion>)
endfunction()
