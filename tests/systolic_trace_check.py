#!/usr/bin/env python3
"""Runs the systolic trace test, then checks the Chrome trace it wrote: valid JSON, the DESIGN §4
conventions, and no two ph:"X" slices overlapping on one track (pid, tid)."""
import json, os, subprocess, sys, tempfile

binary = sys.argv[1]
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "trace.json")
    env = dict(os.environ, TRELLIS_TRACE_PATH=path)
    subprocess.run([binary, "--gtest_filter=SystolicTiming.TraceSlicesNeverOverlapOnATrack"], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    with open(path) as f:
        trace = json.load(f)
assert trace["displayTimeUnit"] == "ns", trace.get("displayTimeUnit")
events = trace["traceEvents"]
names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
for required in ("Tensor", "Vector", "Scalar", "GpSimd", "DMA queue 0", "DMA engine 0"):
    assert required in names, required
tracks = {}
for e in events:
    if e["ph"] == "X":
        assert e["ts"] >= 0 and e["dur"] >= 0, e
        tracks.setdefault((e["pid"], e["tid"]), []).append((round(e["ts"] * 1e6), round((e["ts"] + e["dur"]) * 1e6), e))
assert sum(len(v) for v in tracks.values()) > 0
assert any(e["ph"] == "C" for e in events), "no occupancy counters"
for key, slices in tracks.items():
    slices.sort(key=lambda s: s[0])
    for a, b in zip(slices, slices[1:]):
        assert a[1] <= b[0], f"overlap on track {key}: {a[2]} and {b[2]}"
assert all("source" in e["args"] and "cycles" in e["args"] for e in events if e["ph"] == "X" and e["tid"] < 200)
print(f"trace ok: {sum(len(v) for v in tracks.values())} slices on {len(tracks)} tracks")
