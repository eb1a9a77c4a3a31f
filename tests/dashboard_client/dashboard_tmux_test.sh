#!/usr/bin/env bash
# End to end in tmux: the real server, known events, the dashboard in a 100x30 pane read with
# capture-pane: numbers appear, w switches the window, c opens the support chat (a message out
# and back, Esc closes it), a stopped server shows "reconnecting",
# restarted it shows "connected" again, q exits with status 0 and restores the terminal.
set -euo pipefail
server=$1 dashboard=$2 reporter=$3
source "$(dirname "$0")/../support/start_server.sh"
source "$(dirname "$0")/../support/tmux_pane.sh"
dir=$(mktemp -d)
tmux_pane_init "rta-dash-$$" "$dir"
cleanup() {
  tmux_pane_cleanup
  kill "$server_pid" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

start_server "$server" "$dir/server.log" --tick-ms 100
address=127.0.0.1:$server_port
for i in 1 2 3 4 5 6 7; do
  "$reporter" send --server "$address" --type page_view --page /landing --visitor "v$i" \
    --session "s$i" --referrer news.example --device tablet >/dev/null
done
"$reporter" send --server "$address" --type purchase --value 20 --visitor v1 --session s1 >/dev/null
"$reporter" send --server "$address" --type purchase --value 30.5 --visitor v2 --session s2 >/dev/null

# The pane inherits this script's environment (sanitizer options included: under ASan, a leak
# at exit makes the exit status non-zero). Its stderr goes to a file, shown when a step fails.
tm new-session -d -s "$session" -x 100 -y 30 \
  "env LANG=C.UTF-8 '$dashboard' --server '$address' --dashboard-id tmux-e2e 2>'$dir/dashboard.err'; echo EXIT=\$? >'$dir/exit'; sleep 60"

echo "== numbers appear"
wait_for "● connected"
wait_for '$50.50'            # revenue
wait_for "news.example"      # top referrers
wait_for "tablet"            # devices
screen | grep -F "Page views" -A1 | grep -q "│ 7 " || { screen; echo "page views 7 missing"; exit 1; }
wait_for "tmux-e2e"

echo "== resizes are followed"
tm resize-window -t "$session" -x 200 -y 50
# Wide: all five tables share one header line, once the dashboard has redrawn for the new size
# ("Top campaigns" alone is on the narrow screen too, so it cannot tell the redraw happened).
deadline=$((SECONDS + 15))
until screen | grep "Top pages" | grep -q "Devices"; do
  ((SECONDS < deadline)) || { screen; echo "no wide layout"; exit 1; }
  sleep 0.2
done
tm resize-window -t "$session" -x 80 -y 24
deadline=$((SECONDS + 15))
until screen | grep "Top pages" | grep -vq "Devices" && [[ $(screen | wc -l) -le 24 ]]; do
  ((SECONDS < deadline)) || { screen; echo "no narrow layout"; exit 1; }
  sleep 0.2
done
tm resize-window -t "$session" -x 100 -y 30

echo "== w switches the window"
tm send-keys -t "$session" w
wait_for "window 5m"

echo "== c opens the support chat: a message goes out and comes back, Esc closes it"
tm send-keys -t "$session" c
wait_for "Support chat"
wait_for "(no messages yet"
# The pane opens at once, the chat stream joins after: Enter before that keeps the line unsent
# ("not connected"), so the message is typed once the pane's own link line says connected (the
# status bar's "● connected" is the metrics stream's).
wait_for_line "^│ ● connected"
# The server is open (no user yet): the dashboard is the anonymous admin, whose messages name
# the user they answer. Keys typed in the pane are text: this "w" does not switch the window.
tm send-keys -t "$session" -l "@anonymous hello from tmux, w"
wait_for "> @anonymous hello from tmux, w"
tm send-keys -t "$session" Enter
wait_for "anonymous → anonymous: hello from tmux, w"
screen | grep -q "window 5m" || { screen; echo "a key typed in the chat changed the window"; exit 1; }
tm send-keys -t "$session" Escape
deadline=$((SECONDS + 15))
while screen | grep -qF "Support chat"; do
  ((SECONDS < deadline)) || { screen; echo "Esc did not close the chat"; exit 1; }
  sleep 0.2
done

echo "== the server stops: reconnecting"
kill -TERM "$server_pid"
wait "$server_pid" || true
wait_for "reconnecting in"
wait_for "server unreachable at $address"

echo "== the server is back: connected again"
start_server_at "$server" "$dir/server2.log" "$address" --tick-ms 100
wait_for "● connected" 30

echo "== q exits 0 and restores the terminal"
tm send-keys -t "$session" q
for _ in $(seq 50); do [[ -s $dir/exit ]] && break; sleep 0.2; done
cat "$dir/exit"
grep -qx "EXIT=0" "$dir/exit" || { cat "$dir/dashboard.err"; exit 1; }
if screen | grep -q "Real-time analytics"; then
  echo "the dashboard is still on screen after exit"; screen; exit 1
fi
echo "ok"
