#!/usr/bin/env bash
# System calls per delivered update, ours against the grpc-go reference: one fanout-go round
# (2,000 subscribers over 20 connections, 100 ms tick, 20,000 updates/s), and `strace -c -f`
# attached to each server for 3 s in the middle of its run (60,000 updates). strace slows both
# servers; compare the counts, not the times. Needs strace and a release build with Go.
#   bash bench/strace_fanout.sh   # writes /tmp/strace_analytics_server.txt and _go_refserver.txt
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "strace_fanout: apt-get install strace" >&2; exit 1; }
build/release/bench/load/load_driver --scenario fanout-go --rounds 1 --seconds 12 \
  >/tmp/strace_fanout_run.log 2>&1 &
driver=$!
trap 'kill "$driver" 2>/dev/null || true' EXIT
for name in analytics_server go_refserver; do
  pid=""
  for _ in $(seq 1 300); do  # the server starts within 30 s
    pid=$(pgrep -n -f "$name --listen 127.0.0.1:0" || true)
    [[ -n $pid ]] && break
    sleep 0.1
  done
  [[ -n $pid ]] || { echo "strace_fanout: $name did not start" >&2; exit 1; }
  sleep 5  # subscribers joined, measurement running
  timeout -s INT 3 strace -c -f -p "$pid" -o "/tmp/strace_$name.txt" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  echo "== $name (3 s, 60,000 updates)"
  head -12 "/tmp/strace_$name.txt"
done
