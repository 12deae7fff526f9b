#!/usr/bin/env bash
# PII quality report: regenerates the corpus (checking it is unchanged),
# makes a held-out corpus from another seed, runs Tollgate's recognizers on
# both, runs Presidio's analyzer on both, and writes tests/pii/REPORT.md.
#
# Needs PyPI (faker, presidio-analyzer, spacy) on first use; everything runs
# offline after that. `make test` runs it with TOLLGATE_PII_REPORT set to a
# file under target/, so a type on which Tollgate falls behind Presidio
# (compare.py exits 1) fails the suite.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT="$PWD"
WORK="$ROOT/target/pii"
VENV="$WORK/venv"
mkdir -p "$WORK"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "==> setting up $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r tests/pii/requirements.txt
fi
PY="$VENV/bin/python"

echo "==> corpus (deterministic)"
"$PY" tests/pii/generate.py --out "$WORK/corpus.jsonl" >/dev/null
if ! cmp -s "$WORK/corpus.jsonl" tests/pii/corpus.jsonl; then
  echo "tests/pii/corpus.jsonl differs from what generate.py makes; regenerate and commit it" >&2
  exit 1
fi
"$PY" tests/pii/generate.py --seed 777 --out "$WORK/heldout.jsonl"

echo "==> Tollgate predictions"
TOLLGATE_PII_PREDICTIONS="$WORK/tollgate.jsonl" \
  cargo test -q -p tollgate-proxy --lib pii::corpus -- --nocapture
TOLLGATE_PII_CORPUS="$WORK/heldout.jsonl" TOLLGATE_PII_PREDICTIONS="$WORK/tollgate-heldout.jsonl" \
  cargo test -q -p tollgate-proxy --lib pii::corpus -- --nocapture

echo "==> Presidio comparison"
"$PY" tests/pii/compare.py \
  --corpus tests/pii/corpus.jsonl --tollgate "$WORK/tollgate.jsonl" \
  --heldout "$WORK/heldout.jsonl" --tollgate-heldout "$WORK/tollgate-heldout.jsonl" \
  --model-dir "$WORK/blank_en" --out "${TOLLGATE_PII_REPORT:-tests/pii/REPORT.md}"
