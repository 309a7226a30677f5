#!/usr/bin/env bash
# Installs the Debian 12 packages Trellis needs to build, test and run its examples.
# Does nothing (and needs no network) when they are all installed already.
set -euo pipefail

packages=(
  build-essential cmake ninja-build       # g++ 12, CMake >= 3.25, Ninja
  libhwy-dev libxsimd-dev xtl-dev         # SIMD providers (Highway, xsimd; xtl for xsimd's CMake config)
  libomp-dev                              # OpenMP runtime
  libgtest-dev googletest                 # tests
  libbenchmark-dev                        # benchmarks
)

missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if ((EUID != 0)); then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo=(sudo)
fi
echo "deps: installing ${missing[*]}"
"${sudo[@]}" apt-get update
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
