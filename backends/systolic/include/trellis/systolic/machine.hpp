#pragma once
// Machine configs: every number the NeuronCore model uses, as plain constexpr data.
//
// A machine is any type with a `static constexpr machine_spec spec` (the `machine` concept checks it):
//
//   struct my_trn2 {  // a what-if: twice the SBUF
//     static constexpr machine_spec spec = [] { auto s = trn2::spec; s.name = "my_trn2";
//                                               s.memory.sbuf_bytes_per_partition *= 2; return s; }();
//   };
//
// Sources (cited per field as [T:section]): ../shared/trainium.md, which condenses the public AWS Neuron
// docs (NKI architecture guides for Trn1/Trn2/Trn3, NKI ISA reference, performance and DMA guides). Where
// AWS pages disagree, the field holds the chosen value and its comment names the alternative.

#include <concepts>
#include <cstddef>

namespace trellis::systolic {

/// Engine clocks in GHz [T:Generations].
struct engine_clocks {
  double tensor_ghz;
  double vector_ghz;
  double scalar_ghz;
  double gpsimd_ghz;
};

/// The Tensor Engine's PE array and the nc_matmul operand limits [T:Engines, T:Memories and tile rules].
struct matmul_limits {
  std::size_t pe_rows;                      ///< contraction K on partitions: K ≤ pe_rows
  std::size_t pe_columns;                   ///< stationary free size M ≤ pe_columns
  std::size_t moving_free_max_fp32_out;     ///< N ≤ this with fp32 PSUM output
  std::size_t moving_free_max_bf16_out;     ///< N ≤ this with bf16 PSUM output; 0: bf16 output not supported
  std::size_t fp32_rate_divisor;            ///< fp32 inputs run at 1/this of the bf16 rate
  std::size_t fp8_rate_multiplier;          ///< fp8 inputs run at this × the bf16 rate
  std::size_t load_stationary_speedup;      ///< LoadStationary is up to this × faster than a matmul of equal free size
  bool bit_exact_transpose;                 ///< a transpose mode that keeps the dtype (v3+); else identity matmul into fp32
};

/// SBUF and PSUM geometry [T:Generations, T:Memories and tile rules].
struct memory_geometry {
  std::size_t partitions;                   ///< both SBUF and PSUM
  std::size_t sbuf_bytes_per_partition;
  std::size_t psum_bytes_per_partition;
  std::size_t psum_banks;                   ///< one accumulation group in flight per bank
  std::size_t psum_bank_bytes;              ///< per partition
  std::size_t psum_tile_max_bytes;          ///< per partition: one bank on v2/v3 (a matmul output fits one bank)
  constexpr std::size_t sbuf_bytes() const noexcept { return partitions * sbuf_bytes_per_partition; }
  constexpr std::size_t psum_bytes() const noexcept { return partitions * psum_bytes_per_partition; }
};

/// Free-axis and access limits of the compute engines [T:Memories and tile rules, T:Instruction cost model].
struct access_limits {
  std::size_t engine_free_max_sbuf;         ///< Vector/Scalar/GpSimd free elements per partition from SBUF
  std::size_t engine_free_max_psum;         ///< ... from PSUM
  std::size_t bn_stats_free_max;
  std::size_t free_pattern_dims;            ///< free-axis access patterns up to this many dimensions
  std::size_t vector_transpose_max;         ///< Vector Engine transposes blocks up to this × this
  double access_start_cycles;               ///< ≈ cost to start an SBUF/PSUM access
  std::size_t fast_stride_max_bytes;        ///< an innermost stride above this halves interface bandwidth
  double min_initiation_cycles;             ///< minimum initiation interval of any instruction
  double static_overhead_cycles;            ///< tiny or serially dependent Vector/Scalar instructions
};

/// DMA engines, queues, bandwidths and fixed costs [T:Generations, T:DMA].
struct dma_spec {
  std::size_t engines;
  std::size_t queues;                       ///< model choice: one queue per engine (AWS publishes no queue count)
  double engine_bytes_per_ns;               ///< per engine, from the DMA bandwidth tables (alternative below)
  double engine_bytes_per_ns_alt;           ///< the other AWS figure (≈ 27 / 38 GB/s per engine); not used
  double fixed_latency_ns;                  ///< semaphore to start of a cross-engine transfer (descriptor set-up)
  double hw_dma_instruction_ns;             ///< per hardware-generated DMA instruction (published for v3 only); not used
  bool transpose_2byte = false;             ///< v3+: "can transpose 2-byte data during HBM→SBUF transfer"
  constexpr double bytes_per_ns() const noexcept { return engine_bytes_per_ns * double(engines); }
  /// Per-packet overhead (ns an engine is held per contiguous run, on top of bytes / bandwidth). AWS does
  /// not publish it; derived from the saturation curve [T:DMA] ("≥ 2 KiB approaches peak; ≥ 4 KiB
  /// saturates"): a packet of B bytes runs at efficiency B / (B + overhead·bandwidth). Reading "saturates"
  /// as ≥ 95 % of peak at B = 4 KiB gives overhead·bandwidth = 4096 · (1/0.95 − 1) = 4096/19 ≈ 215.6 bytes,
  /// i.e. 12.7 / 9.4 / 6.5 ns at 17 / 23 / 33 B/ns. Check against the rest of the curve: 2 KiB → 90.5 %
  /// ("approaches peak"), 256 B → 54 % and 64 B → 23 % ("overhead-bound"). See docs/systolic-model.md.
  constexpr double packet_overhead_ns() const noexcept { return packet_overhead_bytes_equivalent / engine_bytes_per_ns; }
  static constexpr double packet_saturation_bytes = 4096;   ///< "≥ 4 KiB saturates the engines"
  static constexpr double packet_saturation_efficiency = 0.95;  ///< model reading of "saturates"
  static constexpr double packet_overhead_bytes_equivalent =
      packet_saturation_bytes * (1.0 / packet_saturation_efficiency - 1.0);
};

/// HBM of the chip, shared by its cores [T:Generations].
struct hbm_spec {
  double gib_per_chip;
  double bytes_per_ns_per_chip;             ///< 1 GB/s = 1 byte/ns
  std::size_t cores_per_chip;
  constexpr double bytes_per_ns_per_core() const noexcept { return bytes_per_ns_per_chip / double(cores_per_chip); }
};

/// Published throughput per core, in TFLOPS [T:Generations]; a cross-check of clocks × array, not an input.
struct published_rates {
  double tensor_bf16_tflops;
  double tensor_fp8_tflops;
  double tensor_fp32_tflops;
  double vector_fp32_tflops;
  double scalar_fp32_tflops;
};

/// Which engines may touch a memory at the same time [T:Memories and tile rules] (timing rules; part 2).
struct port_rules {
  bool vector_gpsimd_share_sbuf;            ///< v2: Vector and GpSimd cannot use SBUF at the same time
  bool vector_scalar_share_psum;            ///< v2: Vector and Scalar cannot use PSUM at the same time
};

/// Performance features that differ by generation [T:Instruction cost model].
struct perf_features {
  bool vector_perf_modes = false;           ///< v3+: copy/tensor_scalar 4× (bf16 SBUF→SBUF contiguous) or 2×; tensor_tensor 2× (bf16 SBUF)
  bool tensor_throttling = false;           ///< v3/v4: the Tensor Engine starts at ≈ 50 % and ramps up (timing option; off by default)
  double throttle_start_fraction = 0.5;     ///< "starts at ≈ 50 % of peak"
  double throttle_ramp_ns = 3000;           ///< "ramps to full over ≈ 3 µs of sustained work"
  double throttle_window_ns = 3000;         ///< "re-throttles if utilisation drops below 50 % over a ≈ 3 µs window"
};

struct machine_spec {
  const char* name;                         ///< used in every error message ("... on trn2")
  const char* neuron_core;                  ///< the NeuronCore generation
  bool provisional;                         ///< figures inferred or poorly documented (Trn3)
  engine_clocks clocks;
  matmul_limits matmul;
  memory_geometry memory;
  access_limits access;
  dma_spec dma;
  hbm_spec hbm;
  published_rates rates;
  port_rules ports;
  perf_features perf{};
};

namespace detail {
/// Limits the model itself relies on (partition-start rules assume 128 partitions in quadrants of 32).
constexpr bool spec_is_consistent(const machine_spec& s) noexcept {
  return s.name != nullptr && s.memory.partitions == 128 && s.matmul.pe_rows <= s.memory.partitions &&
         s.matmul.pe_columns <= s.memory.partitions && s.memory.psum_banks * s.memory.psum_bank_bytes == s.memory.psum_bytes_per_partition &&
         s.memory.psum_tile_max_bytes >= s.memory.psum_bank_bytes &&
         s.memory.psum_tile_max_bytes <= s.memory.psum_bytes_per_partition &&
         s.matmul.moving_free_max_fp32_out * 4 <= s.memory.psum_tile_max_bytes &&
         s.matmul.moving_free_max_bf16_out * 2 <= s.memory.psum_tile_max_bytes && s.dma.queues > 0 &&
         s.access.bn_stats_free_max > 0 && s.clocks.tensor_ghz > 0 && s.clocks.vector_ghz > 0 &&
         s.clocks.scalar_ghz > 0 && s.clocks.gpsimd_ghz > 0;
}
}  // namespace detail

/// A machine type: `M::spec` is a constexpr machine_spec the model can run with.
template <class M>
concept machine = requires {
  { M::spec } -> std::convertible_to<machine_spec>;
  requires detail::spec_is_consistent(M::spec);
};

// Numbers shared by all three generations [T:Generations, T:Memories and tile rules, T:Instruction cost model].
namespace detail {
inline constexpr std::size_t kib = 1024;
inline constexpr access_limits common_access{
    .engine_free_max_sbuf = 64 * kib,  // "Vector/Scalar free ≤ 64K elements from SBUF"
    .engine_free_max_psum = 4 * kib,   // "... 4K from PSUM"
    .bn_stats_free_max = 512,
    .free_pattern_dims = 4,
    .vector_transpose_max = 32,        // "32×32 transposes" on the Vector Engine
    .access_start_cycles = 60,
    .fast_stride_max_bytes = 16,
    .min_initiation_cycles = 64,
    .static_overhead_cycles = 100,
};
}  // namespace detail

/// Trn1: NeuronCore-v2, 2 cores per chip.
struct trn1 {
  static constexpr machine_spec spec{
      .name = "trn1",
      .neuron_core = "NeuronCore-v2",
      .provisional = false,
      .clocks = {.tensor_ghz = 2.8, .vector_ghz = 1.12, .scalar_ghz = 1.4, .gpsimd_ghz = 1.4},
      .matmul = {.pe_rows = 128, .pe_columns = 128,
                 .moving_free_max_fp32_out = 512,  // one 2 KiB PSUM bank of fp32
                 .moving_free_max_bf16_out = 0,    // v2/v3 matmuls write fp32 PSUM only
                 .fp32_rate_divisor = 4,           // 23 vs 92 TFLOPS
                 .fp8_rate_multiplier = 1,         // "FP8 per core = BF16" on Trn1
                 .load_stationary_speedup = 4,
                 .bit_exact_transpose = false},    // v2 transposes with an identity matmul
      .memory = {.partitions = 128, .sbuf_bytes_per_partition = 192 * detail::kib,  // 24 MiB
                 .psum_bytes_per_partition = 16 * detail::kib, .psum_banks = 8, .psum_bank_bytes = 2 * detail::kib,
                 .psum_tile_max_bytes = 2 * detail::kib},
      .access = detail::common_access,
      .dma = {.engines = 16, .queues = 16,
              .engine_bytes_per_ns = 17,           // DMA table: 272 GB/s per core / 16
              .engine_bytes_per_ns_alt = 27,       // "≈ 27 GB/s per engine" in other AWS pages
              .fixed_latency_ns = 1300,
              .hw_dma_instruction_ns = 600},       // published for v3; assumed the same on v2
      .hbm = {.gib_per_chip = 32, .bytes_per_ns_per_chip = 820, .cores_per_chip = 2},  // ≈ 410 GB/s per core
      .rates = {.tensor_bf16_tflops = 92, .tensor_fp8_tflops = 92, .tensor_fp32_tflops = 23,
                .vector_fp32_tflops = 2.3, .scalar_fp32_tflops = 2.9},
      .ports = {.vector_gpsimd_share_sbuf = true, .vector_scalar_share_psum = true},
  };
};

/// Trn2: NeuronCore-v3, 8 cores per chip. Lifts v2's shared-port rules (arbitration instead).
struct trn2 {
  static constexpr machine_spec spec{
      .name = "trn2",
      .neuron_core = "NeuronCore-v3",
      .provisional = false,
      .clocks = {.tensor_ghz = 2.4, .vector_ghz = 0.96, .scalar_ghz = 1.2, .gpsimd_ghz = 1.2},
      .matmul = {.pe_rows = 128, .pe_columns = 128,
                 .moving_free_max_fp32_out = 512,  // one 2 KiB PSUM bank of fp32
                 .moving_free_max_bf16_out = 0,
                 .fp32_rate_divisor = 4,
                 .fp8_rate_multiplier = 2,         // 158 TFLOPS, double-row mode
                 .load_stationary_speedup = 4,
                 .bit_exact_transpose = true},
      .memory = {.partitions = 128, .sbuf_bytes_per_partition = 224 * detail::kib,  // 28 MiB
                 .psum_bytes_per_partition = 16 * detail::kib, .psum_banks = 8, .psum_bank_bytes = 2 * detail::kib,
                 .psum_tile_max_bytes = 2 * detail::kib},
      .access = detail::common_access,
      .dma = {.engines = 16, .queues = 16,
              .engine_bytes_per_ns = 23,           // DMA table: 368 GB/s per core / 16
              .engine_bytes_per_ns_alt = 27,
              .fixed_latency_ns = 1300,
              .hw_dma_instruction_ns = 600,
              .transpose_2byte = true},
      .hbm = {.gib_per_chip = 96,
              .bytes_per_ns_per_chip = 2900,       // AWS gives 2.9–3 TB/s; the lower figure
              .cores_per_chip = 8},
      .rates = {.tensor_bf16_tflops = 79, .tensor_fp8_tflops = 158, .tensor_fp32_tflops = 20,
                .vector_fp32_tflops = 1.0, .scalar_fp32_tflops = 1.2},
      .ports = {.vector_gpsimd_share_sbuf = false, .vector_scalar_share_psum = false},
      .perf = {.vector_perf_modes = true, .tensor_throttling = true},
  };
};

/// Trn3: NeuronCore-v4, 8 cores per chip. PROVISIONAL: the least documented generation; the SBUF size
/// per partition is inferred (32 MiB / 128), and the moving-free limits come from one AWS page.
struct trn3 {
  static constexpr machine_spec spec{
      .name = "trn3",
      .neuron_core = "NeuronCore-v4",
      .provisional = true,
      .clocks = {.tensor_ghz = 2.4, .vector_ghz = 1.2, .scalar_ghz = 1.2, .gpsimd_ghz = 1.2},
      .matmul = {.pe_rows = 128, .pe_columns = 128,
                 .moving_free_max_fp32_out = 4096,  // v4: "N may reach 4096 (fp32 out)"
                 .moving_free_max_bf16_out = 8192,  // "... / 8192 (bf16 out)"
                 .fp32_rate_divisor = 4,
                 .fp8_rate_multiplier = 4,          // 315 TFLOPS MXFP8/MXFP4
                 .load_stationary_speedup = 4,
                 .bit_exact_transpose = true},
      .memory = {.partitions = 128, .sbuf_bytes_per_partition = 256 * detail::kib,  // 32 MiB, per partition inferred
                 .psum_bytes_per_partition = 16 * detail::kib, .psum_banks = 8, .psum_bank_bytes = 2 * detail::kib,
                 .psum_tile_max_bytes = 16 * detail::kib},  // inferred: N = 4096 fp32 spans all 8 banks
      .access = detail::common_access,
      .dma = {.engines = 16, .queues = 16,
              .engine_bytes_per_ns = 33,           // DMA table: 528 GB/s per core / 16
              .engine_bytes_per_ns_alt = 38,       // "≈ 38 GB/s per engine (v4)" in other AWS pages
              .fixed_latency_ns = 1300,
              .hw_dma_instruction_ns = 600,        // published for v3; assumed the same
              .transpose_2byte = true},            // a v3 feature; assumed on v4
      .hbm = {.gib_per_chip = 144,
              .bytes_per_ns_per_chip = 4700,       // AWS gives 4.7–4.9 TB/s; the lower figure
              .cores_per_chip = 8},
      .rates = {.tensor_bf16_tflops = 79, .tensor_fp8_tflops = 315, .tensor_fp32_tflops = 20,
                .vector_fp32_tflops = 1.2, .scalar_fp32_tflops = 1.2},
      .ports = {.vector_gpsimd_share_sbuf = false, .vector_scalar_share_psum = false},
      .perf = {.vector_perf_modes = true,   // published for v3; assumed on v4 (provisional)
               .tensor_throttling = true},
  };
};

static_assert(machine<trn1> && machine<trn2> && machine<trn3>, "the built-in machines must satisfy `machine`");

}  // namespace trellis::systolic
