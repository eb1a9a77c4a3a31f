#!/usr/bin/env bash
# Starts the real analytics_server on ephemeral loopback ports, sends SIGTERM, and expects an
# orderly exit (status 0) with the documented lifecycle log lines.
set -euo pipefail
server=$1
log=$(mktemp)
trap 'rm -f "$log"; kill -9 "$pid" 2>/dev/null || true' EXIT
"$server" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --data-dir '' --tick-ms 100 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q "event=listening" "$log" && break; sleep 0.1; done
grep -q "event=listening" "$log" || { echo "server did not start"; cat "$log"; exit 1; }
kill -TERM "$pid"
status=0
timeout 30 tail --pid="$pid" -f /dev/null || { echo "server did not exit in 30 s"; exit 1; }
wait "$pid" || status=$?
cat "$log"
[[ $status -eq 0 ]] || { echo "exit status $status"; exit 1; }
grep -q "event=shutdown_started" "$log"
grep -q "event=shutdown_complete" "$log"
