#!/usr/bin/env bash
# Every shell example of README.md (the lines of its ```sh blocks), run as pasted against a
# fresh real analytics_server on an ephemeral loopback port, one server per example, in a
# scratch directory (examples may use the files earlier ones wrote: replay traffic.jsonl).
#
# What is changed, and why:
# - The documented addresses 127.0.0.1:50051, localhost:50051 and analytics:50051 become the
#   test server's; a client that names no --server (its default is 127.0.0.1:50051) gets it
#   appended by a wrapper on PATH. `analytics_server` examples get --listen 127.0.0.1:0 and
#   --metrics-listen 127.0.0.1:0 unless they name their own (127.0.0.1:6000 becomes :0): the
#   defaults, 0.0.0.0:50051 and :9464, are not a test's to take.
# - Files the examples read as the user's own (events.jsonl, app.jsonl, server.json) are
#   made here, small and valid.
#
# How each example runs is decided by the table below, keyed by the example's exact text
# (its trailing comment removed). An example the table does not know fails the test, and so
# does a table entry no longer in the README: the two cannot drift apart silently.
#   run        must exit 0 within 60 s
#   ctrl-c     documented to run until Ctrl-C: must still be running after a few seconds, then
#              SIGINT to its process group (what a terminal's Ctrl-C does) must end it with 0
#   terminal   an interactive full-screen program: runs in a tmux pane, must draw its
#              "● connected" status, then `q` must end it with status 0
#   skip:WHY   not run, for the reason given
#   serve      starts analytics_server: must log event=listening, take an event, and exit 0 on
#              SIGINT
#   history    as run, against a server with a data directory that every history example
#              shares (each still gets its own server process: what one wrote, the next reads)
#   http       as run, against a server with its HTTP port on (127.0.0.1:8080 in the example
#              becomes that port)
# After an example, verify() checks what it should have done where that can be checked.
#
# Usage: readme_examples_test.sh README.md analytics_server event_reporter dashboard_client analytics_ctl
set -euo pipefail
readme=$1 server_bin=$2 reporter_bin=$3 dashboard_bin=$4 ctl_bin=$5
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../support/start_server.sh"

declare -A how=(
  ["bash deploy/run.sh"]="skip:installs Debian packages as root, builds the tree, then runs until q; a system set-up, not a step a test may take"
  ["bash deploy/test.sh"]="skip:installs Debian packages as root and rebuilds and runs the whole suite, this test included"
  ["build/release/server/analytics_server"]="serve"
  ["build/release/server/analytics_server --listen 127.0.0.1:6000 --tick-ms 250 --config server.json"]="serve"
  ["build/release/server/analytics_server --help"]="run"
  ["build/release/server/analytics_server --data-dir analytics-state --fsync interval --fsync-interval-ms 5"]="serve"
  ["build/release/server/analytics_server --init --data-dir analytics-secure"]="run"
  ["build/release/server/analytics_server --data-dir analytics-secure"]="serve"
  ["dashboard_client --once --json --token-file analytics-secure/admin.token"]="run"
  ["analytics_ctl --token-file analytics-secure/admin.token users list"]="run"
  ["event_reporter replay events.jsonl"]="run"
  ["tail -f app.jsonl | event_reporter replay - --linger-ms 200"]="ctrl-c"
  ["event_reporter generate --rate 200"]="ctrl-c"
  ["event_reporter generate --events 100000 --seed 7 --output traffic.jsonl"]="run"
  ["event_reporter replay traffic.jsonl"]="run"
  ["event_reporter send --type purchase --value 59.90 --visitor v1 --session s1"]="run"
  ["event_reporter replay events.jsonl --from-line 4"]="run"
  ["event_reporter replay --help"]="run"
  ["dashboard_client"]="terminal"
  ["dashboard_client --server analytics:50051 --window 5m --interval 2000"]="terminal"
  ["dashboard_client --once --json | jq .metrics.revenue"]="run"
  ["dashboard_client --plain >> metrics.log"]="ctrl-c"
  ["dashboard_client --filter utm_campaign=black_friday --filter country=DE"]="terminal"
  ["dashboard_client --once --filter country=DE --metrics events_total,conversions"]="run"
  ["curl -s -X POST 127.0.0.1:8080/v1/events -H 'Content-Type: application/json' -d '[{\"event_id\":\"w1\",\"event_type\":\"page_view\",\"page\":\"/pricing\",\"visitor_id\":\"v9\",\"session_id\":\"s9\"}]'"]="http"
  ['event_reporter generate --events 259200 --rate 1 --start-ms $(( $(date +%s%3N) - 4 * 86400000 )) --output three-days.jsonl']="run"
  ["event_reporter replay three-days.jsonl"]="history"
  ["dashboard_client --once --range 7d --compare --breakdown country"]="history"
  ["dashboard_client --once --json --range 7d --filter utm_campaign=black_friday --metrics conversions,revenue"]="history"
  ["dashboard_client --once --range 7d --filter utm_campaign=black_friday --filter country=DE --metrics conversions,revenue"]="history"
  ["dashboard_client --once --range 7d --filter utm_campaign=black_friday --breakdown country --breakdown-by conversions --metrics conversions,revenue,sessions"]="history"
)

work=$(mktemp -d)
session="rta-readme-$$"
server_pid=""
cleanup() {
  tmux -L "$session" kill-server 2>/dev/null || true
  [[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  exit 1
}

# --- The examples: the lines of the ```sh blocks, continuation lines joined, comments removed.
examples=()
while IFS= read -r line; do
  examples+=("$line")
done < <(awk '
  /^```sh[[:space:]]*$/ { inside = 1; next }
  /^```/ { inside = 0; next }
  inside {
    if (sub(/\\[[:space:]]*$/, "")) { pending = pending $0; next }
    line = pending $0; pending = ""
    sub(/[[:space:]]+#[[:space:]].*$/, "", line)   # a trailing comment
    sub(/^[[:space:]]+/, "", line); sub(/[[:space:]]+$/, "", line)
    if (line != "" && line !~ /^#/) print line
  }' "$readme")
((${#examples[@]} > 0)) || fail "no \`\`\`sh examples found in $readme"
declare -A in_readme=()
for example in "${examples[@]}"; do in_readme["$example"]=1; done
for known in "${!how[@]}"; do
  [[ -n ${in_readme[$known]:-} ]] ||
    fail "the table has an example that README.md no longer has (remove it): $known"
done
for example in "${examples[@]}"; do
  [[ -n ${how[$example]:-} ]] ||
    fail "README.md has an example this test does not know how to run; add it to the table in $0: $example"
done

# --- The user's side: binaries on PATH aimed at the test server, the build tree's path for
# the server, and the files the examples read.
mkdir -p "$work/bin" "$work/build/release/server"
for pair in "event_reporter:$reporter_bin" "dashboard_client:$dashboard_bin" "analytics_ctl:$ctl_bin"; do
  name=${pair%%:*} real=${pair#*:}
  cat >"$work/bin/$name" <<WRAPPER
#!/usr/bin/env bash
# $name as the README runs it, aimed at the test's server when it names none.
for arg in "\$@"; do
  [[ \$arg == --server || \$arg == --server=* ]] && exec "$real" "\$@"
done
exec "$real" "\$@" --server "\$RTA_README_SERVER"
WRAPPER
  chmod +x "$work/bin/$name"
done
cat >"$work/build/release/server/analytics_server" <<WRAPPER
#!/usr/bin/env bash
# analytics_server as the README runs it, on ephemeral loopback ports unless it names its own.
extra=()
[[ " \$* " == *" --listen "* ]] || extra+=(--listen 127.0.0.1:0)
[[ " \$* " == *" --metrics-listen "* ]] || extra+=(--metrics-listen 127.0.0.1:0)
[[ " \$* " == *" --http-listen "* ]] || extra+=(--http-listen 127.0.0.1:0)
exec "$server_bin" "\$@" "\${extra[@]}"
WRAPPER
chmod +x "$work/build/release/server/analytics_server"
export PATH="$work/bin:$PATH"
# Events without timestamp_ms: the server stamps them with its own time.
for i in 1 2 3 4 5; do
  echo "{\"event_type\":\"page_view\",\"page\":\"/docs/$i\",\"visitor_id\":\"v$i\",\"session_id\":\"s$i\"}"
done >"$work/events.jsonl"
printf '%s\n' '{"event_type":"page_view","page":"/","visitor_id":"a1","session_id":"a1"}' \
  '{"event_type":"click","page":"/","visitor_id":"a1","session_id":"a1"}' \
  '{"event_type":"signup","page":"/account/new","visitor_id":"a1","session_id":"a1"}' >"$work/app.jsonl"
echo '{"tick_ms": 500, "dedupe_horizon_seconds": 300}' >"$work/server.json"

# --- Helpers.
# total METRIC: its WINDOW_TOTAL value on the test server, read with the real dashboard_client.
total() {
  "$dashboard_bin" --once --json --server "$RTA_README_SERVER" | jq -r ".metrics.$1.total"
}
# wait_total METRIC VALUE: until the server's total is VALUE (it folds events in every tick).
wait_total() {
  local deadline=$((SECONDS + 10)) value=""
  while ((SECONDS < deadline)); do
    value=$(total "$1" || true)
    [[ $value == "$2" ]] && return 0
    sleep 0.2
  done
  fail "$1 total is $value on the server, expected $2"
}
# wait_counting METRIC: until the server's total is above zero. Generous (30 s): a sanitizer
# build's first connection on a CI box busy with the heaviest tests can take several seconds.
wait_counting() {
  local deadline=$((SECONDS + 30)) value=""
  while ((SECONDS < deadline)); do
    value=$(total "$1" || true)
    [[ $value =~ ^[0-9.]+$ && $value != 0 ]] && return 0
    sleep 0.2
  done
  fail "$1 total is still '$value' on the server after 30 s"
}
# alive PID SECONDS: the process is still running after SECONDS.
alive() {
  local deadline=$((SECONDS + $2))
  while ((SECONDS < deadline)); do
    kill -0 "$1" 2>/dev/null || return 1
    sleep 0.2
  done
}
# finish PID SECONDS: waits for PID (a child of this shell) at most SECONDS; sets $status.
finish() {
  timeout "$2" tail --pid="$1" -f /dev/null || { kill -KILL -- "-$1" 2>/dev/null; fail "still running $2 s after it was told to stop"; }
  status=0
  wait "$1" || status=$?
}

# verify EXAMPLE: what the example should have done, where that can be checked.
verify() {
  case $1 in
    "build/release/server/analytics_server --help")
      grep -q -- "--listen" "$work/out" || fail "--help does not list --listen" ;;
    "build/release/server/analytics_server --init --data-dir analytics-secure")
      [[ $(stat -c %a "$work/analytics-secure/admin.token") == 600 ]] ||
        fail "admin.token is not mode 0600"
      grep -q "^rta_" "$work/analytics-secure/admin.token" || fail "admin.token holds no token" ;;
    "event_reporter replay events.jsonl")
      wait_total events_total 5 ;;
    "curl -s -X POST 127.0.0.1:8080/v1/events"*)
      [[ $(cat "$work/out") == '{"accepted":1,"duplicates":0,"rejected":0,"errors":[]}' ]] ||
        fail "the HTTP post answered: $(cat "$work/out")"
      wait_total page_views 1 ;;
    "tail -f app.jsonl | event_reporter replay - --linger-ms 200")
      grep -q "^replay: 3 sent, 3 accepted, 0 duplicates, 0 rejected, 0 failed" "$work/out" ||
        fail "the pipe's summary does not show its 3 events accepted" ;;
    "event_reporter generate --rate 200")
      # What it says it delivered is what the server counted.
      accepted=$(sed -n 's/^generate: [0-9,]* sent, \([0-9,]*\) accepted, 0 duplicates, 0 rejected, 0 failed.*/\1/p' "$work/out" | tr -d ,)
      [[ -n $accepted && $accepted -gt 0 ]] || fail "generate delivered nothing cleanly"
      wait_total events_total "$accepted" ;;
    "event_reporter generate --events 100000 --seed 7 --output traffic.jsonl")
      [[ $(wc -l <"$work/traffic.jsonl") -eq 100000 ]] || fail "traffic.jsonl does not have 100000 lines" ;;
    "event_reporter replay traffic.jsonl")
      grep -q "100,000 sent, 100,000 accepted, 0 duplicates, 0 rejected, 0 failed" "$work/out" ||
        fail "not every event of traffic.jsonl was accepted"
      wait_total events_total 100000 ;;
    "event_reporter send --type purchase --value 59.90 --visitor v1 --session s1")
      wait_total revenue 59.9
      wait_total conversions 1 ;;
    "event_reporter replay events.jsonl --from-line 4")
      # Lines 4 and 5 of the five.
      grep -q "^replay: 2 sent, 2 accepted" "$work/out" || fail "--from-line 4 did not send lines 4-5"
      wait_total events_total 2 ;;
    "event_reporter replay --help")
      grep -q "Examples:" "$work/out" || fail "replay --help shows no examples" ;;
    "dashboard_client --once --json | jq .metrics.revenue")
      jq -e 'has("total") and has("1m")' "$work/out" >/dev/null || fail "no revenue per window in the output" ;;
    "event_reporter replay three-days.jsonl")
      grep -q "^replay: 259,200 sent, 259,200 accepted, 0 duplicates, 0 rejected" "$work/out" ||
        fail "the three days were not all accepted"
      # The history folds in the background (a stop folds for at most 2 s, a start for 5 s):
      # wait until it holds them all, as a user would before asking about the three days.
      deadline=$((SECONDS + 180))
      until "$dashboard_bin" --server "$RTA_README_SERVER" --once --json --range 7d \
        --metrics events_total 2>/dev/null | jq -e '.totals.events_total == 259200' >/dev/null; do
        ((SECONDS < deadline)) || fail "the history did not reach the 259,200 events in 180 s"
        sleep 0.5
      done ;;
    "dashboard_client --once --range 7d --compare --breakdown country")
      grep -q "^  events_total      259.2k" "$work/out" || fail "the 7-day range does not hold the 259,200 events"
      grep -q "^by country:" "$work/out" || fail "no breakdown by country" ;;
    "dashboard_client --once --json --range 7d --filter utm_campaign=black_friday --metrics conversions,revenue")
      jq -e '.totals.conversions > 0 and .totals.revenue > 0 and .filters.utm_campaign == "black_friday"' \
        "$work/out" >/dev/null || fail "no black_friday conversions and revenue in the JSON" ;;
    "dashboard_client --once --range 7d --filter utm_campaign=black_friday --filter country=DE --metrics conversions,revenue")
      grep -q "^range .*, utm_campaign=black_friday, country=DE$" "$work/out" || fail "the two conditions are not named"
      grep -Eq "^  conversions +[1-9]" "$work/out" || fail "no conversions for black_friday in DE" ;;
    "dashboard_client --once --range 7d --filter utm_campaign=black_friday --breakdown country --breakdown-by conversions --metrics conversions,revenue,sessions")
      grep -q "^by country:" "$work/out" || fail "no breakdown by country within the campaign"
      grep -Eq "^  [A-Z]{2} +[1-9]" "$work/out" || fail "no country row with conversions" ;;
    "dashboard_client --once --filter country=DE --metrics events_total,conversions")
      grep -q "events_total" "$work/out" || fail "the live segment's snapshot has no events_total" ;;
    "dashboard_client --plain >> metrics.log")
      grep -q "^Updated metric: " "$work/metrics.log" || fail "metrics.log has no 'Updated metric:' lines" ;;
  esac
}

# --- Each example against its own fresh server.
count=0
for example in "${examples[@]}"; do
  mode=${how[$example]}
  if [[ $mode == skip:* ]]; then
    echo "== skipped: $example (${mode#skip:})"
    continue
  fi
  count=$((count + 1))
  : >"$work/server-$count.log"  # exists before start_server looks into it
  if [[ $mode == history ]]; then
    start_server "$server_bin" "$work/server-$count.log" --data-dir "$work/history-data" \
      --history-flush-ms 200
  elif [[ $mode == http ]]; then
    start_server "$server_bin" "$work/server-$count.log" --http-listen 127.0.0.1:0
  else
    start_server "$server_bin" "$work/server-$count.log"
  fi
  export RTA_README_SERVER="127.0.0.1:$server_port"
  command=$(sed -E "s/(127\.0\.0\.1|localhost|analytics):50051/127.0.0.1:$server_port/g" <<<"$example")
  if [[ $mode == http ]]; then
    http_port=$(sed -n 's/.*event=http_listening.* port=\([0-9]*\).*/\1/p' "$work/server-$count.log" | head -1)
    [[ -n $http_port ]] || { cat "$work/server-$count.log"; fail "no HTTP port: $example"; }
    command=${command//127.0.0.1:8080/127.0.0.1:$http_port}
  fi
  # A server example's own --listen address becomes an ephemeral port.
  [[ $mode == serve ]] && command=$(sed -E 's/--listen [^ ]+/--listen 127.0.0.1:0/' <<<"$command")
  echo "== $mode: $command"
  printf '%s\n' "$command" >"$work/example.sh"
  cd "$work"
  case $mode in
    run | history | http)
      status=0
      timeout 60 bash "$work/example.sh" >"$work/out" 2>"$work/err" || status=$?
      [[ $status -eq 0 ]] || { cat "$work/out" "$work/err"; fail "exit status $status: $example"; } ;;
    ctrl-c)
      # Its own process group, as a terminal's foreground job has; and SIGINT back to its
      # default action, which a shell sets to "ignore" for what it starts in the background
      # (`tail -f` would outlive the Ctrl-C otherwise, as it does not in a terminal).
      setsid env --default-signal=INT bash "$work/example.sh" >"$work/out" 2>"$work/err" </dev/null &
      pid=$!
      if [[ $example == "tail -f app.jsonl"* ]]; then
        wait_total events_total 3  # delivered while the pipe is still open
      elif [[ $example == "event_reporter generate"* ]]; then
        wait_counting events_total  # it is delivering, however slow its start was
      fi
      alive "$pid" 3 || { cat "$work/out" "$work/err"; fail "ended before Ctrl-C: $example"; }
      kill -INT -- "-$pid"
      finish "$pid" 15
      [[ $status -eq 0 ]] || { cat "$work/out" "$work/err"; fail "exit status $status after Ctrl-C: $example"; }
      cat "$work/out" ;;
    terminal)
      tmux -L "$session" new-session -d -s "ex$count" -x 100 -y 30 \
        "env LANG=C.UTF-8 PATH='$PATH' RTA_README_SERVER='$RTA_README_SERVER' bash '$work/example.sh' 2>'$work/err'; echo \$? >'$work/exit'; sleep 30"
      deadline=$((SECONDS + 15))
      until tmux -L "$session" capture-pane -p -t "ex$count" | grep -qF "● connected"; do
        ((SECONDS < deadline)) || { tmux -L "$session" capture-pane -p -t "ex$count"; cat "$work/err"; fail "never showed '● connected': $example"; }
        sleep 0.2
      done
      if [[ $example == *"--window 5m"* ]]; then
        tmux -L "$session" capture-pane -p -t "ex$count" | grep -q "5m" || fail "the 5m window is not shown"
      fi
      rm -f "$work/exit"
      tmux -L "$session" send-keys -t "ex$count" q
      deadline=$((SECONDS + 10))
      until [[ -s $work/exit ]]; do
        ((SECONDS < deadline)) || fail "did not quit on q: $example"
        sleep 0.2
      done
      [[ $(cat "$work/exit") == 0 ]] || { cat "$work/err"; fail "exit status $(cat "$work/exit") after q: $example"; }
      tmux -L "$session" kill-session -t "ex$count" ;;
    serve)
      log="$work/serve-$count.log"
      : >"$log"
      setsid env --default-signal=INT bash "$work/example.sh" >"$work/out" 2>"$log" </dev/null &
      pid=$!
      # Generous: a sanitizer build restoring a checkpoint on a CI box busy with other tests.
      deadline=$((SECONDS + 30))
      until grep -q "event=listening" "$log"; do
        ((SECONDS < deadline)) || { cat "$log"; fail "did not start: $example"; }
        sleep 0.1
      done
      port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
      token=()
      if [[ $example == *"--data-dir analytics-secure"* ]]; then
        # After --init every call needs the admin token: without it the event is refused.
        "$reporter_bin" send --type page_view --server "127.0.0.1:$port" --quiet \
          --give-up-after 0 >/dev/null 2>&1 && fail "the server of '$example' took an event without a token"
        token=(--token-file "$work/analytics-secure/admin.token")
      fi
      "$reporter_bin" send --type page_view --server "127.0.0.1:$port" --quiet "${token[@]}" >/dev/null ||
        fail "the server of '$example' did not take an event"
      if [[ $example == *"--tick-ms 250"* ]]; then
        grep -q "event=listening.* tick_ms=250" "$log" ||
          { cat "$log"; fail "--tick-ms 250 did not win over server.json's tick_ms"; }
      fi
      kill -INT -- "-$pid"
      finish "$pid" 15
      [[ $status -eq 0 ]] || { cat "$log"; fail "exit status $status after SIGINT: $example"; }
      grep -q "event=shutdown_complete" "$log" || fail "no shutdown_complete: $example" ;;
    *) fail "unknown mode '$mode' for: $example" ;;
  esac
  verify "$example"
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
done
echo "ok: $count README examples ran, $((${#examples[@]} - count)) skipped with their reasons"
