#!/bin/sh
# Runs the attention and norm benchmarks and PyTorch's CPU SDPA on the same shapes, one after the other on
# the same machine. Usage: bench/run_attention.sh [build dir, default build/attn] [extra benchmark args]
# PYTHON names the interpreter that has torch (default python3), e.g. a venv's bin/python.
set -eu
build=${1:-build/attn}
[ $# -gt 0 ] && shift
here=$(dirname "$0")
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
"$build/bench/attention_bench" "$@"
"$build/bench/norm_bench" "$@"
"${PYTHON:-python3}" "$here/sdpa_torch.py"
