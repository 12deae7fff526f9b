#!/usr/bin/env bash
# Builds Jaeger (github.com/jaegertracing/jaeger/cmd/jaeger, the OpenTelemetry
# Collector based all-in-one: OTLP gRPC and HTTP receivers, an in-memory store,
# the query API) from its published Go module into a cache dir outside git.
# The trace tests export the proxy's and the operator's spans to it and read
# them back through its query API.
#
#   tests/trace/build-jaeger.sh     build it if missing; print the binary's path
#
# Idempotent: a warm run takes well under a second and needs no go command.
# TOLLGATE_JAEGER_VERSION overrides the version, TOLLGATE_TOOLS_DIR the cache
# root. stdout is only the binary's path. Go builds this upstream tool for
# the tests only, never product code.
set -euo pipefail

version="${TOLLGATE_JAEGER_VERSION:-v1.75.0}"
root="${TOLLGATE_TOOLS_DIR_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/tools}"
dir="$root/jaeger-$version"
binary="$dir/bin/jaeger"
log() { echo "build-jaeger: $*" >&2; }

if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi
command -v go >/dev/null || { log "the go command is needed to build jaeger"; exit 1; }
mkdir -p "$dir/bin"
exec 9>"$dir/.lock"
flock 9
if [[ -x "$binary" ]]; then echo "$binary"; exit 0; fi

src="$dir/src"
rm -rf "$src"
mkdir -p "$src"
cd "$src"
printf 'module tollgate.local/tools\n\ngo %s\n' "$(go env GOVERSION | sed -E 's/^go([0-9.]+).*/\1/')" > go.mod
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOWORK=off
go mod edit -require="github.com/jaegertracing/jaeger@$version"
log "building jaeger $version..."
start=$(date +%s)
go build -trimpath -ldflags "-s -w" -o "$dir/bin/.jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger
mv "$dir/bin/.jaeger.tmp" "$binary"
secs=$(( $(date +%s) - start ))
log "built jaeger in ${secs}s"
echo "$(date -u +%FT%TZ) jaeger $version ${secs}s nproc=$(nproc) $(go env GOVERSION)" >> "$dir/build-times.txt"
echo "$binary"
