#!/usr/bin/env bash
# The side-by-side benchmark (issue 9): Tollgate vs the mock direct, nginx and
# LiteLLM, on loopback. See tests/bench/README.md.
#
#   bash tests/bench/run.sh                 # from the repository root; ~20 minutes
#   bash tests/bench/run.sh --smoke         # the harness end to end in seconds
#   bash tests/bench/run.sh --contenders direct,nginx,tollgate
#   bash tests/bench/run.sh --upstream nginx-fixed   # nginx's fixed answer as the upstream; ~4 minutes
#
# Sets up what it needs: nginx (Debian package, as root), LiteLLM in its own
# venv (.venv-litellm, pinned in litellm-requirements.txt), the release
# binaries. Writes tests/bench/REPORT.md and results.json, or with
# --upstream nginx-fixed REPORT-nginx-upstream.md and
# results-nginx-upstream.json (--smoke: a temporary directory). Exits
# non-zero only when the harness fails, not when a target is missed (the
# report says so).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT="$PWD"

smoke=
fixed=
prev=
for a in "$@"; do
  [ "$a" = --smoke ] && smoke=1
  [[ "$a" = --upstream=nginx-fixed || ( "$prev" = --upstream && "$a" = nginx-fixed ) ]] && fixed=1
  prev=$a
done

# 1,000 held streams take ~1,000 sockets in the driver and ~2,000 per proxy.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# Another measurement on this machine would skew both; wait for it.
while pgrep -f 'tests/load/run.sh|tests/load/bench.py' >/dev/null; do
  echo "run.sh: waiting for a running tests/load/run.sh to finish" >&2
  sleep 10
done

need_apt() {
  if [ "$(id -u)" != 0 ]; then
    echo "run.sh: $1 is missing; install the Debian package $2" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "$2" >/dev/null
}
# The fixed-answer mode's upstream is nginx, smoke or not.
if [ -z "$smoke" ] || [ -n "$fixed" ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt nginx nginx-light
fi
if [ -z "$smoke" ] && [ -z "$fixed" ]; then
  command -v redis-server >/dev/null 2>&1 || need_apt redis-server redis-server

  # LiteLLM in its own venv, rebuilt when the pin changes.
  if [ -z "${TG_BENCH_SKIP_LITELLM:-}" ]; then
    VENV="$ROOT/.venv-litellm"
    REQ="$ROOT/tests/bench/litellm-requirements.txt"
    want="$(sha256sum "$REQ" | cut -d' ' -f1)"
    if [[ ! -x "$VENV/bin/litellm" || "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]]; then
      echo "==> setting up $VENV" >&2
      python3 -m venv "$VENV"
      "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
      echo "$want" > "$VENV/.requirements.sha256"
    fi
  fi
fi

# TG_BENCH_SKIP_BUILD=1 measures the binaries already in target/release.
if [ -z "${TG_BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release -p tollgate-proxy -p tollgate-tests --bins
fi
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

args=(--bin-dir "$target_dir/release")
if [ -n "${TG_BENCH_SKIP_LITELLM:-}" ] && [ -z "$smoke" ] && [ -z "$fixed" ]; then
  args+=(--contenders direct,nginx,tollgate,tg-pii,tg-budget-mem,tg-budget-redis,tg-cache-hit,tg-all)
fi
exec python3 tests/bench/suite.py "${args[@]}" "$@"
