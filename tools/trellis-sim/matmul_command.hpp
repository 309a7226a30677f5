#pragma once
// `trellis-sim matmul` (one run) and `trellis-sim tune matmul` (a sweep of tile policies) on the model's
// matmul kernels (kernels/matmul.hpp). Like the NKI tutorial, A is taken as lhsT [K, M] unless
// --a-layout mk, and B as rhs [K, N] unless --b-layout nk.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <trellis/systolic/kernels/matmul.hpp>

#include "common.hpp"
#include "tune.hpp"

namespace trellis_sim {

namespace kernels = sys::kernels;

inline const char* matmul_usage =
    "usage: trellis-sim matmul --m M --k K --n N [options]\n"
    "       trellis-sim tune matmul --m M --k K --n N [options] [sweep options]\n"
    "  --machine trn1|trn2|trn3      the NeuronCore generation (default trn2)\n"
    "  --dtype bf16|fp8|fp8_e5m2|fp16|fp32   input dtype (default bf16)\n"
    "  --out-dtype fp32|bf16         C's dtype (default fp32)\n"
    "  --a-layout km|mk              A as lhsT [K, M] (default) or [M, K] (transposed on chip)\n"
    "  --b-layout kn|nk              B as [K, N] (default) or [N, K] (transposed on chip)\n"
    "  --activation none|gelu|gelu_erf|silu, --bias, --residual   a fused epilogue\n"
    "  --variant tiled|hoisted|blocked_free|blocked|default       (default: default)\n"
    "  --tiles BM,BN,BK              tiles per block in M, N, K (blocked_free uses BM,BN)\n"
    "  --tile TM,TK,TN               tile sizes (default 128,128,512)\n"
    "  --bufs B                      rotating buffers per input tile/strip/block\n"
    "  --timing-only                 no values (shape-only HBM): fast, for large shapes\n"
    "  --json                        the report as one JSON object\n"
    "  --trace FILE                  a Chrome trace (open in ui.perfetto.dev)\n"
    "tune (always timing-only): --variants LIST, --sweep-tile-n LIST, --sweep-block-m LIST,\n"
    "  --sweep-block-n LIST, --sweep-block-k LIST, --sweep-bufs LIST, --threads T (default: all cores),\n"
    "  --top N (default 20), --csv FILE\n";

/// The problem flags of both commands.
struct matmul_setup {
  std::size_t m, k, n;
  sys::dtype in, out;
  kernels::operand_layout a_layout, b_layout;
  trellis::activation act;
  bool bias, residual;
};

inline matmul_setup read_matmul_setup(arguments& args) {
  matmul_setup s{};
  s.m = args.required_size("m");
  s.k = args.required_size("k");
  s.n = args.required_size("n");
  s.in = dtype_by_name("dtype", args.text("dtype", "bf16"));
  s.out = dtype_by_name("out-dtype", args.text("out-dtype", "fp32"));
  if (s.out != sys::dtype::f32 && s.out != sys::dtype::bf16) throw usage_error("--out-dtype must be fp32 or bf16");
  const std::string a = args.text("a-layout", "km"), b = args.text("b-layout", "kn");
  if (a != "km" && a != "mk") throw usage_error("--a-layout must be km (lhsT [K, M]) or mk ([M, K]), got '" + a + "'");
  if (b != "kn" && b != "nk") throw usage_error("--b-layout must be kn ([K, N]) or nk ([N, K]), got '" + b + "'");
  s.a_layout = a == "km" ? kernels::operand_layout::k_major : kernels::operand_layout::k_minor;
  s.b_layout = b == "kn" ? kernels::operand_layout::k_major : kernels::operand_layout::k_minor;
  const std::string act = args.text("activation", "none");
  if (act == "none") s.act = trellis::activation::none;
  else if (act == "gelu") s.act = trellis::activation::gelu_tanh;
  else if (act == "gelu_erf") s.act = trellis::activation::gelu_erf;
  else if (act == "silu") s.act = trellis::activation::silu;
  else throw usage_error("--activation must be none, gelu, gelu_erf or silu, got '" + act + "'");
  s.bias = args.flag("bias");
  s.residual = args.flag("residual");
  return s;
}

inline kernels::matmul_problem make_problem(const matmul_setup& s, host_tensors& host) {
  kernels::matmul_problem p;
  const bool a_km = s.a_layout == kernels::operand_layout::k_major, b_kn = s.b_layout == kernels::operand_layout::k_major;
  p.a = host.make(s.in, a_km ? s.k : s.m, a_km ? s.m : s.k, false);
  p.b = host.make(s.in, b_kn ? s.k : s.n, b_kn ? s.n : s.k, false);
  p.c = host.make(s.out, s.m, s.n, true);
  p.a_layout = s.a_layout;
  p.b_layout = s.b_layout;
  p.epilogue.act = s.act;
  if (s.bias) p.epilogue.bias = host.make(sys::dtype::f32, 1, s.n, false);
  if (s.residual) p.epilogue.residual = host.make(sys::dtype::f32, s.m, s.n, false);
  return p;
}

inline kernels::matmul_variant variant_by_name(const std::string& name) {
  if (const auto v = kernels::parse_matmul_variant(name)) return *v;
  throw usage_error("--variant must be tiled, hoisted, blocked_free, blocked or default, got '" + name + "'");
}

inline std::string setup_text(const matmul_setup& s, const sys::machine_spec& machine) {
  return "matmul M=" + std::to_string(s.m) + " K=" + std::to_string(s.k) + " N=" + std::to_string(s.n) + " " +
         to_string(s.in) + " -> " + to_string(s.out) + " on " + machine.name;
}

inline std::string policy_text(const kernels::matmul_policy& q) {
  return std::string("variant ") + to_string(q.variant) + ", tiles " + std::to_string(q.tile_m) + "x" +
         std::to_string(q.tile_k) + "x" + std::to_string(q.tile_n) + " (M x K x N), blocks " +
         std::to_string(q.block_m) + "," + std::to_string(q.block_n) + "," + std::to_string(q.block_k) +
         " tiles (M,N,K; 0 = unused), bufs " + std::to_string(q.bufs);
}

/// max |C − A·B| over up to 64 sampled elements, relative to Σ|a||b| of each (a functional run without
/// an epilogue): what a kernel author checks first.
inline double sampled_relative_error(const kernels::matmul_problem& p) {
  const std::size_t m = p.m(), k = p.k(), n = p.n();
  const bool a_km = p.a_layout == kernels::operand_layout::k_major, b_kn = p.b_layout == kernels::operand_layout::k_major;
  const auto at = [](const sys::region& r, std::size_t i, std::size_t j) { return double(sys::load_element(r.type, r.element(i, j))); };
  double worst = 0;
  for (std::size_t s = 0; s < 64; ++s) {
    const std::size_t i = (s * 7919) % m, j = (s * 104729) % n;
    double sum = 0, mag = 0;
    for (std::size_t q = 0; q < k; ++q) {
      const double a = a_km ? at(p.a, q, i) : at(p.a, i, q), b = b_kn ? at(p.b, q, j) : at(p.b, j, q);
      sum += a * b;
      mag += std::fabs(a * b);
    }
    worst = std::max(worst, std::fabs(at(p.c, i, j) - sum) / (mag > 0 ? mag : 1));
  }
  return worst;
}

inline kernels::matmul_policy read_policy(arguments& args) {
  kernels::matmul_policy q;
  q.variant = variant_by_name(args.text("variant", "default"));
  const auto tile = args.sizes("tile", {128, 128, 512});
  const auto blocks = args.sizes("tiles", {0, 0, 0});
  if (tile.size() != 3) throw usage_error("--tile expects TM,TK,TN");
  if (blocks.size() != 3 && blocks.size() != 2) throw usage_error("--tiles expects BM,BN,BK (or BM,BN)");
  q.tile_m = tile[0];
  q.tile_k = tile[1];
  q.tile_n = tile[2];
  q.block_m = blocks[0];
  q.block_n = blocks[1];
  q.block_k = blocks.size() == 3 ? blocks[2] : 0;
  q.bufs = args.size("bufs", 0);
  return q;
}

inline int run_matmul(arguments& args) {
  const matmul_setup s = read_matmul_setup(args);
  const run_flags flags = read_run_flags(args);
  const kernels::matmul_policy requested = read_policy(args);
  args.reject_unknown("matmul");
  host_tensors host(!flags.timing_only);
  const kernels::matmul_problem p = make_problem(s, host);
  const auto core = make_core(*flags.machine, {.functional = !flags.timing_only});
  sys::core_state& nc = *core;
  kernels::matmul(nc, p, requested);
  const kernels::matmul_policy q = kernels::resolve_matmul_policy(requested, *flags.machine, p);
  std::string headline = setup_text(s, *flags.machine) + (flags.timing_only ? " (timing-only)" : "") + "\n" +
                         policy_text(q) + ", " + std::to_string(nc.records().size()) + " instructions";
  std::string fields = "\"op\":\"matmul\",\"m\":" + std::to_string(s.m) + ",\"k\":" + std::to_string(s.k) +
                       ",\"n\":" + std::to_string(s.n) + ",\"variant\":\"" + to_string(q.variant) + "\"" +
                       ",\"instructions\":" + std::to_string(nc.records().size());
  const bool plain = s.act == trellis::activation::none && !s.bias && !s.residual;
  if (!flags.timing_only && plain) {
    const double e = sampled_relative_error(p);
    headline += "\nvalues: max |C - A·B| / Σ|a·b| over 64 sampled elements = " + std::to_string(e);
    fields += ",\"sampled_relative_error\":" + std::to_string(e);
  }
  print_run(nc, flags, headline, fields);
  return 0;
}

inline int tune_matmul(arguments& args) {
  const matmul_setup s = read_matmul_setup(args);
  const sys::machine_spec& machine = machine_by_name(args.text("machine", "trn2"));
  std::vector<kernels::matmul_variant> variants;
  for (std::string list = args.text("variants", "tiled,hoisted,blocked_free,blocked,default"); !list.empty();) {
    const std::size_t comma = std::min(list.find(','), list.size());
    variants.push_back(variant_by_name(list.substr(0, comma)));
    list.erase(0, comma + 1);
  }
  const auto tile_ns = args.sizes("sweep-tile-n", {256, 512, 1024, 2048});
  const auto block_ms = args.sizes("sweep-block-m", {8, 16, 32});
  const auto block_ns = args.sizes("sweep-block-n", {1, 2, 4});
  const auto block_ks = args.sizes("sweep-block-k", {2, 4, 8});
  const auto bufs = args.sizes("sweep-bufs", {1, 2, 3});
  const std::size_t top = args.size("top", 20);
  const std::string csv = args.text("csv", "");
  const unsigned threads = sweep_threads(args);
  args.reject_unknown("tune matmul");

  std::vector<candidate> candidates;
  host_tensors no_memory(false);
  const kernels::matmul_problem shape_problem = make_problem(s, no_memory);
  const auto add = [&](const kernels::matmul_policy& requested) {
    // Listed as resolved, so policies that resolve alike (blocks clipped to the shape) run once.
    const kernels::matmul_policy q = kernels::resolve_matmul_policy(requested, machine, shape_problem);
    add_unique(candidates, {{{"variant", to_string(q.variant)}, {"tile_n", std::to_string(q.tile_n)},
                             {"block_m", std::to_string(q.block_m)}, {"block_n", std::to_string(q.block_n)},
                             {"block_k", std::to_string(q.block_k)}, {"bufs", std::to_string(q.bufs)}},
                            [s, q](sys::core_state& nc) {
                              host_tensors shapes(false);
                              kernels::matmul(nc, make_problem(s, shapes), q);
                            }});
  };
  for (kernels::matmul_variant v : variants)
    for (std::size_t tn : tile_ns)
      for (std::size_t b : bufs) {
        const kernels::matmul_policy base{.variant = v, .tile_n = tn, .bufs = b};
        if (v == kernels::matmul_variant::tiled || v == kernels::matmul_variant::hoisted) {
          add(base);
          continue;
        }
        for (std::size_t bm : block_ms)
          for (std::size_t bn : block_ns) {
            if (v == kernels::matmul_variant::blocked_free) {
              add({.variant = v, .tile_n = tn, .block_m = bm, .block_n = bn, .bufs = b});
              continue;
            }
            for (std::size_t bk : block_ks)
              add({.variant = v, .tile_n = tn, .block_m = bm, .block_n = bn, .block_k = bk, .bufs = b});
          }
      }
  const auto results = sweep(machine, candidates, threads);
  report_sweep("tune " + setup_text(s, machine) + " (timing-only, " + std::to_string(threads) + " threads)", candidates,
               results, top, csv);
  return 0;
}

}  // namespace trellis_sim
