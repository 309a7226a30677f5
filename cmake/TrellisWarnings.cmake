# Warnings for Trellis's own code (tests, examples, tools); consumers get none of these.
function(trellis_set_warnings target)
  target_compile_options(${target} INTERFACE
    $<$<CXX_COMPILER_ID:GNU,Clang>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion>
    # gcc 12's AVX-512 intrinsics read _mm512_undefined_*() as their pass-through operand, and once
    # inlined (xsimd's exp and integer shifts do this) every caller gets a "may be used uninitialized"
    # pointing into avx512fintrin.h. Our own code avoids those forms (see gemm/pack.hpp).
    $<$<CXX_COMPILER_ID:GNU>:-Wno-maybe-uninitialized>)
endfunction()
