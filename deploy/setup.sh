#!/usr/bin/env bash
# Installs everything the project needs to build, test and run, from Debian 12 packages only.
# Idempotent: packages already present are left alone, so re-running is cheap.
set -euo pipefail

readonly PACKAGES=(
  build-essential cmake pkg-config git
  ninja-build lld  # CMakePresets.json builds with Ninja; CMakeLists.txt links with lld
  libgrpc++-dev libgrpc-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libboost-dev libboost-system-dev
  prometheus-cpp-dev nlohmann-json3-dev catch2 libbenchmark-dev
  libsimdjson-dev  # proto/event_json: JSON events (HTTP bodies, replay) parsed and validated fast
  libncurses-dev libsodium-dev
  librocksdb-dev  # server/storage: checkpoints (and the history issue's rollups)
  libssl-dev openssl  # server/auth: TLS file checks; the TLS tests make their certificates
  clang libclang-rt-14-dev  # fuzz/: clang and its libFuzzer + sanitizer runtimes (only a recommends)
  tmux curl python3 procps
  python3-h2
  # tests/web: tracker.js in a real headless browser (issue 15)
  chromium chromium-driver python3-selenium
  # server/cluster and its tests: NATS JetStream (issue 16)
  nats-server libnats-dev
  prometheus  # tests/deploy: promtool checks deploy/prometheus, a real Prometheus scrapes the server
  python3-yaml  # tests/deploy: reads the cluster's compose file and Kubernetes manifests
  # bench/go: the grpc-go reference server that fan-out is measured against (issue 14)
  golang-go golang-google-grpc-dev golang-goprotobuf-dev
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "setup: all ${#PACKAGES[@]} packages present"
  # tests/web: the gRPC-Web client we did not write (npm's registry; Debian has none)
  bash "$(dirname "$0")/fetch_web_clients.sh"
  exit 0
fi

SUDO=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup: run as root (missing: ${missing[*]})" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
bash "$(dirname "$0")/fetch_web_clients.sh"
