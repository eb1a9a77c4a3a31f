#!/usr/bin/env bash
# Configures one preset of CMakePresets.json: `bash deploy/configure.sh release`. Used by
# deploy/run.sh, deploy/test.sh, fuzz/run.sh and .ci/run.
#
# The presets build with Ninja. A tree configured before they did (Unix Makefiles) would make
# `cmake --preset` refuse ("Does not match the generator used previously"); its cache is
# removed first, so that the tree is configured anew and rebuilt once instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=$1
cache=build/${preset}/CMakeCache.txt  # every preset's binaryDir is build/<name>
if [[ -f ${cache} ]] && ! grep -qx 'CMAKE_GENERATOR:INTERNAL=Ninja' "${cache}"; then
  echo "configure: build/${preset} was made with another generator; configuring it anew"
  rm -rf "${cache}" "build/${preset}/CMakeFiles"
fi
cmake --preset "${preset}" >/dev/null
