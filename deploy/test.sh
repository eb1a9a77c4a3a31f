#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine, builds from scratch and runs the whole test suite.
#   bash deploy/test.sh            # release preset
#   bash deploy/test.sh asan tsan  # any presets from CMakePresets.json, in order
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
presets=("$@")
((${#presets[@]})) || presets=(release)
jobs=$(nproc)
for preset in "${presets[@]}"; do
  echo "== ${preset}: configure, build, test"
  bash deploy/configure.sh "${preset}"
  cmake --build --preset "${preset}" --parallel "${jobs}"
  ctest --preset "${preset}" --parallel "${jobs}"
done
