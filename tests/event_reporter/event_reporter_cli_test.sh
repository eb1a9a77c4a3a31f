#!/usr/bin/env bash
# The shell path a user takes: the real server, event_reporter generating a file, replaying it,
# and piping JSON lines with a bad one in the middle.
set -euo pipefail
server=$1 reporter=$2
source "$(dirname "$0")/../support/start_server.sh"
dir=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
start_server "$server" "$dir/server.log"
port=$server_port

"$reporter" generate --events 500 --seed 1 --rate 50 --output "$dir/traffic.jsonl" \
  --start-ms $(( $(date +%s%3N) - 60000 ))
[[ $(wc -l <"$dir/traffic.jsonl") -eq 500 ]]
summary=$(timeout 30 "$reporter" replay "$dir/traffic.jsonl" --server "127.0.0.1:$port" --json)
echo "$summary"
python3 -c 'import json,sys; s=json.loads(sys.argv[1]); assert s["accepted"]==500 and s["failed"]==0, s' "$summary"

status=0
err=$(printf '%s\n' '{"event_type":"page_view","page":"/a"}' 'oops' '{"event_type":"click"}' |
  timeout 30 "$reporter" replay - --server "127.0.0.1:$port" 2>&1 >/dev/null) || status=$?
echo "$err"
[[ $status -eq 1 ]] || { echo "expected exit 1 for the bad line, got $status"; exit 1; }
grep -q 'line 2: invalid JSON at column 1' <<<"$err"
