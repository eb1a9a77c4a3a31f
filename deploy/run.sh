#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: set up, build, then run analytics_server on its
# defaults (gRPC 127.0.0.1:50051, Prometheus 127.0.0.1:9464/metrics, HTTP 127.0.0.1:8080 with the
# live web view at /, data in ./analytics-data: a second run starts with the first one's
# numbers), realistic generated website
# traffic into it (event_reporter generate), and the live dashboard on top. Quit the dashboard
# with q (or Ctrl-C) and everything stops in order.
#   bash deploy/run.sh                 # RATE=500 bash deploy/run.sh for busier traffic
#   bash deploy/run.sh --tick-ms 250   # extra flags go to analytics_server
# Without a terminal the dashboard prints one line per update (--plain).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
bash deploy/configure.sh release
cmake --build --preset release --parallel "$(nproc)" \
  --target analytics_server event_reporter dashboard_client

bin=build/release
logs=$(mktemp -d -t rta-run.XXXXXX)
server_pid="" reporter_pid=""
stop() {
  [[ -n $reporter_pid ]] && kill -INT "$reporter_pid" 2>/dev/null && wait "$reporter_pid" || true
  [[ -n $server_pid ]] && kill -TERM "$server_pid" 2>/dev/null && wait "$server_pid" || true
  echo "logs: $logs"
}
trap stop EXIT

# setsid: the server and the traffic generator get no Ctrl-C from the terminal; the dashboard
# alone takes it, and then this script stops the other two, each with one signal.
setsid "$bin/server/analytics_server" "$@" 2>"$logs/server.log" &
server_pid=$!
for _ in $(seq 100); do
  grep -q "event=listening" "$logs/server.log" && break
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
grep -q "event=listening" "$logs/server.log" || { cat "$logs/server.log"; exit 1; }
port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$logs/server.log" | head -1)

setsid "$bin/event_reporter/event_reporter" generate --rate "${RATE:-100}" --quiet \
  --server "127.0.0.1:$port" >"$logs/event_reporter.log" 2>&1 &
reporter_pid=$!

dashboard=("$bin/dashboard_client/dashboard_client" --server "127.0.0.1:$port")
[[ -t 1 ]] || dashboard+=(--plain)
"${dashboard[@]}"
