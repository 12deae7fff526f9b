#!/usr/bin/env bash
# The alert and recording rules: renders the chart's PrometheusRule
# (release `t` in tollgate-system, default thresholds), then
# `promtool check rules` and `promtool test rules` with tests/chart/rules/,
# and checks every alert has a firing and a silent test case and a runbook
# entry in the README; then checks every metric name and label they and the
# dashboard read against running proxies (target/debug binaries), and the
# README's metric tables against the same scrape, both ways.
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
# The README's metric tables against the same scrape, both ways (the
# operator's in e2e.sh); and that a drifted table does fail.
python3 tests/chart/metrics_doc.py --scope proxy README.md "$work/proxy-metrics.txt"
sed -e '/^| `tollgate_retries_total`/d' README.md > "$work/README.dropped.md"
sed -e 's/^| `tollgate_fallbacks_total` | counter | `route`, `reason`/| `tollgate_fallbacks_total` | gauge | `route`, `cause`/' \
  README.md > "$work/README.drifted.md"
for doc in dropped drifted; do
  if python3 tests/chart/metrics_doc.py --scope proxy "$work/README.$doc.md" "$work/proxy-metrics.txt" > "$work/$doc.out"; then
    echo "FAIL - metrics_doc.py accepted a README with a $doc row" >&2
    exit 1
  fi
done
grep -q "tollgate_retries_total (counter.*missing from the README" "$work/dropped.out"
grep -q "tollgate_fallbacks_total is documented as 'gauge'" "$work/drifted.out"
grep -q "tollgate_fallbacks_total labels documented \['cause', 'route'\]" "$work/drifted.out"
echo "ok   - metrics_doc.py refuses a README with a dropped row and with a wrong type and label"
