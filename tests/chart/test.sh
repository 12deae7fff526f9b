#!/usr/bin/env bash
# Every chart test, as `make test` runs them (scripts/test-all.sh):
#   run.sh         helm lint/template of every ci/*-values.yaml, schema, docs, CRD copy,
#                  with Helm 4 and Helm 3 (and both render every variant alike)   ~30 s
#   rules.sh       promtool check + unit tests of the alerts, metric names and the
#                  README metric tables vs running proxies                       ~9 s
#   prometheus.py  a real Prometheus scrapes a proxy, evaluates the rules and dashboard   ~11 s
#   e2e.sh         helm install/upgrade/uninstall into a real kube-apiserver, with
#                  Helm 4 then Helm 3, a fresh cluster each                      ~50 s
# Needs: helm (4 and 3)/kubectl/kube-apiserver from tests/k8s/build-tools.sh, the
# target/debug binaries, python3 with PyYAML, openssl, and promtool +
# prometheus (Debian package `prometheus`). Without promtool, prometheus or
# PyYAML the suite is skipped with a message, unless
# TOLLGATE_REQUIRE_PROMETHEUS=1 (CI), where it fails.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v promtool >/dev/null || missing+=(promtool)
command -v prometheus >/dev/null || missing+=(prometheus)
python3 -c 'import yaml' 2>/dev/null || missing+=(python3-yaml)
if (( ${#missing[@]} )); then
  msg="chart tests need ${missing[*]} (apt-get install prometheus python3-yaml)"
  if [[ "${TOLLGATE_REQUIRE_PROMETHEUS:-}" == 1 ]]; then
    echo "FAIL: $msg" >&2
    exit 1
  fi
  echo "SKIPPED: $msg" >&2
  exit 0
fi
bin="$(tests/k8s/build-tools.sh)"
tests/chart/run.sh
tests/chart/rules.sh
HELM="$bin/helm" python3 tests/chart/prometheus.py
tests/chart/e2e.sh
