# Sourced by the shell tests: starts the real analytics_server on an ephemeral loopback port.
#   start_server BINARY LOG [extra flags...]
# Sets $server_pid and $server_port, and $server_metrics_port when the flags give the server a
# metrics port (empty otherwise); fails with the server's log when it does not come up in 30 s.
# The caller's EXIT trap should `kill "$server_pid"`.
start_server() {
  local binary=$1 log=$2
  shift 2
  # Memory-only and without the HTTP port unless the caller passes --data-dir or --http-listen
  # (a later flag wins): parallel tests share a working directory and the default ports.
  "$binary" --listen 127.0.0.1:0 --metrics-listen '' --http-listen '' --data-dir '' "$@" 2>"$log" &
  server_pid=$!
  # Up to 30 s: a sanitizer build recovering a data directory (the README's history examples
  # replay three days of events) is slow to start.
  for _ in $(seq 300); do grep -q "event=listening" "$log" && break; sleep 0.1; done
  server_port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
  [[ -n $server_port ]] || { echo "server did not start:"; cat "$log"; return 1; }
  # Logged before event=listening.
  server_metrics_port=$(sed -n 's/.*event=metrics_listening.* port=\([0-9]*\).*/\1/p' "$log" |
    head -1)
}

# start_server_at BINARY LOG ADDRESS [extra flags...]: the same on a given address (a restart on
# the port the clients know). Until the port is bound again, any new connection on the machine
# (other tests run in parallel) may get it as its ephemeral source port: retries for 20 s.
start_server_at() {
  local binary=$1 log=$2 address=$3
  shift 3
  local deadline=$((SECONDS + 20))
  while :; do
    "$binary" --listen "$address" --metrics-listen '' --http-listen '' --data-dir '' "$@" 2>"$log" &
    server_pid=$!
    until grep -q "event=listening" "$log" || ! kill -0 "$server_pid" 2>/dev/null ||
      ((SECONDS >= deadline)); do
      sleep 0.1
    done
    grep -q "event=listening" "$log" && return 0
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" || true
    if ((SECONDS >= deadline)); then
      echo "cannot listen on $address again:"; cat "$log"; return 1
    fi
    sleep 0.5
  done
}
