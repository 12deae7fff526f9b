#!/usr/bin/env bash
# The chart's static tests: `helm lint --strict` and `helm template` of
# every ci/*-values.yaml with assertions on the objects, schema and
# impossible-combination refusals, value docs, the CRD copy.
# helm comes from tests/k8s/build-tools.sh (cached; ~2 min cold for helm).
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(tests/k8s/build-tools.sh)"
HELM="$bin/helm" python3 tests/chart/check_chart.py
