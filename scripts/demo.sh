#!/usr/bin/env bash
# Sets up and runs the demo: installs the Debian packages, builds the quickstart example with the
# `release` preset (-O3 -march=native) and runs it. It prints, for each op, the error of the CPU target
# against the reference target and the time of each.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/deps.sh
cmake --preset release
cmake --build --preset release --target quickstart
echo
build/release/examples/quickstart
