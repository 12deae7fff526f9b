#!/usr/bin/env bash
# The operator at scale against the real kube-apiserver: 500 LlmPolicies in
# 50 namespaces, then 5,000 pods created through its injection webhook (no
# kubelet: they stay Pending, but they exist and are watched). Reports the
# operator's RSS, reconcile and admission durations (its own histograms),
# and how long the cluster took to settle. Results: tests/k8s/RESULTS.md.
#
#   tests/k8s/scale.sh            starts its own cluster (cluster.sh run)
#
# TOLLGATE_OPERATOR_BIN (default target/release/tollgate-operator, built if
# missing); SCALE_NAMESPACES (50), SCALE_POLICIES (10 per namespace),
# SCALE_PODS (100 per namespace).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ -z "${TOLLGATE_K8S_API:-}" ]]; then
  export TOLLGATE_K8S_CRDS="$root/crds"
  exec "$here/cluster.sh" run -- "$0" "$@"
fi

namespaces="${SCALE_NAMESPACES:-50}"
per_ns="${SCALE_POLICIES:-10}"
pods_per_ns="${SCALE_PODS:-100}"
op="${TOLLGATE_OPERATOR_BIN:-$root/target/release/tollgate-operator}"
[[ -x "$op" ]] || (cd "$root" && cargo build --release -p tollgate-operator)
work="$(mktemp -d)"
trap 'kill "${op_pid:-}" 2>/dev/null || true; rm -rf "$work"' EXIT
log() { echo "scale: $*" >&2; }
now() { date +%s.%N; }
since() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(now)"; }

read -r wport admin < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')

python3 - "$work" "$namespaces" "$per_ns" "$pods_per_ns" "$wport" <<'PY'
import json, sys
work, nss, per_ns, pods, port = sys.argv[1], *map(int, sys.argv[2:])
def dump(name, items):
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, open(f"{work}/{name}.json", "w"))
sel = {"matchLabels": {"tollgate.dev/injection": "enabled"}}
hook = lambda name, path, rules, **kw: {"name": name, "admissionReviewVersions": ["v1"],
    "sideEffects": "None", "failurePolicy": "Fail", "namespaceSelector": sel,
    "clientConfig": {"url": f"https://127.0.0.1:{port}/{path}"}, "rules": rules, **kw}
dump("webhooks", [
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
     "metadata": {"name": "tollgate-scale"}, "webhooks": [hook("inject.tollgate.dev", "mutate",
        [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        reinvocationPolicy="Never")]},
    {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
     "metadata": {"name": "tollgate-scale"}, "webhooks": [hook("validate.tollgate.dev", "validate",
        [{"apiGroups": ["tollgate.dev"], "apiVersions": ["v1alpha1"], "operations": ["CREATE", "UPDATE"],
          "resources": ["llmpolicies"]}])]},
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tollgate-system"}},
])
dump("namespaces", [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": f"scale-{n}",
    "labels": {"tollgate.dev/injection": "enabled"}}} for n in range(nss)])
dump("secrets", [{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "llm-keys", "namespace": f"scale-{n}"},
    "stringData": {"openai": "sk-scale"}} for n in range(nss)])
dump("policies", [{"apiVersion": "tollgate.dev/v1alpha1", "kind": "LlmPolicy",
    "metadata": {"name": f"policy-{i}", "namespace": f"scale-{n}"},
    "spec": {"podSelector": {"matchLabels": {"app": f"app-{i}"}},
        "providers": [{"name": "openai", "type": "openai", "models": ["gpt-4o-mini", "gpt-4.1*"],
            "credentialsSecretRef": {"name": "llm-keys", "key": "openai"}}],
        "routes": [{"name": "chat", "targets": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "budgets": {"limits": [{"name": "daily", "scope": "policy", "window": "day", "usd": 10}]}}}
    for n in range(nss) for i in range(per_ns)])
dump("pods", [{"apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": f"pod-{p}", "namespace": f"scale-{n}", "labels": {"app": f"app-{p % per_ns}"}},
    "spec": {"automountServiceAccountToken": False,
             "containers": [{"name": "app", "image": "example.test/app:1"}]}}
    for n in range(nss) for p in range(pods)])
PY

kc() { kubectl --request-timeout=120s "$@"; }
kc create -f "$work/webhooks.json" >/dev/null
RUST_LOG=warn "$op" run --admin-addr "127.0.0.1:$admin" --webhook-addr "127.0.0.1:$wport" \
  --tls-san 127.0.0.1 --namespace tollgate-system --proxy-image example.test/tollgate-proxy:scale \
  --mutating-webhook-config tollgate-scale --validating-webhook-config tollgate-scale \
  > "$work/operator.log" 2>&1 &
op_pid=$!
metrics() { curl -fsS "http://127.0.0.1:$admin/metrics"; }
until curl -fsS "http://127.0.0.1:$admin/readyz" >/dev/null 2>&1; do
  kill -0 "$op_pid" || { cat "$work/operator.log"; exit 1; }
  sleep 0.2
done
rss() { awk '/^VmRSS|^VmHWM/ {printf "%s %.1f MiB  ", $1, $2/1024}' "/proc/$op_pid/status"; }
log "operator ready (pid $op_pid): $(rss)"

t=$(now)
kc create -f "$work/namespaces.json" >/dev/null
for n in $(seq 0 $((namespaces - 1))); do
  kc wait --for=create -n "scale-$n" serviceaccount/default --timeout=60s >/dev/null
done
kc create -f "$work/secrets.json" >/dev/null
log "$namespaces namespaces with secrets in $(since "$t")s"

t=$(now)
kc create -f "$work/policies.json" >/dev/null
log "$((namespaces * per_ns)) policies created (validating webhook) in $(since "$t")s"

t=$(now)
kc create -f "$work/pods.json" >/dev/null
log "$((namespaces * pods_per_ns)) pods created (injection webhook) in $(since "$t")s"

# Settled: every policy Ready, counting its pods, all injected.
want_pods=$((pods_per_ns / per_ns))
settled() {
  kc get llmp -A -o json | python3 -c '
import json, sys
want = int(sys.argv[1]); items = json.load(sys.stdin)["items"]
ok = sum(1 for p in items
         if any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
         and p["status"].get("matchedPods") == want and p["status"].get("injectedPods") == want)
print(ok, len(items)); sys.exit(0 if ok == len(items) else 1)' "$want_pods"
}
until out="$(settled)"; do log "settling: $out Ready with $want_pods pods"; sleep 2; done
log "all $out settled $(since "$t")s after the pods started"

report() {
  metrics | python3 -c '
import re, sys
lines = sys.stdin.read().splitlines()
def hist(name, label=""):
    b = [(float("inf") if m.group(1) == "+Inf" else float(m.group(1)), float(m.group(2)))
         for l in lines for m in [re.match(name + r"_bucket\{" + label + r".*le=\"([^\"]+)\"\} (\S+)", l)] if m]
    s = sum(float(l.split()[-1]) for l in lines if re.match(name + r"_sum(\{" + label + r".*\})? ", l))
    n = sum(float(l.split()[-1]) for l in lines if re.match(name + r"_count(\{" + label + r".*\})? ", l))
    if not n: return f"{name} {label}: none"
    q = lambda p: next(le for le, c in sorted(b) if c >= p * n)
    return f"{name} {label}: n={n:.0f} mean {1000*s/n:.1f} ms, p50 <= {q(0.5)*1000:g} ms, p99 <= {q(0.99)*1000:g} ms"
print(hist("tollgate_operator_reconcile_duration_seconds"))
print(hist("tollgate_operator_admission_duration_seconds", "webhook=\"mutate\""))
print(hist("tollgate_operator_admission_duration_seconds", "webhook=\"validate\""))
print(*[l for l in lines if l.startswith("tollgate_operator_reconciles_total")], sep="\n")'
}
report
for i in 1 2 3; do log "RSS sample $i: $(rss)"; sleep 5; done

# A restart with everything in place: list + watch 500 policies, 5,000
# pods, 500 ConfigMaps, and reconcile each policy once.
kill "$op_pid"; wait "$op_pid" 2>/dev/null || true
t=$(now)
RUST_LOG=warn "$op" run --admin-addr "127.0.0.1:$admin" --webhook-addr "127.0.0.1:$wport" \
  --tls-san 127.0.0.1 --namespace tollgate-system --proxy-image example.test/tollgate-proxy:scale \
  --mutating-webhook-config tollgate-scale --validating-webhook-config tollgate-scale \
  > "$work/operator2.log" 2>&1 &
op_pid=$!
want=$((namespaces * per_ns))
until n="$(metrics 2>/dev/null | sed -n 's/^tollgate_operator_reconciles_total{result="success"} //p')" \
      && [[ -n "$n" ]] && (( n >= want )); do
  kill -0 "$op_pid" || { cat "$work/operator2.log"; exit 1; }
  sleep 0.5
done
log "restarted: $want policies reconciled $(since "$t")s after start: $(rss)"
report
for i in 1 2 3; do log "RSS sample $i after restart: $(rss)"; sleep 5; done
