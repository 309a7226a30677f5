#!/usr/bin/env bash
# Sets up and runs all tests: installs the Debian packages, then for each preset configures, builds and
# runs ctest. Stops at the first failure with a non-zero exit.
#
#   scripts/test.sh                  # release, asan (ASan + UBSan), haswell (-march=haswell: AVX2 fallbacks)
#   scripts/test.sh release          # only the named presets
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

presets=("$@")
((${#presets[@]})) || presets=(release asan haswell)

summary=()
print_summary() {
  ((${#summary[@]})) || return 0
  echo
  echo "== summary (seconds) =="
  printf '%-10s %10s %8s %8s  %s\n' preset configure build test result
  printf '%s\n' "${summary[@]}"
}
trap print_summary EXIT

scripts/deps.sh

for preset in "${presets[@]}"; do
  echo
  echo "== preset ${preset} =="
  t_configure=- t_build=- t_test=- result=FAILED
  # Record a row for this preset even when a step fails (set -e then exits, and the trap prints it).
  record() { summary+=("$(printf '%-10s %10s %8s %8s  %s' "$preset" "$t_configure" "$t_build" "$t_test" "$result")"); }
  trap 'record; print_summary' EXIT

  start=$SECONDS
  cmake --preset "$preset"
  t_configure=$((SECONDS - start))

  start=$SECONDS
  cmake --build --preset "$preset"
  t_build=$((SECONDS - start))

  start=$SECONDS
  ctest --preset "$preset"
  t_test=$((SECONDS - start))

  result=passed
  record
  trap print_summary EXIT
done
