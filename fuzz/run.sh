#!/usr/bin/env bash
# Builds the libFuzzer targets (the asan preset: clang, ASan+UBSan, build/asan; after
# `deploy/test.sh asan` they are built already) and runs each for a bounded time, one per core
# at a time.
#   bash fuzz/run.sh              # 60 s per target
#   bash fuzz/run.sh 600 ingest   # 10 minutes, one target (names as in fuzz/corpus/)
# Each target starts from its seeds (fuzz/corpus/<target>/, read only) plus what earlier runs
# found (build/asan/fuzz-corpus/<target>/, where new inputs go). A crash, leak, UB report,
# failed RTA_FUZZ_CHECK or an input slower than 10 s is a finding: the input is saved as
# build/asan/fuzz-artifacts/<target>-crash-<sha1> (replay: build/asan/fuzz/<target>_fuzzer FILE),
# and the script exits 1 after running the remaining targets.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
shift || true
targets=("$@")
((${#targets[@]})) || targets=(ingest subscription_request event_json config_file config_flags rollup_bytes grpc_web)

bash deploy/setup.sh
# The same configuration as `deploy/test.sh asan` (no other cache variables), so that after it
# this builds nothing.
bash deploy/configure.sh asan
cmake --build --preset fuzz --parallel "$(nproc)"
out=build/asan

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One target per core at a time: each runs for a fixed time, so on the 2-core VM the six
# targets take three rounds instead of six.
run_target() {
  local target=$1
  local binary=$out/fuzz/${target}_fuzzer
  local corpus=$out/fuzz-corpus/$target
  mkdir -p "$corpus" "$out/fuzz-artifacts"
  local options=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
                 -artifact_prefix="$out/fuzz-artifacts/$target-")
  [[ -f fuzz/dict/$target.dict ]] && options+=(-dict="fuzz/dict/$target.dict")
  "$binary" "${options[@]}" "$corpus" "fuzz/corpus/$target" >"$out/fuzz-$target.log" 2>&1
}
for target in "${targets[@]}"; do
  [[ -x $out/fuzz/${target}_fuzzer ]] || { echo "fuzz: no target '$target'" >&2; exit 2; }
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
    log=$out/fuzz-$target.log
    if wait "${pids[$i]}"; then
      echo "== fuzz: $target done"
      grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
      echo "   corpus: $(find "$out/fuzz-corpus/$target" -type f | wc -l) inputs found beside the seeds"
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
