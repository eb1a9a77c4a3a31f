# Sourced by the shell tests: starts the real analytics_server on an ephemeral loopback port.
#   start_server BINARY LOG [extra flags...]
# Sets $server_pid and $server_port; fails with the server's log when it does not come up in
# 10 s. The caller's EXIT trap should `kill "$server_pid"`.
start_server() {
  local binary=$1 log=$2
  shift 2
  # Memory-only unless the caller passes --data-dir (a later flag wins): parallel tests share
  # a working directory, and with it the default data directory.
  "$binary" --listen 127.0.0.1:0 --metrics-listen '' --data-dir '' "$@" 2>"$log" &
  server_pid=$!
  # Up to 30 s: a sanitizer build recovering a data directory (the README's history examples
  # replay three days of events) is slow to start.
  for _ in $(seq 300); do grep -q "event=listening" "$log" && break; sleep 0.1; done
  server_port=$(sed -n 's/.*event=listening.* port=\([0-9]*\).*/\1/p' "$log" | head -1)
  [[ -n $server_port ]] || { echo "server did not start:"; cat "$log"; return 1; }
}
