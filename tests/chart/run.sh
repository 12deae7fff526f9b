#!/usr/bin/env bash
# The chart's static tests, with Helm 4 and with Helm 3: `helm lint --strict`
# and `helm template` of every ci/*-values.yaml with assertions on the
# objects, schema and impossible-combination refusals, value docs, the CRD
# copy; with Helm 3, also that it renders every variant exactly as Helm 4.
# helm comes from tests/k8s/build-tools.sh (cached; ~2 min cold for each helm).
set -euo pipefail
cd "$(dirname "$0")/../.."
mapfile -t helms < <(tests/chart/helms.sh)
HELM="${helms[0]}" python3 tests/chart/check_chart.py
HELM="${helms[1]}" HELM_REFERENCE="${helms[0]}" python3 tests/chart/check_chart.py
