#!/usr/bin/env bash
# The shell path a user takes: the real server, analyze_session_client fed JSON Lines on stdin.
set -euo pipefail
server=$1 client=$2
source "$(dirname "$0")/../support/start_server.sh"
log=$(mktemp)
trap 'kill "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT
start_server "$server" "$log"
port=$server_port
status=0
out=$(printf '%s\n' \
  '{"session_id":"s1","action_type":"click","target":"#buy"}' \
  '{"session_id":"s1","action_type":"click","target":"#buy"}' \
  'not json' \
  '{"session_id":"s1","action_type":"click","target":"#buy"}' \
  | timeout 30 "$client" --server "127.0.0.1:$port" - 2>&1) || status=$?
echo "$out"
[[ $status -eq 1 ]] || { echo "expected exit 1 for the bad line, got $status"; exit 1; }
grep -q '"name":"rage_click"' <<<"$out"
grep -q 'line 3:' <<<"$out"
[[ $(grep -c '"sessionId":"s1"' <<<"$out") -eq 3 ]]
