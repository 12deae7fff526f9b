#!/usr/bin/env bash
# The chart against a real kube-apiserver (tests/k8s/cluster.sh, with an
# audit log of the operator's ServiceAccount): helm install, the operator
# run locally with the chart's ServiceAccount token and the Deployment's own
# flags, webhooks called by the API server, RBAC checked against the audit
# log both ways, helm upgrade, helm uninstall. See e2e.py.
#
#   tests/chart/e2e.sh          # builds nothing: needs target/debug binaries
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="$(tests/k8s/build-tools.sh)"
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
export TOLLGATE_K8S_APISERVER_ARGS="--audit-policy-file=$audit/policy.yaml --audit-log-path=$audit/audit.log"
export TOLLGATE_CHART_AUDIT_LOG="$audit/audit.log" HELM="$bin/helm" KUBECTL="$bin/kubectl"
tests/k8s/cluster.sh run -- python3 tests/chart/e2e.py
