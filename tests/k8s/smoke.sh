#!/usr/bin/env bash
# Proves the e2e control plane does what the operator tests need: CRDs and
# custom objects, service-account tokens and RBAC, garbage collection of
# owned objects, and helm against the API server. Run it inside a cluster:
#
#   tests/k8s/cluster.sh run -- tests/k8s/smoke.sh
#
# Ends with the line 'N passed, N failed'; exits non-zero on any failure.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

: "${KUBECONFIG:?run me through tests/k8s/cluster.sh run -- (KUBECONFIG unset)}"
: "${TOLLGATE_K8S_BIN:?TOLLGATE_K8S_BIN unset}"
export PATH="$TOLLGATE_K8S_BIN:$PATH"
gc_timeout="${TOLLGATE_K8S_GC_TIMEOUT:-90}"
ns=smoke
passed=0 failed=0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

check() {
  local name="$1" t0=$SECONDS
  shift
  if out="$("$@" 2>&1)"; then
    passed=$((passed + 1)); echo "ok   - $name ($((SECONDS - t0))s)"
  else
    failed=$((failed + 1)); echo "FAIL - $name"
    # shellcheck disable=SC2001 # indent every line under its FAIL line
    sed 's/^/       /' <<<"$out"
  fi
}

# until_gone TIMEOUT ARGS...: polls `kubectl get ARGS` until NotFound.
until_gone() {
  local deadline=$((SECONDS + $1))
  shift
  while kubectl get "$@" -o name >/dev/null 2>&1; do
    (( SECONDS < deadline )) || { echo "$* still present after ${deadline}s"; return 1; }
    sleep 0.5
  done
}

namespaces() {
  local got
  got="$(kubectl get ns -o name)" || return 1
  echo "$got"
  grep -qx namespace/default <<<"$got" && grep -qx namespace/kube-system <<<"$got"
}

crd_and_object() {
  kubectl apply -f "$here/testdata/widget-crd.yaml" || return 1
  kubectl wait --for=condition=Established --timeout=60s crd/widgets.e2e.tollgate.dev || return 1
  kubectl create namespace "$ns" || return 1
  kubectl apply -n "$ns" -f - <<'EOF' || return 1
apiVersion: e2e.tollgate.dev/v1
kind: Widget
metadata: {name: w1}
spec: {size: 3}
EOF
  [[ "$(kubectl get -n "$ns" widget w1 -o jsonpath='{.spec.size}')" == 3 ]] || return 1
  # The CEL rule is enforced by this API server.
  local err
  err="$(kubectl apply -n "$ns" -f - 2>&1 <<'EOF'
apiVersion: e2e.tollgate.dev/v1
kind: Widget
metadata: {name: w2}
spec: {size: 11}
EOF
)" && { echo "size 11 was accepted"; return 1; }
  grep -q 'size must be at most 10' <<<"$err"
}

service_account_rbac() {
  kubectl create -n "$ns" serviceaccount reader || return 1
  kubectl create -n "$ns" role cm-reader --verb=get,list,watch --resource=configmaps || return 1
  kubectl create -n "$ns" rolebinding cm-reader --role=cm-reader --serviceaccount="$ns:reader" || return 1
  local token
  token="$(kubectl create token -n "$ns" reader --duration=10m)" || return 1
  as_sa() { kubectl --token="$token" "$@"; }
  [[ "$(as_sa auth whoami -o jsonpath='{.status.userInfo.username}')" == "system:serviceaccount:$ns:reader" ]] || return 1
  [[ "$(as_sa auth can-i list configmaps -n "$ns")" == yes ]] || return 1
  [[ "$(as_sa auth can-i delete configmaps -n "$ns")" == no ]] || return 1
  [[ "$(as_sa auth can-i list secrets -n "$ns")" == no ]] || return 1
  as_sa get configmaps -n "$ns" >/dev/null || return 1
  ! as_sa get secrets -n "$ns" 2>/dev/null
}

# child_of OWNER_KIND OWNER_APIVERSION OWNER_NAME CHILD: a ConfigMap owned by OWNER.
child_of() {
  local uid
  uid="$(kubectl get -n "$ns" "$1" "$3" -o jsonpath='{.metadata.uid}')" || return 1
  kubectl apply -n "$ns" -f - <<EOF
apiVersion: v1
kind: ConfigMap
metadata:
  name: $4
  ownerReferences:
  - {apiVersion: $2, kind: $1, name: $3, uid: $uid, controller: true, blockOwnerDeletion: true}
data: {k: v}
EOF
}

gc_configmap_owner() {
  kubectl create -n "$ns" configmap owner --from-literal=k=v || return 1
  child_of ConfigMap v1 owner owned-by-cm || return 1
  kubectl delete -n "$ns" configmap owner || return 1
  until_gone "$gc_timeout" -n "$ns" configmap owned-by-cm
}

gc_custom_owner() {
  child_of Widget e2e.tollgate.dev/v1 w1 owned-by-widget || return 1
  kubectl delete -n "$ns" widget w1 || return 1
  until_gone "$gc_timeout" -n "$ns" configmap owned-by-widget
}

helm_install() {
  helm version || return 1
  helm create "$work/hello" >/dev/null || return 1
  helm install hello "$work/hello" -n "$ns" || return 1
  helm list -n "$ns" | grep -q '^hello' || return 1
  kubectl get -n "$ns" deployment hello || return 1
  helm uninstall hello -n "$ns" || return 1
  until_gone 30 -n "$ns" deployment hello
}

# The API server calls a webhook on loopback through `clientConfig.url`
# (a `service:` reference would need cluster networking, which is absent).
admission_webhook() {
  local pid rc
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=smoke-webhook -addext subjectAltName=IP:127.0.0.1 \
    -keyout "$work/webhook.key" -out "$work/webhook.crt" 2>/dev/null || return 1
  # Its own output goes to a file: `check` captures this function's stdout.
  python3 "$here/testdata/deny-webhook.py" "$work/webhook.crt" "$work/webhook.key" "$work/port" \
    > "$work/webhook.log" 2>&1 &
  pid=$!
  deny_by_webhook
  rc=$?
  kill "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return "$rc"
}

deny_by_webhook() {
  local deadline=$((SECONDS + 20))
  until [[ -s "$work/port" ]]; do
    (( SECONDS < deadline )) || { echo "webhook did not start"; return 1; }
    sleep 0.1
  done
  kubectl apply -f - <<EOF || return 1
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {name: smoke-deny}
webhooks:
- name: deny.smoke.tollgate.dev
  clientConfig:
    url: https://127.0.0.1:$(cat "$work/port")/validate
    caBundle: $(base64 -w0 < "$work/webhook.crt")
  rules:
  - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps], scope: Namespaced}
  namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: $ns}}
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: Fail
  timeoutSeconds: 5
EOF
  # The configuration reaches the API server's admission chain asynchronously.
  local err i=0
  until err="$(kubectl create -n "$ns" -f - 2>&1 <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: probe-$i, labels: {tollgate.dev/deny: "true"}}
EOF
  )"; [[ "$err" == *"denied by the smoke webhook"* ]]; do
    (( SECONDS < deadline )) || { echo "never denied: $err"; return 1; }
    i=$((i + 1))
    sleep 0.2
  done
  kubectl create -n "$ns" configmap allowed --from-literal=k=v || return 1
  kubectl delete validatingwebhookconfiguration smoke-deny
}

check "kubectl get ns" namespaces
check "CRD + namespaced custom object + CEL rule" crd_and_object
check "ServiceAccount token + auth can-i (RBAC)" service_account_rbac
check "garbage collection: ConfigMap owned by a ConfigMap" gc_configmap_owner
check "garbage collection: ConfigMap owned by a custom object" gc_custom_owner
check "helm install/uninstall against the API server" helm_install
check "validating admission webhook on loopback (clientConfig.url)" admission_webhook

echo "$passed passed, $failed failed"
(( failed == 0 ))
