#pragma once
// The ISA test's shared declarations (no Trellis headers: isa_test.cpp is built without -march).

#include <cstddef>
#include <string>
#include <vector>

struct isa_result {
  std::string isa;            // trellis::isa_name() in the probing translation unit
  std::vector<float> c;       // fp32 matmul on trellis::cpu (the default provider)
  std::vector<float> c_bf16;  // bf16 matmul on basic_cpu<xsimd_provider>
  std::vector<float> norm;    // layernorm (no γ, β) of isa_norm_rows rows of isa_norm_hidden, unaligned rows
  const void* kernel =
      nullptr;  // &op_impl<matmul_fn, cpu>::run<float, float, float> as this TU sees it
};

inline constexpr std::size_t isa_m = 37, isa_k = 70, isa_n = 29;
inline float isa_a_value(std::size_t i) {
  return float(int(i * 7 % 9) - 4);
}  // small integers: exact sums
inline float isa_b_value(std::size_t i) { return float(int(i * 5 % 7) - 3); }

inline constexpr std::size_t isa_norm_rows = 5, isa_norm_hidden = 29;  // 29: vector tails at 4, 8 and 16 lanes
inline float isa_norm_value(std::size_t i) { return float(int(i * 11 % 13) - 6) * 0.25f; }

isa_result isa_run_haswell();  // isa_haswell.cpp, -march=haswell
isa_result isa_run_native();   // isa_native.cpp, -march=native
isa_result isa_run_haswell_hwy128();  // isa_haswell_hwy128.cpp, -march=haswell without AES: 128-bit Highway
