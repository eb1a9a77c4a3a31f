#!/usr/bin/env bash
# The dashboard's history view end to end in tmux: the real server with a data directory, two
# days of generated traffic backfilled, the dashboard in a 120x40 pane read with capture-pane.
# t walks the ranges to "last 7 days" and the Events tile shows the file's count; f filters
# (country=DE: the tile shows Germany's count); b breaks down (by page, then by device, whose
# rows are Germany's exact page views per device); a bad filter shows the server's message; a
# stopped server is said in words and, once it is back, the view answers again by itself; t
# goes back to the live view; q exits 0. Expected numbers are counted from the file with jq.
set -euo pipefail
server=$1 dashboard=$2 reporter=$3
source "$(dirname "$0")/../support/start_server.sh"
source "$(dirname "$0")/../support/tmux_pane.sh"
dir=$(mktemp -d)
tmux_pane_init "rta-hist-$$" "$dir"
cleanup() {
  tmux_pane_cleanup
  kill "$server_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

start_server "$server" "$dir/server.log" --tick-ms 100 --data-dir "$dir/data" \
  --history-flush-ms 200
address=127.0.0.1:$server_port

# 6,000 events over two days, ending about two hours ago: all of them a backfill.
now_ms=$(date +%s%3N)
"$reporter" generate --events 6000 --rate 0.0347 --seed 21 --start-ms $((now_ms - 50 * 3600000)) \
  --output "$dir/two-days.jsonl" --quiet
"$reporter" replay "$dir/two-days.jsonl" --server "$address" --quiet
events=$(wc -l <"$dir/two-days.jsonl")
de_events=$(jq -s '[.[] | select(.country == "DE")] | length' "$dir/two-days.jsonl")
de_desktop_views=$(jq -s '[.[] | select(.country == "DE" and .device == "desktop" and
  .event_type == "page_view")] | length' "$dir/two-days.jsonl")
((de_events > 0 && de_desktop_views > 0)) || { echo "the file has no German traffic"; exit 1; }
# 6000 -> "6,000", as the dashboard shows counts below 100,000.
fmt() {
  local n=$1 out=""
  while ((n >= 1000)); do
    out=$(printf ",%03d%s" $((n % 1000)) "$out")
    n=$((n / 1000))
  done
  echo "$n$out"
}
# The history writes every 200 ms: wait until it holds the whole file.
deadline=$((SECONDS + 30))
until "$dashboard" --server "$address" --once --json --range 7d --metrics events_total 2>/dev/null |
  jq -e ".totals.events_total == $events" >/dev/null; do
  ((SECONDS < deadline)) || { echo "the history did not reach $events events"; exit 1; }
  sleep 0.2
done

tm new-session -d -s "$session" -x 120 -y 40 \
  "env LANG=C.UTF-8 '$dashboard' --server '$address' 2>'$dir/dashboard.err'; echo EXIT=\$? >'$dir/exit'; sleep 60"
wait_for "● connected"

echo "== t walks the ranges: last hour, last 24 hours, last 7 days"
tm send-keys -t "$session" t
wait_for "History · last hour"
tm send-keys -t "$session" t
wait_for "History · last 24 hours"
tm send-keys -t "$session" t
wait_for "History · last 7 days"
wait_for "● answered"
# The Events tile is the first: its value line starts the line below its title.
wait_for_line "^│ $(fmt "$events") "
wait_for "per hour"

echo "== f filters: country=DE"
tm send-keys -t "$session" f
wait_for "filter (dimension=value"
tm send-keys -t "$session" -l "country=DE"
tm send-keys -t "$session" Enter
wait_for "History · last 7 days · country=DE"
wait_for_line "^│ $(fmt "$de_events") "

echo "== b breaks down: by page, then by device (country is filtered), exact per device"
tm send-keys -t "$session" b
wait_for "by page"
wait_for_line "^ /[a-z]"
tm send-keys -t "$session" b
wait_for "by device"
wait_for_line "^ desktop +$de_desktop_views "
# Visitors within a filter's breakdown are not kept: a dash, and the note says so.
screen | grep -E "^ desktop" | grep -q "—" || { screen; echo "no dash for visitors"; exit 1; }
wait_for "additive KPIs only"

echo "== a bad filter shows the server's message"
tm send-keys -t "$session" f
wait_for "filter (dimension=value"
for _ in $(seq 12); do tm send-keys -t "$session" BSpace; done
tm send-keys -t "$session" -l "city=Paris"
tm send-keys -t "$session" Enter
wait_for "unknown dimension 'city'"

echo "== the server goes away: the view says so, and answers again once it is back"
tm send-keys -t "$session" f
wait_for "filter (dimension=value"
for _ in $(seq 12); do tm send-keys -t "$session" BSpace; done
tm send-keys -t "$session" Enter  # no filter
wait_for "History · last 7 days"
wait_for_line "^│ $(fmt "$events") "
kill -TERM "$server_pid"
wait "$server_pid" || true
tm send-keys -t "$session" r
wait_for_line "server unreachable at $address|lost the server at $address"
start_server_at "$server" "$dir/server2.log" "$address" --tick-ms 100 --data-dir "$dir/data" \
  --history-flush-ms 200
# Asked again by itself (every 10 s), with the history the restart kept.
wait_for "● answered" 40
wait_for_line "^│ $(fmt "$events") "

echo "== t returns to the live view; q exits 0"
tm send-keys -t "$session" t
tm send-keys -t "$session" t
wait_for "Real-time analytics"
tm send-keys -t "$session" q
for _ in $(seq 50); do [[ -s $dir/exit ]] && break; sleep 0.2; done
grep -qx "EXIT=0" "$dir/exit" || { cat "$dir/exit" "$dir/dashboard.err"; exit 1; }
echo "ok"
