#pragma once
// `trellis-sim attention` (one run) and `trellis-sim tune attention` on the model's flash attention
// kernel (kernels/attention.hpp): q [B, H, Sq, d], k and v [B, Hkv, Skv, d] as per-head [S, d] tensors,
// GQA when Hkv < H, causal with the library's alignment (query i sees keys j ≤ i + Skv − Sq), optionally an
// additive [Sq, Skv] mask per query head (random values of the input's dtype).

#include <cmath>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <trellis/systolic/kernels/attention.hpp>

#include "common.hpp"
#include "tune.hpp"

namespace trellis_sim {

inline const char* attention_usage =
    "usage: trellis-sim attention --heads H --seq-q SQ --head-dim D [options]\n"
    "       trellis-sim tune attention ... [sweep options]\n"
    "  --machine trn1|trn2|trn3, --batch B (1), --kv-heads HKV (H), --seq-k SKV (SQ), --causal, --window W (with --causal),\n"
    "  --mask (an additive [SQ, SKV] mask per head, in the input's dtype),\n"
    "  --dtype bf16|fp32 (q, k, v), --out-dtype fp32|bf16 (o; default: the input's), --scale S (1/sqrt(D))\n"
    "  --q-tile Q, --key-chunk C, --kv-block K, --kv-bufs N, --resident-kv-bytes BYTES   the tile policy\n"
    "  --timing-only, --json, --trace FILE\n"
    "tune: --sweep-kv-block LIST, --sweep-key-chunk LIST, --sweep-kv-bufs LIST, --sweep-resident-kv-bytes LIST,\n"
    "  --threads T, --top N, --csv FILE\n";

struct attention_setup {
  std::size_t batch, heads, kv_heads, seq_q, seq_k, dim;
  bool causal, mask;
  std::optional<std::size_t> window;  // keys j > i + Skv − Sq − window
  float scale;
  sys::dtype in, out;
};

inline attention_setup read_attention_setup(arguments& args) {
  attention_setup s{};
  s.batch = args.size("batch", 1);
  s.heads = args.required_size("heads");
  s.kv_heads = args.size("kv-heads", s.heads);
  s.seq_q = args.required_size("seq-q");
  s.seq_k = args.size("seq-k", s.seq_q);
  s.dim = args.required_size("head-dim");
  s.causal = args.flag("causal");
  s.mask = args.flag("mask");
  std::tie(s.in, s.out) = read_f32_bf16_dtypes(args, "bf16", "attention takes fp32 or bf16 q, k, v and o");
  if (args.has("window")) {
    if (!s.causal) throw usage_error("--window needs --causal (the library's sliding window is causal)");
    s.window = args.required_size("window");
  }
  if (s.heads % s.kv_heads != 0) throw usage_error("--kv-heads must divide --heads");
  s.scale = args.has("scale") ? std::stof(args.text("scale", "1")) : 1.0f / std::sqrt(float(s.dim));
  return s;
}

inline sys::kernels::attention_policy read_attention_policy(arguments& args) {
  sys::kernels::attention_policy p;
  p.q_tile = args.size("q-tile", p.q_tile);
  p.key_chunk = args.size("key-chunk", p.key_chunk);
  p.kv_block = args.size("kv-block", p.kv_block);
  p.kv_bufs = args.size("kv-bufs", p.kv_bufs);
  if (args.has("resident-kv-bytes")) p.resident_kv_bytes = std::stoul(args.text("resident-kv-bytes", "0"));
  return p;
}

/// Runs the flash attention kernel of `s` on `nc` with `policy` (random inputs on functional cores).
inline void run_attention(sys::core_state& nc, const attention_setup& s, const sys::kernels::attention_policy& policy) {
  host_tensors host(nc.functional());
  const std::size_t group = s.heads / s.kv_heads;
  const auto typed = [&]<class T, class TO>() {
    std::vector<sys::kernels::attention_head_group<T, TO>> groups;
    for (std::size_t b = 0; b < s.batch; ++b)
      for (std::size_t hk = 0; hk < s.kv_heads; ++hk) {
        sys::kernels::attention_head_group<T, TO> g;
        g.k = typed_hbm<const T>(host.make(s.in, s.seq_k, s.dim, false));
        g.v = typed_hbm<const T>(host.make(s.in, s.seq_k, s.dim, false));
        g.keys = s.seq_k;
        for (std::size_t h = 0; h < group; ++h) {
          g.q.push_back(typed_hbm<const T>(host.make(s.in, s.seq_q, s.dim, false)));
          g.o.push_back(typed_hbm<TO>(host.make(s.out, s.seq_q, s.dim, true)));
          if (s.mask) g.mask.push_back(host.make(s.in, s.seq_q, s.seq_k, false));
        }
        groups.push_back(std::move(g));
      }
    with_machine_core(nc, [&](auto& core) {
      sys::kernels::flash_attention_fwd(core, groups, {.scale = s.scale, .causal = s.causal, .window = s.window}, policy);
    });
  };
  const bool bf16_in = s.in == sys::dtype::bf16, bf16_out = s.out == sys::dtype::bf16;
  if (bf16_in && bf16_out) typed.template operator()<trellis::bf16, trellis::bf16>();
  else if (bf16_in) typed.template operator()<trellis::bf16, float>();
  else if (bf16_out) typed.template operator()<float, trellis::bf16>();
  else typed.template operator()<float, float>();
}

inline std::string attention_setup_text(const attention_setup& s, const sys::machine_spec& machine) {
  return "attention B=" + std::to_string(s.batch) + " H=" + std::to_string(s.heads) + " Hkv=" +
         std::to_string(s.kv_heads) + " Sq=" + std::to_string(s.seq_q) + " Skv=" + std::to_string(s.seq_k) +
         " d=" + std::to_string(s.dim) + (s.causal ? " causal" : "") +
         (s.window ? " window=" + std::to_string(*s.window) : "") + (s.mask ? " mask" : "") + " " + to_string(s.in) +
         " on " + machine.name;
}

inline int run_attention_command(arguments& args) {
  const attention_setup s = read_attention_setup(args);
  const run_flags flags = read_run_flags(args);
  const sys::kernels::attention_policy policy = read_attention_policy(args);
  args.reject_unknown("attention");
  const auto nc = make_core(*flags.machine, {.functional = !flags.timing_only});
  run_attention(*nc, s, policy);
  const std::string fields = "\"op\":\"attention\",\"batch\":" + std::to_string(s.batch) +
                             ",\"heads\":" + std::to_string(s.heads) + ",\"kv_heads\":" + std::to_string(s.kv_heads) +
                             ",\"seq_q\":" + std::to_string(s.seq_q) + ",\"seq_k\":" + std::to_string(s.seq_k) +
                             ",\"head_dim\":" + std::to_string(s.dim) + ",\"causal\":" + (s.causal ? "true" : "false") +
                             (s.window ? ",\"window\":" + std::to_string(*s.window) : std::string()) +
                             ",\"mask\":" + (s.mask ? "true" : "false") +
                             ",\"instructions\":" + std::to_string(nc->records().size());
  print_run(*nc, flags,
            attention_setup_text(s, *flags.machine) + (flags.timing_only ? " (timing-only)" : "") + ", " +
                std::to_string(nc->records().size()) + " instructions",
            fields);
  return 0;
}

inline int tune_attention(arguments& args) {
  const attention_setup s = read_attention_setup(args);
  const sys::machine_spec& machine = machine_by_name(args.text("machine", "trn2"));
  const auto kv_blocks = args.sizes("sweep-kv-block", {512, 1024, 2048, 4096});
  const auto key_chunks = args.sizes("sweep-key-chunk", {256, 512});
  const auto kv_bufs = args.sizes("sweep-kv-bufs", {1, 2, 3});
  const auto resident = args.sizes("sweep-resident-kv-bytes", {1, 48 * 1024, 96 * 1024});
  const std::size_t top = args.size("top", 20);
  const std::string csv = args.text("csv", "");
  const unsigned threads = sweep_threads(args);
  args.reject_unknown("tune attention");
  std::vector<candidate> candidates;
  for_each_combination({kv_blocks, key_chunks, kv_bufs, resident}, [&](const std::vector<std::size_t>& v) {
    sys::kernels::attention_policy p;
    p.kv_block = v[0];
    p.key_chunk = v[1];
    p.kv_bufs = v[2];
    p.resident_kv_bytes = v[3];
    add_unique(candidates, {{{"kv_block", std::to_string(v[0])}, {"key_chunk", std::to_string(v[1])},
                             {"kv_bufs", std::to_string(v[2])}, {"resident_kv_bytes", std::to_string(v[3])}},
                            [s, p](sys::core_state& nc) { run_attention(nc, s, p); }});
  });
  const auto results = sweep(machine, candidates, threads);
  report_sweep("tune " + attention_setup_text(s, machine) + " (timing-only, " + std::to_string(threads) + " threads)",
               candidates, results, top, csv);
  return 0;
}

}  // namespace trellis_sim
