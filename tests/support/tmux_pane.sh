# Sourced by the tmux tests: a tmux server of their own and a pane they read.
#   tmux_pane_init NAME DIR    the session name ($session) and the directory whose logs a
#                              failed wait shows (server*.log, dashboard.err)
#   tm ARGS...                 tmux on that server (its own socket: the test neither sees nor
#                              disturbs the user's sessions, and panes start from the test's
#                              environment)
#   screen                     the pane's text
#   wait_for TEXT [SECONDS]    until the pane shows TEXT (default 15 s); else the pane and logs
#   wait_for_line REGEX [S]    until a line of the pane matches the extended regex
#   tmux_pane_cleanup          kills that tmux server
tmux_pane_init() {
  session=$1
  tmux_pane_logs=$2
}
tm() { tmux -L "$session" "$@"; }
screen() { tm capture-pane -p -t "$session"; }
tmux_pane_cleanup() { tm kill-server 2>/dev/null || true; }
tmux_pane_fail() {
  echo "timed out waiting for: $1"
  screen
  tail -n 5 "$tmux_pane_logs"/server*.log "$tmux_pane_logs/dashboard.err" 2>/dev/null || true
  return 1
}
# Until `grep OPTION PATTERN` finds it in the pane, or SECONDS pass (then the pane and logs).
tmux_pane_wait() {
  local option=$1 pattern=$2 what=$3 deadline=$((SECONDS + ${4:-15}))
  while ((SECONDS < deadline)); do
    screen | grep -q "$option" -- "$pattern" && return 0
    sleep 0.2
  done
  tmux_pane_fail "$what"
}
wait_for() { tmux_pane_wait -F "$1" "$1" "${2:-15}"; }
wait_for_line() { tmux_pane_wait -E "$1" "a line matching $1" "${2:-15}"; }
