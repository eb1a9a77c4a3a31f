#!/usr/bin/env bash
# The script modes against the real server: --once --json, --plain, an unreachable server, a
# bad flag, and output that cannot be written (the three clients).
set -euo pipefail
server=$1 dashboard=$2 reporter=$3 ctl=$4
source "$(dirname "$0")/../support/start_server.sh"
dir=$(mktemp -d)
trap 'kill "$server_pid" ${plain_pid:-} 2>/dev/null || true; rm -rf "$dir"' EXIT
start_server "$server" "$dir/server.log" --tick-ms 100
address=127.0.0.1:$server_port

for i in 1 2 3; do
  "$reporter" send --server "$address" --type page_view --page /pricing --visitor "v$i" \
    --session "s$i" --country DE >/dev/null
done
"$reporter" send --server "$address" --type purchase --value 42.5 --visitor v1 --session s1 >/dev/null

echo "== --once --json"
# The events show from the server's next tick (100 ms) on.
for _ in $(seq 50); do
  json=$(timeout 20 "$dashboard" --server "$address" --once --json)
  python3 -c 'import json,sys
m = json.loads(sys.argv[1])["metrics"]
sys.exit(m["page_views"]["1m"] != 3 or m["revenue"]["1m"] != 42.5)' "$json" && break
  sleep 0.1
done
python3 - "$json" <<'PY'
import json, sys
doc = json.loads(sys.argv[1])
m = doc["metrics"]
assert m["page_views"]["1m"] == 3, m["page_views"]
assert m["revenue"]["total"] == 42.5, m["revenue"]
assert m["top_pages"]["1m"]["top"][0]["key"] == "/pricing", m["top_pages"]
assert m["events_by_country"]["1m"]["DE"] == 3, m["events_by_country"]
assert doc["epoch"] > 0
PY

echo "== --plain"
"$dashboard" --server "$address" --plain --metrics page_views,revenue \
  >"$dir/plain.out" 2>"$dir/plain.err" &
plain_pid=$!
# Until both lines are out (bounded), then SIGINT: a clean exit 0.
for _ in $(seq 200); do
  grep -qx 'Updated metric: revenue = 42.5 (1m)' "$dir/plain.out" 2>/dev/null && break
  sleep 0.1
done
kill -INT "$plain_pid"
status=0
wait "$plain_pid" || status=$?
cat "$dir/plain.out" "$dir/plain.err"
[[ $status -eq 0 ]] || { echo "--plain exited with $status after SIGINT"; exit 1; }
grep -qx 'Updated metric: page_views = 3 (1m)' "$dir/plain.out"
grep -qx 'Updated metric: revenue = 42.5 (1m)' "$dir/plain.out"
grep -q "connected to $address" "$dir/plain.err"

echo "== unreachable"
status=0
err=$(timeout 20 "$dashboard" --server 127.0.0.1:1 --once --json --timeout-ms 2000 2>&1) || status=$?
echo "$err"
[[ $status -eq 1 ]] || { echo "expected exit 1, got $status"; exit 1; }
grep -q 'server unreachable at 127.0.0.1:1 (UNAVAILABLE)' <<<"$err"

echo "== refused request"
status=0
err=$(timeout 20 "$dashboard" --server "$address" --once --json --metrics nope 2>&1) || status=$?
[[ $status -eq 1 ]] && grep -q 'INVALID_ARGUMENT' <<<"$err" || { echo "$err"; exit 1; }

echo "== bad usage"
status=0
"$dashboard" --server no-port --once 2>"$dir/bad.err" || status=$?
[[ $status -eq 2 ]] && grep -q 'bad server address' "$dir/bad.err"
status=0
"$dashboard" --window 2m 2>/dev/null || status=$?
[[ $status -eq 2 ]]

echo "== output that cannot be written"
# /dev/full fails every write as a full disk does: the run must not pass with its output lost.
for client in "$dashboard --server $address --once --json" "$reporter --help" "$ctl --help"; do
  status=0
  $client >/dev/full 2>"$dir/full.err" || status=$?
  if [[ $status -ne 1 ]] || ! grep -q 'writing stdout failed' "$dir/full.err"; then
    cat "$dir/full.err"; echo "$client > /dev/full: exit $status"; exit 1
  fi
done
# --plain whose reader has gone (SIGPIPE is ignored, a write fails with EPIPE): it stops at
# its next update instead of streaming into the void.
(code=0
 timeout 30 "$dashboard" --server "$address" --plain --metrics events_total 2>"$dir/gone.err" ||
   code=$?
 echo "$code" >"$dir/gone.status") | head -n 1 >/dev/null &
for i in $(seq 100); do
  [[ -s "$dir/gone.status" ]] && break
  "$reporter" send --server "$address" --type click --visitor "gone$i" >/dev/null
  sleep 0.2
done
status=$(cat "$dir/gone.status" 2>/dev/null || echo "still running")
if [[ $status != 1 ]] || ! grep -q 'writing the updates failed' "$dir/gone.err"; then
  cat "$dir/gone.err"; echo "--plain after its reader left: $status"; exit 1
fi

echo "== --help"
"$dashboard" --help >"$dir/help.out"
grep -q -- "--server HOST:PORT" "$dir/help.out" && grep -q "^Examples:" "$dir/help.out"
echo ok
