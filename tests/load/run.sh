#!/usr/bin/env bash
# The Tollgate load test (issue 2): the mock provider direct vs through the
# proxy, in one run on loopback. See tests/load/README.md.
#
#   bash tests/load/run.sh            # from the repository root
#
# Tunables (environment): TG_LOAD_RPS, TG_LOAD_ROUNDS, TG_LOAD_PHASE_S,
# TG_LOAD_WARMUP_S, TG_LOAD_TTFT_REQUESTS, TG_LOAD_STREAMS, TG_LOAD_SKIP_BUILD.
# Writes tests/load/RESULTS.md. Exits non-zero only when the harness fails,
# not when a target is missed (the summary says so).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

# 1,000 held streams take ~1,000 sockets in the driver and ~2,000 in the proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
  echo "run.sh: open-file limit $(ulimit -n) is too low for 1,000 streams" >&2
  exit 1
fi

# TG_LOAD_SKIP_BUILD=1 measures the binaries already in target/release.
if [ -z "${TG_LOAD_SKIP_BUILD:-}" ]; then
  cargo build --release -p tollgate-proxy -p tollgate-tests --bins
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

exec python3 tests/load/bench.py --bin-dir "$target_dir/release" "$@"
