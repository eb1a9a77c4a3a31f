#!/usr/bin/env bash
# Where a delivered update's CPU goes, ours against the grpc-go reference and gRPC C++'s
# callback API (bench/load/callback_refserver): one fanout-go round (2,000 subscribers over 20
# connections, 100 ms tick, 20,000 updates/s) per pair, and on each server in the middle of its
# run:
#   - `strace -c -f` for 3 s (60,000 updates): system calls by kind;
#   - `strace -f -e trace=sendmsg,write` for 2 s: bytes per send call (calls of 8 bytes or less
#     are eventfd wake-ups, not data, and are left out);
#   - `perf record` for 3 s (with PERF=1; needs perf and kernel.perf_event_paranoid <= 2):
#     samples by binary or library.
# strace slows every server; compare the counts, not the times. Needs strace and a release
# build with Go.   bash bench/strace_fanout.sh   (writes /tmp/strace_<server>*.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "strace_fanout: apt-get install strace" >&2; exit 1; }
bin=build/release/bench/load
updates_per_s=20000

measure() {  # NAME: attach to the newest server process of that name
  local name=$1 pid=""
  for _ in $(seq 1 300); do  # the server starts within 30 s
    pid=$(pgrep -n -f "$name --listen 127.0.0.1:0" || true)
    [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || { echo "strace_fanout: $name did not start" >&2; exit 1; }
  sleep 4  # subscribers joined, measurement running
  timeout -s INT 3 strace -c -f -p "$pid" -o "/tmp/strace_$name.txt" 2>/dev/null || true
  timeout -s INT 2 strace -f -e trace=sendmsg,write -p "$pid" -o "/tmp/strace_${name}_sends.txt" \
    2>/dev/null || true
  if [[ ${PERF:-0} == 1 ]] && command -v perf >/dev/null; then
    perf record -q -o "/tmp/perf_$name.data" -p "$pid" -- sleep 3 >/dev/null 2>&1 || true
  fi
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  echo "== $name"
  head -12 "/tmp/strace_$name.txt"
  awk -v per_s=$updates_per_s '/(sendmsg|write)\(/ && $NF ~ /^[0-9]+$/ && $NF > 8 {
         calls++; bytes += $NF }
       END { if (calls) printf "data sends in 2 s: %d, %.0f bytes per call, %.1f updates per call, %.1f bytes per update\n",
                               calls, bytes / calls, 2 * per_s / calls, bytes / (2 * per_s) }' \
    "/tmp/strace_${name}_sends.txt"
  if [[ -f /tmp/perf_$name.data ]]; then
    perf report -i "/tmp/perf_$name.data" --sort dso --stdio 2>/dev/null | grep '%' | head -8
  fi
}

run_pair() {  # SERVER-BINARY-NAME [load_driver flags]: measure it, then the Go server
  local name=$1
  shift
  "$bin/load_driver" --scenario fanout-go --fanout-load cpu --rounds 1 --seconds 12 "$@" \
    >"/tmp/strace_fanout_$name.log" 2>&1 &
  driver=$!
  measure "$name"
  [[ $name == analytics_server ]] && measure go_refserver
  wait "$driver" || true
}

trap 'kill "${driver:-}" 2>/dev/null || true' EXIT
run_pair analytics_server
run_pair callback_refserver --server-binary "$bin/callback_refserver"
