#!/usr/bin/env bash
# Issue 10, de-duplication: the real server with its DEFAULT de-dup settings takes 2,000,000
# distinct event ids as fast as two loopback streams send them, then the first 100,000 again,
# well inside the 600 s horizon. Every re-sent id must be a duplicate (before the fix, 2,611-3,458
# of them were counted twice), and no id may have been evicted early.
set -euo pipefail
server=$1 client=$2
source "$(dirname "$0")/../support/start_server.sh"
log=$(mktemp)
trap 'kill "$server_pid" 2>/dev/null || true; rm -f "$log"' EXIT
start_server "$server" "$log" --metrics-listen 127.0.0.1:0
metrics_port=$server_metrics_port

out=$(timeout 120 "$client" dedupe "127.0.0.1:$server_port" 2000000 100000)
echo "$out"
grep -q '^pass=1 accepted=2000000 duplicates=0 rejected=0 ' <<<"$out" ||
  { echo "FAIL: first pass must accept every one of 2,000,000 distinct ids"; exit 1; }
grep -q '^pass=2 accepted=0 duplicates=100000 rejected=0$' <<<"$out" ||
  { echo "FAIL: every re-sent id must be a duplicate"; exit 1; }

# The gauges and counters appear after the next tick (1 s by default).
scrape() { curl -s --max-time 5 "http://127.0.0.1:$metrics_port/metrics"; }
for _ in $(seq 50); do
  metrics=$(scrape)
  grep -q '^analytics_dedupe_capacity_ids 3145728$' <<<"$metrics" && break
  sleep 0.1
done
grep -E '^analytics_(dedupe|events_ingested|events_duplicate)' <<<"$metrics"
grep -q '^analytics_dedupe_capacity_ids 3145728$' <<<"$metrics" ||
  { echo "FAIL: analytics_dedupe_capacity_ids"; exit 1; }
grep -q '^analytics_dedupe_early_evictions_total 0$' <<<"$metrics" ||
  { echo "FAIL: early evictions"; exit 1; }
grep -q '^analytics_events_duplicate_total 100000$' <<<"$metrics" ||
  { echo "FAIL: duplicate counter"; exit 1; }
echo "PASS"
