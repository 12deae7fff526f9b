#!/usr/bin/env bash
# The chart against a real kube-apiserver (tests/k8s/cluster.sh, with an
# audit log of the operator's ServiceAccount), once with Helm 4 and once
# with Helm 3, each in a fresh cluster: helm install, the operator run
# locally with the chart's ServiceAccount token and the Deployment's own
# flags, webhooks called by the API server, RBAC checked against the audit
# log both ways, helm upgrade (monitoring objects once the API is served),
# helm uninstall. See e2e.py.
#
#   tests/chart/e2e.sh          # builds nothing: needs target/debug binaries
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(tests/k8s/build-tools.sh)"
mapfile -t helms < <(tests/chart/helms.sh)
audit="$(mktemp -d)"
trap 'rm -rf "$audit"' EXIT
# Metadata of every request the release's ServiceAccount makes; nothing else.
cat > "$audit/policy.yaml" <<'YAML'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts:tollgate-system"]
  - level: None
YAML
export KUBECTL="$bin/kubectl"
for helm in "${helms[@]}"; do
  echo "# $("$helm" version --template '{{.Version}}')"
  log="$audit/audit-$(basename "$helm").log"
  TOLLGATE_K8S_APISERVER_ARGS="--audit-policy-file=$audit/policy.yaml --audit-log-path=$log" \
  TOLLGATE_CHART_AUDIT_LOG="$log" HELM="$helm" \
    tests/k8s/cluster.sh run -- python3 tests/chart/e2e.py
done
