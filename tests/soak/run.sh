#!/usr/bin/env bash
# The soak test of issue 17: builds the proxy and the test binaries (debug),
# then runs tollgate-soak. Arguments go to tollgate-soak, e.g.
#   tests/soak/run.sh                       # 30 minutes (make soak)
#   tests/soak/run.sh --minutes 2           # the short version (make test)
#   tests/soak/run.sh --minutes 10 --report target/soak/report.txt
# What it does and its pass criteria: tests/README.md ("Soak") and the doc
# comment of tests/src/bin/tollgate-soak.rs.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build -q -p tollgate-proxy
cargo build -q -p tollgate-tests --bins
target_dir="${CARGO_TARGET_DIR:-target}"
exec "$target_dir/debug/tollgate-soak" --bin-dir "$target_dir/debug" "$@"
