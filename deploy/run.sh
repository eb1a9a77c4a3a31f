#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: set up, build, start the server on its defaults,
# feed it realistic generated traffic, and open the live dashboard. Ctrl-C (or q in the
# dashboard) stops everything.
#   bash deploy/run.sh
# Environment: RATE (events/s, default 200), LISTEN (default 0.0.0.0:50051).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --parallel "$(nproc)" \
  --target analytics_server event_reporter dashboard_client
bin=build/release

listen=${LISTEN:-0.0.0.0:50051}
port=${listen##*:}
log_dir=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "logs: $log_dir"
}
trap cleanup EXIT INT TERM

"$bin/server/analytics_server" --listen "$listen" 2>"$log_dir/server.log" &
pids+=($!)
for _ in $(seq 100); do grep -q "event=listening" "$log_dir/server.log" && break; sleep 0.1; done
grep -q "event=listening" "$log_dir/server.log" || { cat "$log_dir/server.log"; exit 1; }
echo "server: 127.0.0.1:${port}  metrics: http://127.0.0.1:9464/metrics  (log: $log_dir/server.log)"

"$bin/event_reporter/event_reporter" generate --server "127.0.0.1:${port}" \
  --rate "${RATE:-200}" --duration 0 --quiet 2>"$log_dir/reporter.log" &
pids+=($!)

if [[ -t 1 ]]; then
  "$bin/dashboard_client/dashboard_client" --server "127.0.0.1:${port}"
else
  # Not a terminal (CI, a pipe): print one line per update for a while instead.
  timeout 15 "$bin/dashboard_client/dashboard_client" --server "127.0.0.1:${port}" --plain \
    --metrics events_total,page_views,unique_visitors || true
fi
