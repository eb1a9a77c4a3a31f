#!/usr/bin/env bash
# Fetches the third-party gRPC-Web client that tests/web/grpc_web_client_chromium_test.py runs
# in headless Chromium against the server, so the server's gRPC-Web is checked by a client we
# did not write (issue 15). Debian packages no gRPC-Web client; npm's registry has
# @improbable-eng/grpc-web (a self-contained browser bundle) and protobufjs (the messages, built
# from analytics.proto at run time: Debian's protoc has no JavaScript generator).
#
# Test-only: nothing is built from these files and nothing ships with them. Each tarball is
# pinned by version and by the registry's sha512 integrity, checked before it is unpacked; only
# the browser bundles are kept. Idempotent: files already present and whole are left alone.
#   bash deploy/fetch_web_clients.sh [DIR]   # default $RTA_WEB_CLIENTS_DIR or ~/.cache/rta/web-clients
set -euo pipefail

dir=${1:-${RTA_WEB_CLIENTS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/rta/web-clients}}
readonly REGISTRY=https://registry.npmjs.org
# name, tarball path in the registry, sha512 integrity (base64, as the registry publishes it),
# the bundle inside the tarball, the name it is kept under
readonly CLIENTS=(
  "@improbable-eng/grpc-web 0.15.0|@improbable-eng/grpc-web/-/grpc-web-0.15.0.tgz|ERft9/0/8CmYalqOVnJnpdDry28q+j+nAlFFARdjyxXDJ+Mhgv9+F600QC8BR9ygOfrXRlAk6CvST2j+JCpQPg==|package/dist/grpc-web-client.umd.js|grpc-web-client.umd.js"
  "protobufjs 7.4.0|protobufjs/-/protobufjs-7.4.0.tgz|mRUWCc3KUU4w1jU8sGxICXH/gNS94DvI1gxqDvBzhj1JpcsimQkYiOJfwsPUykUI5ZaspFbSgmBLER8IrQ3tqw==|package/dist/protobuf.min.js|protobuf.min.js"
)

mkdir -p "$dir"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for entry in "${CLIENTS[@]}"; do
  IFS='|' read -r name path integrity member kept <<<"$entry"
  # The stamp names the integrity it came from: a pin changed here fetches again.
  if [[ -s "$dir/$kept" && "$(cat "$dir/$kept.sha512" 2>/dev/null)" == "$integrity" ]]; then
    continue
  fi
  echo "setup: fetching $name for the gRPC-Web client test"
  curl -fsS --retry 3 --max-time 60 -o "$work/package.tgz" "$REGISTRY/$path"
  got=$(openssl dgst -sha512 -binary "$work/package.tgz" | base64 -w0)
  if [[ "$got" != "$integrity" ]]; then
    echo "setup: $name from $REGISTRY/$path has sha512 $got, expected $integrity" >&2
    exit 1
  fi
  tar -xzf "$work/package.tgz" -C "$work" "$member"
  mv "$work/$member" "$dir/$kept"
  printf '%s' "$integrity" >"$dir/$kept.sha512"
done
