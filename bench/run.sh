#!/usr/bin/env bash
# The whole benchmark suite in a few minutes: aggregator micro-benchmarks, then every load
# scenario against real server processes on loopback. Writes bench/results/<date>.json and
# <date>.md (the table to copy into bench/README.md).
#   bash bench/run.sh              # full run (about 16 minutes on 2 cores, with the durable-ingest
#                                  # scenarios: publish, publish-latency, recovery, checkpoint-stall,
#                                  # fan-out against the grpc-go reference server, ingest into
#                                  # JetStream, and the history: 4 hours of traffic folded,
#                                  # 30-day range queries)
#   SECONDS_PER_RUN=2 bash bench/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --parallel "$(nproc)" --target aggregator_bench load_driver \
  history_bench event_json_bench
mkdir -p bench/results
date=$(date -u +%F)
build/release/bench/micro/aggregator_bench --benchmark_format=console \
  --benchmark_out="bench/results/${date}-micro.json" --benchmark_out_format=json
build/release/bench/load/load_driver --seconds "${SECONDS_PER_RUN:-5}" --output-dir bench/results
rm -f "bench/results/${date}-micro.json"
# JSON events as POST /v1/events and `replay` read them, nlohmann's document parse beside.
build/release/bench/micro/event_json_bench | tee "bench/results/${date}-event-json.txt"
cat "bench/results/${date}.md"
# Fan-out against the plain grpc-go server (bench/go/refserver, built from proto/ with
# load_driver), pair by pair: cpu_per_update_vs_reference and rss_per_subscriber_vs_reference
# are our server's figures over the reference's in the same pair.
build/release/bench/load/load_driver --scenario fanout-go --seconds "${SECONDS_PER_RUN:-5}" \
  | tee "bench/results/${date}-fanout-go.txt"
# The same 2,000-subscriber load on gRPC C++'s callback API (bench/load/callback_refserver)
# against the Go server: the callback API as issue 14's measured comparison.
build/release/bench/load/load_driver --scenario fanout-go --fanout-load cpu --rounds 2 \
  --seconds "${SECONDS_PER_RUN:-5}" --server-binary build/release/bench/load/callback_refserver \
  | tee "bench/results/${date}-fanout-callback.txt"
# Ingest into the local log, into one node over JetStream on 1 and 3 local nats-servers and into
# three nodes over three (issue 16), round by round: CPU per event of the nodes and the
# nats-servers, bytes stored, partials exchanged, and the merge delay from node A to node B
# (about 5 minutes).
build/release/bench/load/load_driver --scenario cluster-ingest --rounds 2 \
  --seconds "${SECONDS_PER_RUN:-5}" | tee "bench/results/${date}-cluster-ingest.txt"
# The history (issue 13): 4 hours at 1,000 events/s folded as the server's rollup writer does,
# disk per day after compaction, and 30-day range queries (about 2.5 minutes).
build/release/bench/micro/history_bench --hours 4 --rate 1000 --queries 1000 \
  | tee "bench/results/${date}-history.txt"
