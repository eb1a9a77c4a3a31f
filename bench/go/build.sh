#!/usr/bin/env bash
# Builds bench/go/refserver, the grpc-go reference server of `load_driver --scenario fanout-go`,
# from the project's own proto/analytics.proto, offline, in GOPATH mode against Debian's Go
# packages (golang-go, golang-google-grpc-dev, golang-goprotobuf-dev: protoc-gen-go 1.3 with
# its grpc plugin).
#   bash bench/go/build.sh OUT_BINARY
set -euo pipefail
out=${1:?usage: bench/go/build.sh OUT_BINARY}
root=$(cd "$(dirname "$0")/../.." && pwd)
for tool in go protoc protoc-gen-go; do
  command -v "$tool" >/dev/null || {
    echo "bench/go/build.sh: $tool not found (apt-get install golang-go golang-google-grpc-dev" \
         "golang-goprotobuf-dev protobuf-compiler)" >&2
    exit 1
  }
done
[[ -d /usr/share/gocode/src/google.golang.org/grpc ]] || {
  echo "bench/go/build.sh: grpc-go sources missing (apt-get install golang-google-grpc-dev)" >&2
  exit 1
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/src/rta/analyticspb" "$work/src/rta/refserver"
protoc -I "$root/proto" \
  --go_out="plugins=grpc,Manalytics.proto=rta/analyticspb:$work/src/rta/analyticspb" \
  "$root/proto/analytics.proto"
cp "$root/bench/go/refserver/main.go" "$work/src/rta/refserver/"
# The build cache beside the binary, so a rebuild after a proto change is quick.
cache="$(dirname "$out")/.go-cache"
mkdir -p "$cache"
(cd "$work/src/rta/refserver" &&
  GO111MODULE=off GOPATH="$work:/usr/share/gocode" GOPROXY=off GOFLAGS= GOCACHE="$(realpath "$cache")" \
    go build -o "$(realpath -m "$out")" .)
