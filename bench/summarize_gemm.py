#!/usr/bin/env python3
"""Turns gemm_bench's JSON output into the markdown tables of docs/performance.md.

    build/release/bench/gemm_bench --benchmark_out=gemm.json --benchmark_out_format=json
    python3 bench/summarize_gemm.py gemm.json > tables.md
    python3 bench/summarize_gemm.py gemm.json 2      # only the 2-thread tables

Every ratio is taken from the same run: vs_onednn is computed inside the benchmark binary against the
oneDNN row of the same shape, dtype and thread count; the geometric means here are over those ratios.
"""
import json
import math
import re
import sys
from collections import defaultdict

NAME = re.compile(r"^(?P<dtype>f32|bf16)/(?P<lib>[a-z_]+)/(?P<family>square|infer)/(?P<shape>[0-9x]+)/threads:(?P<threads>\d)")


def geomean(values):
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def main(path, only_threads=None):
    with open(path) as f:
        data = json.load(f)
    peaks = {}
    rows = defaultdict(dict)  # (dtype, family, shape, threads) -> lib -> counters
    for b in data["benchmarks"]:
        name = b["name"]
        if name.startswith("peak/"):
            if b.get("run_type") != "iteration":
                continue
            dtype, threads = name.split("/")[1], name.split("/")[2]
            peaks[(dtype, threads)] = max(peaks.get((dtype, threads), 0.0), b["GFLOPS"])
            continue
        m = NAME.match(name)
        if not m:
            continue
        key = (m["dtype"], m["family"], m["shape"], m["threads"])
        rows[key][m["lib"]] = b
    ctx = data.get("context", {})
    print(f"Run: {ctx.get('date', '?')}, host {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs "
          f"at {ctx.get('mhz_per_cpu', '?')} MHz, caches {[c['size'] for c in ctx.get('caches', [])]}.\n")
    print("Measured FMA peak (GFLOP/s): " + ", ".join(f"{d} × {t} thread(s) = {v:.0f}" for (d, t), v in sorted(peaks.items())) + "\n")
    libs_order = ["trellis_hwy", "trellis_xsimd", "onednn", "openblas", "blis", "eigen"]
    for dtype in ("f32", "bf16"):
        for family in ("square", "infer"):
            for threads in ("1", "2"):
                if only_threads and threads != only_threads:
                    continue
                keys = [k for k in rows if k[0] == dtype and k[1] == family and k[3] == threads]
                if not keys:
                    continue
                keys.sort(key=lambda k: [int(x) for x in k[2].split("x")])
                libs = [l for l in libs_order if any(l in rows[k] for k in keys)]
                print(f"### {dtype} {family}, {threads} thread(s): GFLOP/s (ratio to oneDNN)\n")
                print("| shape | " + " | ".join(libs) + " |")
                print("|---|" + "---|" * len(libs))
                ratios = defaultdict(list)
                for k in keys:
                    cells = []
                    for l in libs:
                        b = rows[k].get(l)
                        if not b:
                            cells.append("–")
                            continue
                        r = b.get("vs_onednn")
                        ratios[l].append(r)
                        cells.append(f"{b['GFLOPS']:.1f} ({r:.2f})" if r else f"{b['GFLOPS']:.1f}")
                    print(f"| {k[2]} | " + " | ".join(cells) + " |")
                print("| **geomean ratio** | " + " | ".join(f"**{geomean(ratios[l]):.2f}**" for l in libs) + " |")
                if dtype == "bf16":
                    f32 = {k[2]: rows[("f32",) + k[1:]].get("trellis_hwy", {}).get("GFLOPS") for k in keys}
                    speedups = [rows[k]["trellis_hwy"]["GFLOPS"] / f32[k[2]] for k in keys if "trellis_hwy" in rows[k] and f32.get(k[2])]
                    if speedups:
                        print(f"\nTrellis bf16 ÷ Trellis fp32 (hwy), per shape: " + ", ".join(f"{s:.2f}" for s in speedups))
                if {"trellis_hwy", "trellis_xsimd"} <= set(libs):
                    diff = [rows[k]["trellis_xsimd"]["GFLOPS"] / rows[k]["trellis_hwy"]["GFLOPS"] for k in keys
                            if "trellis_hwy" in rows[k] and "trellis_xsimd" in rows[k]]
                    print(f"\nxsimd ÷ hwy: geomean {geomean(diff):.3f}, range {min(diff):.2f}–{max(diff):.2f}")
                print()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "gemm.json", sys.argv[2] if len(sys.argv) > 2 else None)
