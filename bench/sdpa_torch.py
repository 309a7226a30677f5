#!/usr/bin/env python3
"""PyTorch CPU scaled_dot_product_attention on attention_bench's prefill shapes (fp32, B = 1, H = 32).

Prints one row per shape and thread count with GFLOP/s computed as attention_bench does
(4·Sq·Skv·D·H, halved for causal), so the two tables can be read side by side from one driver run
(bench/run_attention.sh). Exits 0 with a message when torch is not installed.
Usage: sdpa_torch.py [regex]: only the rows whose name matches (re.search), like --benchmark_filter.
"""
import re
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("sdpa_torch: torch is not installed: PyTorch SDPA rows skipped")
    sys.exit(0)

SHAPES = [(hkv, 512, d, c) for hkv in (32, 8) for d in (64, 128) for c in (False, True)]
SHAPES += [(hkv, 2048, 128, c) for hkv in (32, 8) for c in (False, True)]
SHAPES += [(8, 2048, 64, c) for c in (False, True)] + [(8, 4096, 128, c) for c in (False, True)]


def run(hkv, s, d, causal, threads, min_time=0.3):
    torch.set_num_threads(threads)
    q = torch.rand(1, 32, s, d) * 2 - 1
    k = (torch.rand(1, hkv, s, d) * 2 - 1).repeat_interleave(32 // hkv, dim=1)  # SDPA has no GQA here
    v = (torch.rand(1, hkv, s, d) * 2 - 1).repeat_interleave(32 // hkv, dim=1)
    F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    n, t0 = 0, time.perf_counter()
    while True:
        F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        n += 1
        dt = time.perf_counter() - t0
        if dt >= min_time:
            break
    flops = 4.0 * s * s * d * 32 * (0.5 if causal else 1.0)
    return dt / n, flops / (dt / n) / 1e9


def main():
    pattern = re.compile(sys.argv[1] if len(sys.argv) > 1 else "")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads available")
    print(f"{'benchmark':<62} {'time_ms':>10} {'GFLOPS':>9}")
    for hkv, s, d, causal in SHAPES:
        for threads in (1, 2):
            name = f"prefill/torch_sdpa/H32_Hkv{hkv}_S{s}_D{d}_{'causal' if causal else 'full'}/threads:{threads}"
            if not pattern.search(name):
                continue
            sec, gf = run(hkv, s, d, causal, threads)
            print(f"{name:<62} {sec * 1e3:>10.2f} {gf:>9.1f}", flush=True)


if __name__ == "__main__":
    main()
