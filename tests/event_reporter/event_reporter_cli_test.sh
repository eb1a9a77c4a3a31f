#!/usr/bin/env bash
# The shell path a user takes: the real server, event_reporter generating a file, replaying it,
# and piping JSON lines with a bad one in the middle.
set -euo pipefail
server=$1 reporter=$2
source "$(dirname "$0")/../support/start_server.sh"
dir=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
start_server "$server" "$dir/server.log" --metrics-listen 127.0.0.1:0
port=$server_port
metrics_port=$server_metrics_port
[[ -n $metrics_port ]] || { echo "no metrics port in the server's log:"; cat "$dir/server.log"; exit 1; }
ingested() {
  curl -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics" |
    sed -n 's/^analytics_events_ingested_total \([0-9.e+]*\)$/\1/p' | awk '{printf "%.0f", $1}'
}

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

echo "== Ctrl-C: delivers what is queued and prints the summary; a second one later quits"
before=$(ingested)
"$reporter" generate --rate 200 --server "127.0.0.1:$port" --quiet --json >"$dir/gen.out" &
gen=$!
# The interruption goes once the server has counted some of the traffic (the check below needs
# a sent event), not after a fixed delay: under ASan the first batch once took over 1 s to
# leave. At most 60 s.
for _ in $(seq 600); do (( $(ingested) > before )) && break; sleep 0.1; done
kill -INT "$gen"; kill -INT "$gen"  # one interruption delivered twice (as `timeout` does)
status=0
wait "$gen" || status=$?
cat "$dir/gen.out"
[[ $status -eq 0 ]] || { echo "expected exit 0 after Ctrl-C, got $status"; exit 1; }
python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); assert s["sent"] > 0 and s["failed"] == 0, s' "$dir/gen.out"
# Against a server that is not there it keeps retrying: the second Ctrl-C ends it at once.
"$reporter" send --type click --server 127.0.0.1:1 --quiet 2>/dev/null &
stuck=$!
sleep 0.5
kill -INT "$stuck"
sleep 0.7
kill -INT "$stuck"
status=0
timeout 10 tail --pid="$stuck" -f /dev/null || { echo "still running after a second Ctrl-C"; exit 1; }
wait "$stuck" || status=$?
[[ $status -eq 130 ]] || { echo "expected exit 130 after a second Ctrl-C, got $status"; exit 1; }
echo ok
