#!/usr/bin/env bash
# Runs the cargo-fuzz targets of proxy/fuzz, one after the other.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]    (default 60 s, every target)
#   scripts/fuzz.sh --smoke                              (make test and CI)
#
# --smoke runs each target for a fixed number of executions (about 30 s
# here) with a fixed seed from the seeds and regressions alone: the same
# binary explores the same inputs, so CI is reproducible and a finding there
# is one anyone can replay. Open-ended exploration is the timed mode.
#
# Needs the nightly toolchain (installed with a minimal profile if absent) and
# cargo-fuzz, built once into ~/.cache/tollgate/tools. The corpus each target
# grows is kept in target/fuzz/corpus/TARGET (seeded from proxy/fuzz/seeds and
# proxy/fuzz/regressions, which `cargo test` replays on stable). A finding is
# written to target/fuzz/artifacts/TARGET/ and fails the run; its bytes are
# printed (base64) with the panic, since another machine's build explores
# other inputs. target/fuzz/ledger.tsv keeps each run's wall and CPU seconds. Once fixed, copy it into proxy/fuzz/regressions/TARGET/. budget_stores runs against its own
# redis-server on a free loopback port.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
SMOKE=0
if [[ "${1:-}" == "--smoke" ]]; then
  SMOKE=1
  shift
fi
SECONDS_PER_TARGET=60
if (( ! SMOKE )) && [[ $# -gt 0 ]]; then
  SECONDS_PER_TARGET="$1"
  shift
fi
# Executions per target in --smoke: about 30 s each on 2 shared cores.
declare -A SMOKE_RUNS=(
  [request_head]=2000000 [translate_request]=300000 [translate_stream]=600000
  [sse_split]=1200000 [config]=500000 [pii_stream]=60000 [cache_key]=3000000
  [budget_stores]=8000
)
ALL=(request_head translate_request translate_stream sse_split config pii_stream cache_key budget_stores)
TARGETS=("$@")
(( ${#TARGETS[@]} )) || TARGETS=("${ALL[@]}")

CARGO_FUZZ_VERSION=0.13.2
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/tools/cargo-fuzz-$CARGO_FUZZ_VERSION"
if [[ ! -x "$TOOLS/bin/cargo-fuzz" ]]; then
  echo "==> cargo install cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS (once)"
  cargo install --quiet --locked cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$TOOLS"
fi
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
export PATH="$TOOLS/bin:$PATH"

# Panics and overflow checks are the findings (the crate forbids unsafe
# code), so no sanitizer: three times the executions per second.
FUZZ=(cargo +nightly fuzz run --fuzz-dir proxy/fuzz --target-dir "$ROOT/target/fuzz/build" -s none --debug-assertions)
echo "==> building the fuzz targets (nightly)"
cargo +nightly fuzz build --fuzz-dir proxy/fuzz --target-dir "$ROOT/target/fuzz/build" -s none --debug-assertions

redis_pid=""
cleanup() { [[ -n "$redis_pid" ]] && kill "$redis_pid" 2>/dev/null; true; }
trap cleanup EXIT

# Every run is written to a ledger (CPU seconds beside wall seconds: fuzzing
# beside other work at a low priority gets a fraction of a core).
LEDGER="$ROOT/target/fuzz/ledger.tsv"
mkdir -p "$ROOT/target/fuzz"
[[ -f "$LEDGER" ]] || printf 'finished\ttarget\tmode\twall_s\tcpu_s\truns\tresult\n' >"$LEDGER"
TIMEFORMAT='%R %U %S'

status=0
for t in "${TARGETS[@]}"; do
  corpus="$ROOT/target/fuzz/corpus/$t"
  artifacts="$ROOT/target/fuzz/artifacts/$t/"
  limit=(-max_total_time="$SECONDS_PER_TARGET")
  if (( SMOKE )); then
    corpus="$ROOT/target/fuzz/smoke/$t"
    rm -rf "$corpus"
    limit=(-runs="${SMOKE_RUNS[$t]}" -seed=1)
  fi
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus" "proxy/fuzz/seeds/$t")
  [[ -d "proxy/fuzz/regressions/$t" ]] && dirs+=("proxy/fuzz/regressions/$t")
  if [[ "$t" == budget_stores && -z "$redis_pid" ]]; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
    redis_pid=$!
    for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$port" ping >/dev/null
    export TOLLGATE_FUZZ_REDIS_URL="redis://127.0.0.1:$port"
  fi
  log="$ROOT/target/fuzz/$t.log"
  echo "==> fuzz $t (${limit[*]})"
  timing="$ROOT/target/fuzz/$t.time"
  start="$ROOT/target/fuzz/$t.start"
  : >"$start"  # findings not older than this are this run's
  result=ok
  { time "${FUZZ[@]}" "$t" "${dirs[@]}" -- "${limit[@]}" \
      -artifact_prefix="$artifacts" -dict=proxy/fuzz/fuzz.dict -print_final_stats=1 >"$log" 2>&1; } 2>"$timing" \
    || result=finding
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
  read -r wall user sys <"$timing" || true
  cpu=$(awk -v u="${user:-0}" -v s="${sys:-0}" 'BEGIN { printf "%.0f", u + s }')
  printf '%s\t%s\t%s\t%.0f\t%s\t%s\t%s\n' "$(date -u +%FT%TZ)" "$t" "$( ((SMOKE)) && echo smoke || echo timed)" \
    "${wall:-0}" "$cpu" "$runs" "$result" >>"$LEDGER"
  if [[ "$result" == ok ]]; then
    echo "    ok: $runs runs in ${cpu} CPU s, corpus $(ls "$corpus" | wc -l) inputs"
  else
    status=1
    echo "    FAILED: $t (log $log; finding in $artifacts)"
    grep -E -A3 'panicked at' "$log" | head -12 | sed 's/^/    /' || true
    # The finding itself, so it can be replayed from CI's log alone:
    #   echo BASE64 | base64 -d > f && cargo +nightly fuzz run ... TARGET f
    for f in "$artifacts"*; do
      [[ -f "$f" && ! "$f" -ot "$start" ]] || continue
      echo "    finding $(basename "$f") ($(stat -c %s "$f") bytes), base64:"
      head -c 16384 "$f" | base64 -w 0 | sed 's/^/    /'
      echo
    done
    echo "    $(rustc +nightly --version)"
  fi
done
exit $status
