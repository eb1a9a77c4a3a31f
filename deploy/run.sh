#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine: set up, build, and run analytics_server on its
# defaults (gRPC on 0.0.0.0:50051, Prometheus on 0.0.0.0:9464/metrics). Ctrl-C stops it in order.
#   bash deploy/run.sh [analytics_server flags...]
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/setup.sh
cmake --preset release >/dev/null
cmake --build --preset release --parallel "$(nproc)" --target analytics_server
exec build/release/server/analytics_server "$@"
