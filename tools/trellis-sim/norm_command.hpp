#pragma once
// `trellis-sim layernorm|rmsnorm` (one run) and `trellis-sim tune layernorm|rmsnorm` on the model's norm
// kernels (kernels/norm.hpp): x [rows, hidden] normalised over hidden, with γ (and β for layernorm)
// unless --no-affine, an optional fused residual, the report, JSON and trace as for matmul.

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <trellis/systolic/kernels/norm.hpp>

#include "common.hpp"
#include "tune.hpp"

namespace trellis_sim {

inline const char* norm_usage =
    "usage: trellis-sim layernorm|rmsnorm --rows R --hidden H [options]\n"
    "       trellis-sim tune layernorm|rmsnorm --rows R --hidden H [options] [sweep options]\n"
    "  --machine trn1|trn2|trn3, --dtype fp32|bf16 (x), --out-dtype fp32|bf16 (y; default: x's)\n"
    "  --no-affine (no γ/β), --residual (y = norm(x + r)), --residual-out (also write x + r)\n"
    "  --rows-per-tile P, --bufs B, --stats-chunk C    the tile policy (default: the front door's)\n"
    "  --timing-only, --json, --trace FILE\n"
    "tune: --sweep-rows-per-tile LIST, --sweep-bufs LIST, --sweep-stats-chunk LIST, --threads T, --top N, --csv FILE\n";

struct norm_setup {
  sys::kernels::norm_kind kind;
  std::size_t rows, hidden;
  sys::dtype x, y;
  bool affine, residual, residual_out;
};

inline norm_setup read_norm_setup(arguments& args, sys::kernels::norm_kind kind) {
  norm_setup s{};
  s.kind = kind;
  s.rows = args.required_size("rows");
  s.hidden = args.required_size("hidden");
  std::tie(s.x, s.y) = read_f32_bf16_dtypes(args, "fp32", "norms take fp32 or bf16 x and y");
  s.affine = !args.flag("no-affine");
  s.residual = args.flag("residual");
  s.residual_out = args.flag("residual-out");
  if (s.residual_out && !s.residual) throw usage_error("--residual-out needs --residual");
  return s;
}

/// Runs the norm kernel of `s` on `nc` with `policy` (null: the front door's default policy).
inline void run_norm(sys::core_state& nc, const norm_setup& s, const sys::kernels::norm_policy* policy) {
  host_tensors host(nc.functional());
  sys::kernels::norm_operands extra;
  if (s.affine) extra.gamma = host.make(sys::dtype::f32, 1, s.hidden, false);
  if (s.affine && s.kind == sys::kernels::norm_kind::layer) extra.beta = host.make(sys::dtype::f32, 1, s.hidden, false);
  if (s.residual) extra.residual = host.make(s.x, s.rows, s.hidden, false);
  if (s.residual_out) extra.residual_out = host.make(s.x, s.rows, s.hidden, true);
  const sys::region x = host.make(s.x, s.rows, s.hidden, false), y = host.make(s.y, s.rows, s.hidden, true);
  const sys::kernels::norm_policy q =
      policy ? *policy : sys::kernels::default_norm_policy(nc, s.kind, s.x, extra, s.hidden);
  const auto typed = [&]<class TX, class TY>() {
    const auto xt = typed_hbm<const TX>(x);
    const auto yt = typed_hbm<TY>(y);
    with_machine_core(nc, [&](auto& core) {
      if (s.kind == sys::kernels::norm_kind::layer) return sys::kernels::layernorm_tiled(core, xt, yt, extra, q);
      sys::kernels::rmsnorm_tiled(core, xt, yt, extra, q);
    });
  };
  const bool bf16_x = s.x == sys::dtype::bf16, bf16_y = s.y == sys::dtype::bf16;
  if (bf16_x && bf16_y) typed.template operator()<trellis::bf16, trellis::bf16>();
  else if (bf16_x) typed.template operator()<trellis::bf16, float>();
  else if (bf16_y) typed.template operator()<float, trellis::bf16>();
  else typed.template operator()<float, float>();
}

inline const char* norm_name(sys::kernels::norm_kind kind) {
  return kind == sys::kernels::norm_kind::layer ? "layernorm" : "rmsnorm";
}

inline std::string norm_setup_text(const norm_setup& s, const sys::machine_spec& machine) {
  return std::string(norm_name(s.kind)) + " rows=" + std::to_string(s.rows) + " hidden=" + std::to_string(s.hidden) +
         " " + to_string(s.x) + " -> " + to_string(s.y) + (s.residual ? " +residual" : "") + " on " + machine.name;
}

inline int run_norm_command(arguments& args, sys::kernels::norm_kind kind) {
  const norm_setup s = read_norm_setup(args, kind);
  const run_flags flags = read_run_flags(args);
  std::optional<sys::kernels::norm_policy> policy;
  if (args.has("rows-per-tile") || args.has("bufs") || args.has("stats-chunk")) {
    sys::kernels::norm_policy q;
    q.rows_per_tile = args.size("rows-per-tile", q.rows_per_tile);
    q.bufs = args.size("bufs", q.bufs);
    q.stats_chunk = args.size("stats-chunk", q.stats_chunk);
    policy = q;
  }
  args.reject_unknown(norm_name(kind));
  const auto nc = make_core(*flags.machine, {.functional = !flags.timing_only});
  run_norm(*nc, s, policy ? &*policy : nullptr);
  const std::string fields = std::string("\"op\":\"") + norm_name(kind) + "\",\"rows\":" + std::to_string(s.rows) +
                             ",\"hidden\":" + std::to_string(s.hidden) +
                             ",\"instructions\":" + std::to_string(nc->records().size());
  print_run(*nc, flags,
            norm_setup_text(s, *flags.machine) + (flags.timing_only ? " (timing-only)" : "") + ", " +
                std::to_string(nc->records().size()) + " instructions",
            fields);
  return 0;
}

inline int tune_norm(arguments& args, sys::kernels::norm_kind kind) {
  const norm_setup s = read_norm_setup(args, kind);
  const sys::machine_spec& machine = machine_by_name(args.text("machine", "trn2"));
  const auto rows_per_tile = args.sizes("sweep-rows-per-tile", {32, 64, 128});
  const auto bufs = args.sizes("sweep-bufs", {1, 2, 3, 4});
  const auto chunks = args.sizes("sweep-stats-chunk", {128, 256, 512, 1024});
  const std::size_t top = args.size("top", 20);
  const std::string csv = args.text("csv", "");
  const unsigned threads = sweep_threads(args);
  args.reject_unknown(std::string("tune ") + norm_name(kind));
  std::vector<candidate> candidates;
  for_each_combination({rows_per_tile, bufs, chunks}, [&](const std::vector<std::size_t>& v) {
    sys::kernels::norm_policy q;
    q.rows_per_tile = v[0];
    q.bufs = v[1];
    q.stats_chunk = v[2];
    add_unique(candidates, {{{"rows_per_tile", std::to_string(v[0])}, {"bufs", std::to_string(v[1])},
                             {"stats_chunk", std::to_string(v[2])}},
                            [s, q](sys::core_state& nc) { run_norm(nc, s, &q); }});
  });
  const auto results = sweep(machine, candidates, threads);
  report_sweep("tune " + norm_setup_text(s, machine) + " (timing-only, " + std::to_string(threads) + " threads)",
               candidates, results, top, csv);
  return 0;
}

}  // namespace trellis_sim
