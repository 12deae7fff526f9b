#!/usr/bin/env bash
# The alert and recording rules: renders the chart's PrometheusRule
# (release `t` in tollgate-system, default thresholds), then
# `promtool check rules` and `promtool test rules` with tests/chart/rules/,
# and checks every alert has a firing and a silent test case and a runbook
# entry in the README; then checks every metric name and label they and the
# dashboard read against a running proxy (target/debug binaries).
# promtool: Debian package `prometheus`.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v promtool >/dev/null || { echo "promtool missing (apt-get install prometheus)" >&2; exit 1; }
bin="$(tests/k8s/build-tools.sh)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$bin/helm" template t charts/tollgate -n tollgate-system \
  --set monitoring.prometheusRule.enabled=true ${TOLLGATE_RULES_SET:-} \
  --api-versions monitoring.coreos.com/v1/PrometheusRule \
  --show-only templates/prometheusrule.yaml > "$work/prometheusrule.yaml"
python3 - "$work/prometheusrule.yaml" "$work/rules.yaml" <<'PY'
import sys, yaml
obj = yaml.safe_load(open(sys.argv[1]))
yaml.safe_dump({"groups": obj["spec"]["groups"]}, open(sys.argv[2], "w"), sort_keys=False, width=1000)
PY
cp tests/chart/rules/*.test.yaml "$work/"
promtool check rules "$work/rules.yaml"
(cd "$work" && promtool test rules ./*.test.yaml)
python3 tests/chart/check_rules.py "$work/rules.yaml" tests/chart/rules/*.test.yaml
# Every metric and label the rules and the dashboard read, against a real
# proxy's /metrics (the operator's are checked in tests/chart/e2e.sh).
python3 tests/chart/scrape_proxy.py "$work/proxy-metrics.txt"
python3 tests/chart/metric_names.py --scope proxy "$work/rules.yaml" \
  charts/tollgate/files/dashboards/tollgate.json "$work/proxy-metrics.txt"
