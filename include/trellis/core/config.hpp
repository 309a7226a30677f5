#pragma once
// Build-configuration facts every Trellis header agrees on.
//
// Header-only kernels compiled in translation units with different -march flags would share mangled
// names, and the linker would keep one copy for all of them: an AVX-512 body could then run on an
// AVX2 machine. Everything whose code generation depends on the ISA (targets, kernels, validation)
// therefore lives in an inline namespace named after the ISA the translation unit is compiled for,
// exactly as Highway's HWY_NAMESPACE does. Users never spell it: `trellis::cpu` finds it through
// the inline namespace.

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define TRELLIS_ISA_NAMESPACE isa_avx512bf16
#define TRELLIS_ISA_NAME "avx512bf16"
#elif defined(__AVX512F__)
#define TRELLIS_ISA_NAMESPACE isa_avx512
#define TRELLIS_ISA_NAME "avx512"
#elif defined(__AVX2__) && defined(__FMA__) && defined(__AES__) && defined(__PCLMUL__)
#define TRELLIS_ISA_NAMESPACE isa_avx2
#define TRELLIS_ISA_NAME "avx2"
#elif defined(__AVX2__) && defined(__FMA__)
// Highway 1.0.3 picks its AVX2 target only when AES and CLMUL are enabled too (gcc's -march=haswell and
// -mavx2 -mfma leave them out); otherwise its vectors are 128-bit SSSE3 ones, so the provider's kernels
// differ from isa_avx2's and must not share their mangled names. Add -maes -mpclmul for 256-bit Highway.
#define TRELLIS_ISA_NAMESPACE isa_avx2_hwy128
#define TRELLIS_ISA_NAME "avx2-hwy128"
#elif defined(__aarch64__)
#define TRELLIS_ISA_NAMESPACE isa_neon
#define TRELLIS_ISA_NAME "neon"
#else
#define TRELLIS_ISA_NAMESPACE isa_baseline
#define TRELLIS_ISA_NAME "baseline"
#if defined(__x86_64__) && !defined(TRELLIS_ALLOW_BASELINE)
#warning \
    "Trellis: compiled below AVX2; the CPU target will be slow. Pass -march=native (or -mavx2 -mfma), or define TRELLIS_ALLOW_BASELINE to silence this."
#endif
#endif

#define TRELLIS_BEGIN_ISA_NAMESPACE inline namespace TRELLIS_ISA_NAMESPACE {
#define TRELLIS_END_ISA_NAMESPACE }

#if defined(__cpp_exceptions) || defined(__EXCEPTIONS)
#define TRELLIS_HAS_EXCEPTIONS 1
#else
#define TRELLIS_HAS_EXCEPTIONS 0
#endif

namespace trellis {
TRELLIS_BEGIN_ISA_NAMESPACE
/// The instruction set this translation unit's kernels were compiled for ("avx512bf16", "avx2",
/// ...).
inline constexpr const char* isa_name() noexcept { return TRELLIS_ISA_NAME; }
TRELLIS_END_ISA_NAMESPACE
}  // namespace trellis
