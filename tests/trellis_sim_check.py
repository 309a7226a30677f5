"""ctest systolic.trellis_sim_cli: the trellis-sim command line, end to end.

Usage: trellis_sim_check.py <path to trellis-sim>. Checks: --json carries the documented keys with sane
values; a functional run's values are right; --trace writes JSON; tune ranks, rejects with the rule and
writes the CSV, and gives the same ranking on 1 and 2 threads; bad flags exit 2 with the usage.
"""
import csv
import json
import os
import subprocess
import sys
import tempfile

sim = sys.argv[1]
failures = []


def run(*args):
    return subprocess.run([sim, *args], capture_output=True, text=True, timeout=300)


def check(condition, what):
    if not condition:
        failures.append(what)


# One run, JSON: the keys, times and fractions in range.
r = run("matmul", "--machine", "trn1", "--m", "512", "--k", "1024", "--n", "1024", "--variant", "blocked",
        "--tiles", "2,1,4", "--timing-only", "--json")
check(r.returncode == 0, f"matmul --json failed: {r.stderr}")
j = json.loads(r.stdout)
for key in ("time_ns", "mfu", "hfu", "hbm_bytes", "bound", "engines", "report"):
    check(key in j, f"--json lacks {key}")
check(j["time_ns"] > 0 and 0 < j["mfu"] <= 1 and j["hfu"] >= j["mfu"], f"implausible time/MFU/HFU: {j}")
check(j["hbm_bytes"] >= 2 * (512 * 1024 + 1024 * 1024) + 4 * 512 * 1024, "hbm_bytes below the bytes of A, B and C")
for engine in ("Tensor", "Vector", "Scalar", "GpSimd"):
    e = j["engines"].get(engine, {})
    check("busy_ns" in e and "utilization" in e and 0 <= e["utilization"] <= 1, f"engine {engine}: {e}")
check(j["variant"] == "blocked", "variant not echoed")

# A functional run with A as [M, K] (transposed on chip) and a trace.
with tempfile.TemporaryDirectory() as tmp:
    trace = os.path.join(tmp, "t.json")
    r = run("matmul", "--machine", "trn2", "--m", "200", "--k", "300", "--n", "600", "--a-layout", "mk",
            "--trace", trace)
    check(r.returncode == 0, f"functional matmul failed: {r.stderr}")
    check("bound by" in r.stdout and "MFU" in r.stdout, "table output lacks the bound or MFU")
    error = float(r.stdout.split("over 64 sampled elements = ")[1].split()[0])
    check(error < 1e-6, f"sampled relative error {error}")
    with open(trace) as f:
        check(len(json.load(f)["traceEvents"]) > 100, "trace has too few events")

    # tune: ranking, rejections with the rule, CSV; the same result on 1 and 2 threads.
    outs = []
    for threads in ("1", "2"):
        path = os.path.join(tmp, f"sweep{threads}.csv")
        r = run("tune", "matmul", "--machine", "trn2", "--m", "512", "--k", "2048", "--n", "2048",
                "--variants", "hoisted,default", "--sweep-tile-n", "512,1024", "--sweep-block-m", "2,4",
                "--sweep-block-n", "1,2", "--sweep-block-k", "4", "--sweep-bufs", "1,2", "--threads", threads,
                "--csv", path)
        check(r.returncode == 0, f"tune failed: {r.stderr}")
        check("rejected" in r.stdout and "exceed one PSUM bank" in r.stdout, "tune does not show the broken rule")
        with open(path) as f:
            rows = list(csv.DictReader(f))
        check(len(rows) > 4 and rows[0]["rank"] == "1", "CSV lacks a ranking")
        ran = [row for row in rows if row["status"] == "ran"]
        check(all(float(a["time_ns"]) <= float(b["time_ns"]) for a, b in zip(ran, ran[1:])), "CSV not ranked by time")
        check(all(row["rule"] for row in rows if row["status"] == "rejected"), "a rejected policy without its rule")
        outs.append([(row["variant"], row["tile_n"], row["block_m"], row["block_n"], row["bufs"], row["time_ns"]) for row in ran])
    check(outs[0] == outs[1], "tune differs between 1 and 2 threads")

# Attention and the norms: the same report keys; functional runs on small shapes; tune ranks and rejects.
for args in (["attention", "--machine", "trn1", "--heads", "4", "--kv-heads", "2", "--seq-q", "300", "--seq-k", "500",
              "--head-dim", "64", "--causal", "--json"],
             ["attention", "--heads", "2", "--seq-q", "4096", "--head-dim", "128", "--timing-only", "--json"],
             ["attention", "--heads", "2", "--seq-q", "300", "--seq-k", "400", "--head-dim", "64", "--causal",
              "--window", "100", "--json"],
             ["attention", "--machine", "trn1", "--heads", "2", "--kv-heads", "1", "--seq-q", "200", "--head-dim", "32",
              "--dtype", "fp32", "--causal", "--mask", "--json"],
             ["layernorm", "--rows", "300", "--hidden", "1000", "--dtype", "bf16", "--json"],
             ["rmsnorm", "--machine", "trn1", "--rows", "8192", "--hidden", "4096", "--residual", "--residual-out",
              "--timing-only", "--json"]):
    r = run(*args)
    check(r.returncode == 0, f"{args}: {r.stderr}")
    if r.returncode == 0:
        j = json.loads(r.stdout)
        check(j["op"] == args[0] and j["time_ns"] > 0 and j["hbm_bytes"] > 0 and "Vector" in j["engines"],
              f"{args}: {r.stdout[:200]}")
        if args[0] == "attention":
            check(j["mfu"] > 0, f"attention MFU: {j['mfu']}")
            check(("--window" in args) == ("window" in j), f"{args}: window in the JSON: {'window' in j}")
            check(j["mask"] == ("--mask" in args), f"{args}: mask in the JSON: {j['mask']}")
# An additive mask is read from HBM: at least H·Sq·Skv bf16 values more than the same run without it.
mask_run = ["attention", "--heads", "4", "--kv-heads", "2", "--seq-q", "1024", "--head-dim", "128", "--timing-only",
            "--json"]
plain, masked = run(*mask_run), run(*mask_run, "--mask")
check(plain.returncode == 0 and masked.returncode == 0, f"mask timing runs: {plain.stderr} {masked.stderr}")
if plain.returncode == 0 and masked.returncode == 0:
    extra = json.loads(masked.stdout)["hbm_bytes"] - json.loads(plain.stdout)["hbm_bytes"]
    check(extra >= 4 * 1024 * 1024 * 2, f"the mask adds {extra} HBM bytes")
for args in (["tune", "attention", "--heads", "4", "--kv-heads", "1", "--seq-q", "1024", "--head-dim", "128",
              "--sweep-kv-block", "512,2048", "--sweep-kv-bufs", "1,2"],
             ["tune", "layernorm", "--rows", "2048", "--hidden", "2048", "--sweep-bufs", "1,2,3"]):
    r = run(*args)
    check(r.returncode == 0 and "rank" in r.stdout and "rejected" in r.stdout and "bufs" in r.stdout,
          f"{args}: status {r.returncode} {r.stdout[:300]} {r.stderr[:300]}")

# Bad command lines: exit status 2 and the usage.
for args in (["matmul", "--m", "64", "--k", "64"],                       # missing --n
             ["matmul", "--m", "64", "--k", "64", "--n", "64", "--tilez", "1,2,3"],  # misspelt flag
             ["matmul", "--m", "0", "--k", "64", "--n", "64"],
             ["matmul", "--m", "64", "--k", "64", "--n", "64", "--variant", "fast"],
             ["matmul", "--m", "64", "--k", "64", "--n", "64", "--machine", "trn9"],
             ["attention", "--heads", "6", "--kv-heads", "4", "--seq-q", "64", "--head-dim", "64"],
             ["attention", "--heads", "2", "--seq-q", "64", "--head-dim", "64", "--window", "4"],  # window without causal
             ["layernorm", "--rows", "8", "--hidden", "8", "--residual-out"],
             ["tune", "softmax", "--rows", "8"],
             ["frobnicate"], []):
    r = run(*args)
    check(r.returncode == 2 and "usage:" in r.stderr, f"{args}: status {r.returncode}, stderr {r.stderr[:200]}")
# A policy the model rejects: status 1 and the rule.
r = run("matmul", "--m", "256", "--k", "256", "--n", "2048", "--tile", "128,128,1024", "--timing-only")
check(r.returncode == 1 and "PSUM bank" in r.stderr, f"rejected policy: status {r.returncode}, {r.stderr[:200]}")

if failures:
    print("\n".join("FAIL: " + f for f in failures))
    sys.exit(1)
print("trellis-sim command line: all checks passed")
