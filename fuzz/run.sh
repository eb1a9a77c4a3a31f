#!/usr/bin/env bash
# Builds the fuzz preset and runs every libFuzzer target for a bounded time, one per core at a
# time.
#   bash fuzz/run.sh              # 60 s per target
#   bash fuzz/run.sh 600 ingest   # 10 minutes, one target (names as in fuzz/corpus/)
# Each target starts from its seeds (fuzz/corpus/<target>/, read only) plus what earlier runs
# found (build/fuzz/corpus/<target>/, where new inputs go). A crash, leak, UB report, failed
# RTA_FUZZ_CHECK or an input slower than 10 s is a finding: the input is saved as
# build/fuzz/artifacts/<target>-crash-<sha1> (replay: build/fuzz/fuzz/<target>_fuzzer FILE),
# and the script exits 1 after running the remaining targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(ingest subscription_request event_json config_file config_flags rollup_bytes)

bash deploy/setup.sh
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake --preset fuzz "${launcher[@]}" >/dev/null
cmake --build --preset fuzz --parallel "$(nproc)"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One target per core at a time: each runs for a fixed time, so on the 2-core VM the six
# targets take three rounds instead of six.
run_target() {
  local target=$1
  local binary=build/fuzz/fuzz/${target}_fuzzer
  local corpus=build/fuzz/corpus/$target
  mkdir -p "$corpus" build/fuzz/artifacts
  local options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                 -artifact_prefix="build/fuzz/artifacts/$target-")
  [[ -f fuzz/dict/$target.dict ]] && options+=(-dict="fuzz/dict/$target.dict")
  "$binary" "${options[@]}" "$corpus" "fuzz/corpus/$target" >"build/fuzz/$target.log" 2>&1
}
for target in "${targets[@]}"; do
  [[ -x build/fuzz/fuzz/${target}_fuzzer ]] || { echo "fuzz: no target '$target'" >&2; exit 2; }
done
parallel=$(nproc)
failed=()
for ((first = 0; first < ${#targets[@]}; first += parallel)); do
  round=("${targets[@]:first:parallel}")
  pids=()
  for target in "${round[@]}"; do
    echo "== fuzz: $target for ${seconds} s"
    run_target "$target" &
    pids+=($!)
  done
  for i in "${!round[@]}"; do
    target=${round[$i]}
    log=build/fuzz/$target.log
    if wait "${pids[$i]}"; then
      echo "== fuzz: $target done"
      grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
      echo "   corpus: $(find "build/fuzz/corpus/$target" -type f | wc -l) inputs found beside the seeds"
    else
      tail -n 60 "$log"
      echo "fuzz: FINDING in $target (log: $log)" >&2
      failed+=("$target")
    fi
  done
done
if ((${#failed[@]})); then
  echo "fuzz: findings in ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: no findings (${#targets[@]} targets, ${seconds} s each)"
