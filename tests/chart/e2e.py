#!/usr/bin/env python3
"""The chart end to end, inside `tests/k8s/cluster.sh run` (see e2e.sh):

Run once per Helm major ($HELM: Helm 4, then Helm 3; see e2e.sh).

1. `helm install` (defaults: 2 replicas, operator-made webhook certificate,
   webhook.url pointing at a local port since the cluster has no network;
   monitoring requested while the cluster lacks its API: NOTES warns).
2. The operator binary runs locally with the Deployment's own flags and a
   token of the chart's ServiceAccount: it must lead, create the webhook
   certificate Secret and fill in the caBundle, reconcile, answer the
   webhooks the chart registered (the API server calls them), and every
   request it made must be allowed.
3. RBAC, from the API server's audit log: every verb the chart grants was
   used and every verb used was granted (least privilege both ways); Secrets
   are read only in namespaces with policies, through the RoleBindings the
   operator made; one verb removed from the live ClusterRole (ConfigMap
   `create`, then ClusterRole `bind`) makes reconciles fail.
4. A CA rotation asked for on the Secret reaches the serving replica and
   the caBundle without a restart, pods injected throughout. The operator's
   metrics cover every operator metric the alerts and the dashboard read,
   and are exactly those the README documents.
5. `helm upgrade` keeping the operator's caBundle (Helm applies manifests
   without it); once monitoring.coreos.com/v1 is served, the same upgrade
   renders the ServiceMonitor, PodMonitor and PrometheusRule (Capabilities
   from the real API server); then switching to a user's Secret (its CA
   injected, read-only RBAC), then to the helm-made certificate with one
   replica and failurePolicy Ignore, where renewed files written over the
   mount are served without a restart.
6. `helm uninstall` leaves nothing of the release behind but the kept CRD
   (the operator's Secret goes with the Lease that owns it); reinstalled
   with crds.keep=false, uninstall removes the CRD too.
"""
import atexit
import base64
import copy
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("TOLLGATE_BIN_DIR", os.path.join(ROOT, "target", "debug"))
HELM, KUBECTL = os.environ["HELM"], os.environ["KUBECTL"]
AUDIT = os.environ["TOLLGATE_CHART_AUDIT_LOG"]
CHART = os.path.join(ROOT, "charts", "tollgate")
REL, NS = "tg", "tollgate-system"
FULL, OP = "tg-tollgate", "tg-tollgate-operator"
CERTS = f"{FULL}-webhook-certs"  # the operator-made certificate's Secret
USER_SECRET = "platform-webhook-tls"
SA_USER = f"system:serviceaccount:{NS}:{FULL}"
WAIT = 60
# Granted but not necessarily used in this test, and why.
UNUSED_OK = {
    ("rbac.authorization.k8s.io", "clusterroles", "bind"): "checked inside the RoleBinding create, not a request of its own; the bind ablation step proves it is needed",
    ("events.k8s.io", "events", "patch"): "the series of a repeated event (kube-runtime Recorder); none repeats here",
    # Read only when a workload's pods are refused by Pod Security; the
    # real-node e2e (tests/k8s/node_e2e.py) runs that case with these rules.
    ("apps", "replicasets", "get"): "a ReplicaSet refused pods (real-node e2e)",
    ("apps", "statefulsets", "get"): "a StatefulSet refused pods",
    ("apps", "daemonsets", "get"): "a DaemonSet refused pods",
    ("batch", "jobs", "get"): "a Job refused pods",
}

passed, failed = 0, 0
work = tempfile.mkdtemp(prefix="tollgate-chart-e2e-")


def step(name):
    def deco(fn):
        global passed, failed
        t = time.monotonic()
        try:
            fn()
        except Exception as e:  # noqa: BLE001
            failed += 1
            print(f"FAIL - {name}: {e}", flush=True)
            raise SystemExit(finish())
        passed += 1
        print(f"ok   - {name} ({time.monotonic() - t:.1f}s)", flush=True)
        return fn
    return deco


def finish():
    print(f"{passed} passed, {failed} failed ({HELM_VERSION})")
    return 1 if failed else 0


def run(*args, ok=True, stdin=None, env=None):
    p = subprocess.run(list(args), capture_output=True, text=True, input=stdin, env=env)
    if ok and p.returncode != 0:
        raise AssertionError(f"{' '.join(args[:6])} ...: {p.stderr.strip()[-1500:]}")
    return p


def kubectl(*args, **kw):
    return run(KUBECTL, *args, **kw)


def kget(*args):
    p = kubectl("get", *args, "-o", "json", ok=False)
    return json.loads(p.stdout) if p.returncode == 0 else None


def apply(obj):
    kubectl("apply", "-f", "-", stdin=json.dumps(obj))


def helm(*args):
    return run(HELM, *args)


HELM_VERSION = helm("version", "--template", "{{.Version}}").stdout.strip()
MONITORING = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors", "PrometheusRule": "prometheusrules"}
MONITORING_ON = [a for kind in ("serviceMonitor", "podMonitor", "prometheusRule")
                 for a in ("--set", f"monitoring.{kind}.enabled=true")]


def wait_until(what, fn, timeout=WAIT):
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - keep polling, report the last error
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}" + (f" (last error: {last})" if last else ""))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url):
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError:
        return None, ""


def audit_events(since=0):
    """The ServiceAccount's audited requests from line `since` on."""
    out = []
    with open(AUDIT) as f:
        for i, line in enumerate(f):
            if i < since:
                continue
            e = json.loads(line)
            if e.get("user", {}).get("username") == SA_USER and e.get("objectRef"):
                out.append(e)
    return out


def audit_lines():
    with open(AUDIT) as f:
        return sum(1 for _ in f)


def rule_set(rules):
    return {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}


def granted():
    cr = kget("clusterrole", FULL)
    role = kget("role", "-n", NS, f"{FULL}-leader-election")
    certs = kget("role", "-n", NS, f"{FULL}-webhook-certs") or {"rules": []}
    # Bound by the operator itself, per namespace with policies.
    secrets = kget("clusterrole", f"{FULL}-secrets")
    return rule_set(cr["rules"]) | rule_set(role["rules"]) | rule_set(certs["rules"]) | rule_set(secrets["rules"])


def secret_reader_namespaces():
    """Namespaces where a RoleBinding gives the chart's ServiceAccount the
    Secret-reading ClusterRole."""
    out = set()
    for rb in kget("rolebindings", "-A")["items"]:
        subjects = rb.get("subjects") or []
        if rb["roleRef"]["name"] == f"{FULL}-secrets" and any(
                s["kind"] == "ServiceAccount" and s["name"] == FULL and s.get("namespace") == NS for s in subjects):
            out.add(rb["metadata"]["namespace"])
    return out


def used(events):
    """The (group, resource, verb) the events used, and the requests refused
    (any 403: the operator waits for a RoleBinding it just made to take
    effect before it reads Secrets, operator/src/secrets.rs await_grant)."""
    out, denied = set(), []
    for e in events:
        ref = e["objectRef"]
        res = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        key = (ref.get("apiGroup", ""), res, e["verb"])
        code = e.get("responseStatus", {}).get("code")
        if code == 403:
            denied.append((key, ref.get("namespace"), ref.get("name")))
        out.add(key)
        if e["verb"] == "patch" and code == 201:
            out.add((key[0], key[1], "create"))  # server-side apply that created the object
    return out, denied


class Operator:
    """tollgate-operator run locally with the Deployment's flags and the
    chart ServiceAccount's token."""

    def __init__(self, tag, webhook_port, lead=True):
        dep = kget("deploy", "-n", NS, OP)
        c = dep["spec"]["template"]["spec"]["containers"][0]
        self.admin = free_port()
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        args = []
        for a in c["args"]:
            if a.startswith("--admin-addr="):
                a = f"--admin-addr=127.0.0.1:{self.admin}"
            elif a.startswith("--webhook-addr="):
                a = f"--webhook-addr=127.0.0.1:{webhook_port}"
            elif a.startswith(("--tls-cert-file=", "--tls-key-file=")):
                flag, path = a.split("=", 1)
                assert os.path.dirname(path) in mounts, f"{path} is not mounted"
                a = f"{flag}={os.path.join(work, 'tls', os.path.basename(path))}"
            args.append(a)
        if "--tls-generate" in args:
            # A new CA trusted 2 s (not an hour) before it signs: the
            # rotation step waits for its switch.
            args.append("--tls-overlap=2s")
        if any(a.startswith("--tls-cert-file=") for a in args):
            # Re-read every second rather than every 10 (the chart's default).
            args.append("--tls-reload-seconds=1")
            secret = kget("secret", "-n", NS, f"{FULL}-webhook-tls")
            os.makedirs(os.path.join(work, "tls"), exist_ok=True)
            for k in ("tls.crt", "tls.key"):
                open(os.path.join(work, "tls", k), "wb").write(base64.b64decode(secret["data"][k]))
        token = kubectl("create", "token", FULL, "-n", NS, "--duration=2h").stdout.strip()
        kubeconfig = open(os.environ["KUBECONFIG"]).read()
        kubeconfig = re.sub(r"token: .*", f"token: {token}", kubeconfig)
        kc = os.path.join(work, f"{tag}.kubeconfig")
        open(kc, "w").write(kubeconfig)
        env = dict(os.environ, KUBECONFIG=kc, POD_NAME=f"{OP}-local-{tag}", POD_NAMESPACE=NS)
        # The Deployment's plain values (RUST_LOG, TOLLGATE_LOG_FORMAT).
        env.update({e["name"]: e["value"] for e in c["env"] if "value" in e})
        self.identity = env["POD_NAME"]
        self.log = os.path.join(work, f"operator-{tag}.log")
        self.p = subprocess.Popen([os.path.join(BIN, "tollgate-operator"), *args], env=env,
                                  stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), stdin=subprocess.DEVNULL)
        # A failed step must not leave it running past the test.
        atexit.register(self.p.kill)
        wait_until("operator /readyz", lambda: self.alive() and http_get(self.url("/readyz"))[0] == 200)
        if lead:
            wait_until("operator to lead", lambda: self.alive() and "tollgate_operator_leader 1" in self.metrics())

    def url(self, path):
        return f"http://127.0.0.1:{self.admin}{path}"

    def metrics(self):
        return http_get(self.url("/metrics"))[1]

    def alive(self):
        if self.p.poll() is not None:
            raise AssertionError(f"operator exited: {open(self.log).read()[-2000:]}")
        return True

    def counter(self, name, **labels):
        total = 0.0
        for line in self.metrics().splitlines():
            m = re.match(rf"{name}\{{([^}}]*)\}} (\S+)$", line)
            if m and all(f'{k}="{v}"' in m.group(1) for k, v in labels.items()):
                total += float(m.group(2))
        return total

    def stop(self):
        self.p.terminate()
        self.p.wait(15)


def namespace(name, enabled):
    labels = {"tollgate.dev/injection": "enabled"} if enabled else {}
    apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
    apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "llm-keys", "namespace": name},
           "stringData": {"openai": "sk-test-openai", "anthropic": "sk-test-anthropic"}})
    wait_until(f"serviceaccount {name}/default", lambda: kget("sa", "-n", name, "default"))


def policy(ns, name="chat", selector="chat", secret="llm-keys", own_sidecar=True, backoff=None):
    text = open(os.path.join(ROOT, "operator", "testdata", "policy.yaml")).read()
    if not own_sidecar:
        text = re.sub(r"\n  sidecar:\n(    .*\n)+", "\n", text)
        assert "sidecar:" not in text
    text = text.replace("name: chat\n", f"name: {name}\n", 1).replace("{app: chat}", "{app: %s}" % selector)
    text = text.replace("{name: llm-keys,", "{name: %s," % secret)
    if backoff:
        text = text.replace("initialBackoff: 100ms", f"initialBackoff: {backoff}")
    return kubectl("-n", ns, "create", "-f", "-", stdin=text, ok=False)


def ready(ns, name):
    p = kget("llmp", "-n", ns, name)
    conds = (p or {}).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds) and p


def pod(ns, name, labels, env_from=None):
    obj = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
           "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]}}
    if env_from:
        obj["spec"]["containers"][0]["envFrom"] = env_from
    out = kubectl("create", "-f", "-", "-o", "json", stdin=json.dumps(obj))
    return json.loads(out.stdout)


def injected(p):
    return any(c["name"] == "tollgate-proxy" for c in p["spec"].get("initContainers", []))


def served_certificate():
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", state["port"]), timeout=3) as raw:
        with ctx.wrap_socket(raw) as tls:
            return ssl.DER_cert_to_PEM_cert(tls.getpeercert(binary_form=True))


def pem_body(pem):
    return "".join(line for line in pem.strip().splitlines() if "-----" not in line)


def write_pair(crt, key):
    """Both files swapped in by rename, as a kubelet's ..data swap would."""
    d = os.path.join(work, "tls")
    for name, text in (("tls.key", key), ("tls.crt", crt)):
        open(os.path.join(d, f".{name}"), "w").write(text)
    for name in ("tls.key", "tls.crt"):
        os.replace(os.path.join(d, f".{name}"), os.path.join(d, name))


state = {}


def ca_bundles():
    """The caBundle (PEM) of every webhook of both configurations."""
    hooks = kget("mutatingwebhookconfiguration", FULL)["webhooks"] + kget("validatingwebhookconfiguration", FULL)["webhooks"]
    return [base64.b64decode(h["clientConfig"].get("caBundle", "")).decode() for h in hooks]


def secret_text(name, key):
    s = kget("secret", "-n", NS, name)
    return base64.b64decode(s["data"][key]).decode() if s else None


def pem_count(bundle):
    return bundle.count("-----BEGIN CERTIFICATE-----")


@step("helm install: CRD, RBAC, Lease, webhooks without a caBundle (the operator makes the certificate)")
def install():
    state["port"] = free_port()
    notes = helm("install", REL, CHART, "-n", NS, "--create-namespace",
                 "--set", f"webhook.url=https://127.0.0.1:{state['port']}",
                 "--set", "sidecar.port=15900", "--set", "sidecar.logLevel=debug", *MONITORING_ON).stdout
    assert "kubectl label namespace team-a tollgate.dev/injection=enabled" in notes, notes
    assert "kind: LlmPolicy" in notes and "Injection failurePolicy is Fail" in notes, notes
    assert f"Webhook certificate: made by the operator in the Secret {CERTS}" in notes, notes
    for kind in MONITORING:
        assert f"WARNING: {kind} was requested, but this cluster does not serve" in notes, notes
        assert not kget(MONITORING[kind], "-n", NS), f"{kind} rendered without its API"
    kubectl("wait", "--for=condition=Established", "crd/llmpolicies.tollgate.dev", "--timeout=60s")
    # Nothing generated by Helm: the operator makes the Secret and the caBundle.
    assert kget("secret", "-n", NS, CERTS) is None and kget("secret", "-n", NS, f"{FULL}-webhook-tls") is None
    assert ca_bundles() == ["", "", ""], ca_bundles()
    assert kget("lease", "-n", NS, OP) and kget("pdb", "-n", NS, OP)
    assert kget("deploy", "-n", NS, OP)["spec"]["replicas"] == 2


@step("operator runs with the chart's ServiceAccount token and the Deployment's flags, and leads")
def operator():
    state["audit_start"] = 0
    state["op"] = Operator("a", state["port"])
    holder = kget("lease", "-n", NS, OP)["spec"]["holderIdentity"]
    assert holder == state["op"].identity, holder
    # The leader made one CA and certificate, owned by the release's Lease,
    # and put the CA in every webhook's caBundle.
    secret = kget("secret", "-n", NS, CERTS)
    assert secret["type"] == "kubernetes.io/tls", secret["type"]
    owner = secret["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("Lease", OP, kget("lease", "-n", NS, OP)["metadata"]["uid"])
    ca = secret_text(CERTS, "ca.crt")
    assert pem_count(ca) == 1
    wait_until("the CA in every caBundle", lambda: ca_bundles() == [ca] * 3)
    assert pem_body(served_certificate()) == pem_body(secret_text(CERTS, "tls.crt"))


@step("validating webhook (called by the API server) refuses an invalid spec; a policy whose Secret is missing is admitted and says so")
def validate():
    namespace("app-a", enabled=True)
    p = policy("app-a", name="bad", backoff="soon")
    assert p.returncode != 0 and "spec.routes[0].retry.initialBackoff" in p.stderr, p.stderr
    assert state["op"].counter("tollgate_operator_admission_requests_total", webhook="validate", result="denied") >= 1
    # Any order: the policy before its Secret.
    assert policy("app-a", name="early", selector="early", secret="early-keys").returncode == 0

    def secret_missing():
        conds = ((kget("llmp", "-n", "app-a", "early") or {}).get("status") or {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["reason"] == "SecretMissing"
                   and "Secret app-a/early-keys does not exist" in c["message"] for c in conds)
    wait_until("Ready=False SecretMissing", secret_missing)
    apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "early-keys", "namespace": "app-a"},
           "stringData": {"openai": "sk-test-openai", "anthropic": "sk-test-anthropic"}})
    wait_until("policy early Ready once its Secret exists", lambda: ready("app-a", "early"))


@step("a valid policy becomes Ready with its ConfigMap and a ConfigUpdated Event")
def reconcile():
    p = policy("app-a")
    assert p.returncode == 0, p.stderr
    wait_until("policy app-a/chat Ready", lambda: ready("app-a", "chat"))
    cm = kget("cm", "-n", "app-a", "tollgate-chat")
    assert "sk-test" not in json.dumps(cm["data"]), "keys never land in a ConfigMap"
    wait_until("a ConfigUpdated event", lambda: any(
        e.get("reason") == "ConfigUpdated" and e["regarding"]["name"] == "chat"
        for e in kget("events.events.k8s.io", "-n", "app-a")["items"]))

    # The chart's log format: a JSON object per line, the reconcile's
    # policy and namespace on the lines logged inside it.
    def logged():
        lines = [json.loads(line) for line in open(state["op"].log) if line.strip()]
        assert lines and all({"timestamp", "level"} <= set(line) for line in lines), lines[:3]
        return any(line.get("reason") == "ConfigUpdated"
                   and line.get("span", {}).get("policy") == "chat"
                   and line["span"].get("namespace") == "app-a" for line in lines)
    wait_until("the ConfigUpdated log line, as JSON, in the reconcile's span", logged)


@step("mutating webhooks: enabled namespace and pod opt-in injected with the chart's sidecar defaults where a policy sets none; opt-out, unselected and excluded namespaces never sent")
def mutate():
    op = state["op"]
    calls = lambda: op.counter("tollgate_operator_admission_requests_total", webhook="mutate")  # noqa: E731
    p = pod("app-a", "app", {"app": "chat"})
    assert injected(p), p["spec"]
    assert p["spec"]["initContainers"][0]["image"] == "example.test/tollgate-proxy:dev"
    n = calls()
    assert not injected(pod("app-a", "optout", {"app": "chat", "tollgate.dev/inject": "false"}))
    namespace("app-b", enabled=False)
    assert policy("app-b", own_sidecar=False).returncode == 0
    wait_until("policy app-b/chat Ready", lambda: ready("app-b", "chat"))
    assert not injected(pod("app-b", "plain", {"app": "chat"}))
    assert not injected(pod(NS, "own", {"app": "chat", "tollgate.dev/inject": "true"}))
    assert not injected(pod("kube-system", "sys", {"app": "chat", "tollgate.dev/inject": "true"}))
    assert calls() == n, "the webhook was called for a pod its selectors exclude"
    asked = pod("app-b", "asked", {"app": "chat", "tollgate.dev/inject": "true"})
    assert injected(asked)
    assert calls() == n + 1
    # app-b's policy has no spec.sidecar: the chart's sidecar defaults apply;
    # app-a's policy sets its own (port 15800, its image), which win.
    side = asked["spec"]["initContainers"][0]
    assert side["image"] == "ghcr.io/tollgate-dev/tollgate-proxy:0.1.0", side["image"]
    assert side["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "256Mi"}}
    env = {e["name"]: e.get("value") for e in asked["spec"]["containers"][0]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:15900/v1", env
    config = kget("cm", "-n", "app-b", "tollgate-chat")["data"]["config.yaml"]
    assert "debug" in config and "15900" in config, config
    env = {e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}
    assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:15800/v1", env
    # envFrom: the webhook reads the app's Secret (through the operator's
    # RoleBinding) and keeps the key the app sets itself.
    apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "app-own", "namespace": "app-a"},
           "stringData": {"OPENAI_API_KEY": "sk-app-own"}})
    p = pod("app-a", "env-from", {"app": "chat"}, env_from=[{"secretRef": {"name": "app-own"}}])
    env = {e["name"]: e.get("value") for e in p["spec"]["containers"][0]["env"]}
    assert "OPENAI_API_KEY" not in env and env["ANTHROPIC_API_KEY"] == "tollgate-placeholder", env
    kubectl("-n", "app-a", "delete", "pod", "env-from")


@step("status counts pods (not the opted-out one); once it drops the opt-out label it shows in tollgate_operator_uninjected_pods")
def counts():
    wait_until("pod counts", lambda: (ready("app-a", "chat") or {}).get("status", {}).get("injectedPods") == 1
               and ready("app-a", "chat")["status"].get("matchedPods") == 1
               and 'tollgate_operator_uninjected_pods{namespace="app-a",policy="chat"} 0' in state["op"].metrics())
    kubectl("-n", "app-a", "label", "pod", "optout", "tollgate.dev/inject-")
    wait_until("pod counts", lambda: (ready("app-a", "chat") or {}).get("status", {}).get("matchedPods") == 2)
    wait_until("uninjected gauge", lambda: 'tollgate_operator_uninjected_pods{namespace="app-a",policy="chat"} 1'
               in state["op"].metrics())
    wait_until("uninjected gauge", lambda: 'tollgate_operator_uninjected_pods{namespace="app-a",policy="chat"} 1'
               in state["op"].metrics())


@step("a CA rotation asked for on the Secret reaches the replica and the caBundle without a restart; pods injected throughout")
def rotation():
    op = state["op"]
    old_ca, old_leaf = secret_text(CERTS, "ca.crt"), secret_text(CERTS, "tls.crt")
    kubectl("-n", NS, "annotate", "secret", CERTS, "tollgate.dev/rotate=ca")
    created, refused = [], []

    def step_done(check):
        def poll():
            # Whatever is served meanwhile, the API server trusts it: every
            # pod is admitted, with its sidecar.
            name = f"rotating-{len(created)}"
            try:
                if not injected(pod("app-a", name, {"app": "chat"})):
                    refused.append(f"{name}: admitted without the sidecar")
                created.append(name)
            except AssertionError as e:
                refused.append(f"{name}: {e}")
            return check(ca_bundles()[0])
        return poll
    wait_until("old and new CA in the caBundle", step_done(lambda b: pem_count(b) == 2 and b.endswith(old_ca)))
    new_ca = ca_bundles()[0][: -len(old_ca)]
    wait_until("the certificate signed by the new CA served", step_done(
        lambda b: pem_body(served_certificate()) != pem_body(old_leaf)
        and pem_body(served_certificate()) == pem_body(secret_text(CERTS, "tls.crt"))))
    wait_until("the old CA out of the caBundle", step_done(lambda b: ca_bundles() == [new_ca] * 3))
    assert secret_text(CERTS, "ca.crt") == new_ca
    assert "tollgate.dev/rotate" not in kget("secret", "-n", NS, CERTS)["metadata"]["annotations"]
    assert op.counter("tollgate_operator_tls_reloads_total", result="success") >= 1
    assert not refused and len(created) >= 3, (refused, len(created))
    kubectl("-n", "app-a", "delete", "pod", *created, "--wait=false")


@step("the operator's metrics hold every operator metric the alerts and dashboard read, and match the README reference")
def metric_names():
    rules = helm("template", "t", CHART, "-n", NS, "--set", "monitoring.prometheusRule.enabled=true",
                 "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
                 "--show-only", "templates/prometheusrule.yaml").stdout
    import yaml
    groups = yaml.safe_load(rules)["spec"]["groups"]
    open(os.path.join(work, "rules.yaml"), "w").write(yaml.safe_dump({"groups": groups}))
    open(os.path.join(work, "operator-metrics.txt"), "w").write(state["op"].metrics())
    p = run(sys.executable, os.path.join(ROOT, "tests", "chart", "metric_names.py"), "--scope", "operator",
            os.path.join(work, "rules.yaml"), os.path.join(CHART, "files", "dashboards", "tollgate.json"),
            os.path.join(work, "operator-metrics.txt"), ok=False)
    assert p.returncode == 0, p.stdout + p.stderr
    print("     " + p.stdout.strip()[:200])
    p = run(sys.executable, os.path.join(ROOT, "tests", "chart", "metrics_doc.py"), "--scope", "operator",
            os.path.join(ROOT, "README.md"), os.path.join(work, "operator-metrics.txt"), ok=False)
    assert p.returncode == 0, p.stdout + p.stderr
    print("     " + p.stdout.strip()[:200])


@step("RBAC: every request allowed, every granted verb used (audit log)")
def rbac():
    holder_renewed = lambda: any(e["objectRef"]["resource"] == "leases" and e["verb"] == "update"  # noqa: E731
                                 and e.get("responseStatus", {}).get("code") == 200
                                 for e in audit_events(state["audit_start"])[1:])
    # The first update takes the Lease; wait for a renewal too.
    wait_until("a Lease renewal", lambda: sum(1 for e in audit_events() if e["objectRef"]["resource"] == "leases"
                                               and e["verb"] == "update") >= 2 and holder_renewed(), timeout=30)
    # A second replica stands by, watching the Lease.
    mark = audit_lines()
    standby = Operator("standby", free_port(), lead=False)
    wait_until("the standby's Lease watch", lambda: any(
        e["objectRef"]["resource"] == "leases" and e["verb"] == "watch" for e in audit_events(mark)))
    assert "tollgate_operator_leader 0" in standby.metrics()
    standby.stop()
    events = audit_events()
    use, denied = used(events)
    assert not denied, f"forbidden: {denied}"
    g = granted()
    assert use <= g, f"used but not granted: {sorted(use - g)}"
    unused = g - use - set(UNUSED_OK)
    assert not unused, f"granted but never used (drop them): {sorted(unused)}"
    # Secrets only where policies are, each through the operator's RoleBinding.
    with_policies = {p["metadata"]["namespace"] for p in kget("llmp", "-A")["items"]}
    secrets = [e["objectRef"] for e in events if e["objectRef"]["resource"] == "secrets"]
    # In the release namespace, the webhook certificate's Secret only.
    assert {r.get("name") for r in secrets if r.get("namespace") == NS} == {CERTS}, secrets
    read_in = {r.get("namespace") for r in secrets if r.get("namespace") != NS}
    assert read_in and read_in <= with_policies, f"Secrets read in {read_in}, policies in {with_policies}"
    assert secret_reader_namespaces() == with_policies, (secret_reader_namespaces(), with_policies)
    state["audit_mark"] = audit_lines()


def ablate(drop, create_policy, forbidden):
    """Removes verbs (`drop(rule)` edits one rule in place) from the live
    ClusterRole, creates a policy that needs them, and checks its reconcile
    fails with `forbidden(key, namespace, name)` in the audit log; restored,
    the policy turns Ready."""
    cr = kget("clusterrole", FULL, "--show-managed-fields")
    orig = copy.deepcopy(cr)
    for r in cr["rules"]:
        drop(r)
    cr["rules"] = [r for r in cr["rules"] if r["verbs"]]
    # Helm 4 applies server-side: edited and restored as its own field
    # manager, so the next upgrade finds no conflicting owner. Helm 3
    # patches client-side (three-way merge), so a plain replace will do.
    manager = next((m["manager"] for m in cr["metadata"]["managedFields"] if m["operation"] == "Apply"), None)
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        cr["metadata"].pop(k, None)
    as_helm = (("apply", "--server-side", "--force-conflicts", f"--field-manager={manager}", "-f", "-")
               if manager else ("replace", "-f", "-"))
    kubectl(*as_helm, stdin=json.dumps(cr))
    op = state["op"]
    mark = audit_lines()
    errors = op.counter("tollgate_operator_reconciles_total", result="error")
    ns, name = create_policy()
    wait_until("a reconcile error", lambda: op.counter("tollgate_operator_reconciles_total", result="error") > errors)
    _, denied = used(audit_events(mark))
    assert any(forbidden(*d) for d in denied), denied
    assert not ready(ns, name)
    for k in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
        orig["metadata"].pop(k, None)
    kubectl(*as_helm, stdin=json.dumps(orig))
    wait_until(f"policy {name} Ready after the retry", lambda: ready(ns, name), timeout=90)


@step("RBAC: without `create` on configmaps, a new policy's ConfigMap is forbidden; restored, it reconciles")
def ablation():
    def drop(r):
        if r["resources"] == ["configmaps"]:
            r["verbs"] = [v for v in r["verbs"] if v != "create"]

    def create():
        assert policy("app-a", name="second", selector="second").returncode == 0
        return "app-a", "second"
    ablate(drop, create, lambda key, ns, name: key == ("", "configmaps", "create") and ns == "app-a")


@step("RBAC: without `bind` on the Secret-reading ClusterRole, the first policy of a namespace cannot get Secret reads; restored, it reconciles")
def ablation_bind():
    def drop(r):
        if r["resources"] == ["clusterroles"]:
            r["verbs"] = [v for v in r["verbs"] if v != "bind"]

    def create():
        namespace("app-c", enabled=True)
        assert policy("app-c").returncode == 0
        return "app-c", "chat"
    ablate(drop, create, lambda key, ns, name: key[1] == "rolebindings" and ns == "app-c")


@step("helm upgrade keeps the operator's caBundle (not in the manifests) and applies changed values")
def upgrade_keep():
    before = ca_bundles()
    assert before[0] and before == [secret_text(CERTS, "ca.crt")] * 3
    helm("upgrade", REL, CHART, "-n", NS, "--reuse-values", "--set", "webhook.mutating.timeoutSeconds=3")
    mwc = kget("mutatingwebhookconfiguration", FULL)
    assert [w["timeoutSeconds"] for w in mwc["webhooks"]] == [3, 3]
    assert ca_bundles() == before, "the upgrade dropped or changed the operator's caBundle"
    assert injected(pod("app-a", "after-upgrade", {"app": "chat"}))


@step("once the cluster serves monitoring.coreos.com/v1, helm upgrade renders the ServiceMonitor, PodMonitor and PrometheusRule")
def upgrade_monitoring():
    # Stand-ins for the prometheus-operator CRDs: only the API has to be served.
    for kind, plural in MONITORING.items():
        apply({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
               "metadata": {"name": f"{plural}.monitoring.coreos.com"},
               "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
                        "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
                        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                            "type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}})
        kubectl("wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com", "--timeout=60s")
    notes = helm("upgrade", REL, CHART, "-n", NS, "--reuse-values").stdout
    assert "WARNING" not in notes, notes
    assert kget("servicemonitor", "-n", NS, OP)["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert kget("podmonitor", "-n", NS, f"{FULL}-sidecars")["spec"]["podMetricsEndpoints"][0]["port"] == "tollgate-admin"
    groups = kget("prometheusrule", "-n", NS, FULL)["spec"]["groups"]
    assert sum(1 for g in groups for r in g["rules"] if "alert" in r) >= 19, groups


@step("helm upgrade to a user's Secret: served, its ca.crt injected, the Secret only read")
def upgrade_user_secret():
    state["op"].stop()
    d = os.path.join(work, "user-pki")
    os.makedirs(d, exist_ok=True)
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
        "-subj", "/CN=platform-ca", "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.crt")
    run("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-subj", "/CN=webhook",
        "-keyout", f"{d}/tls.key", "-out", f"{d}/tls.csr")
    open(f"{d}/ext", "w").write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", f"{d}/tls.csr", "-CA", f"{d}/ca.crt", "-CAkey", f"{d}/ca.key",
        "-CAcreateserial", "-days", "1", "-extfile", f"{d}/ext", "-out", f"{d}/tls.crt")
    kubectl("-n", NS, "create", "secret", "generic", USER_SECRET, f"--from-file=ca.crt={d}/ca.crt",
            f"--from-file=tls.crt={d}/tls.crt", f"--from-file=tls.key={d}/tls.key")
    written = kget("secret", "-n", NS, USER_SECRET)["metadata"]["resourceVersion"]
    mark = audit_lines()
    notes = helm("upgrade", REL, CHART, "-n", NS, "--reuse-values", "--set", "webhook.tls.generator=secret",
                 "--set", f"webhook.tls.secretName={USER_SECRET}").stdout
    assert f"Webhook certificate: from your Secret {USER_SECRET}" in notes, notes
    role = kget("role", "-n", NS, f"{FULL}-webhook-certs")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [USER_SECRET],
                              "verbs": ["get", "watch"]}], role["rules"]
    state["op"] = Operator("b", state["port"])
    ca = open(f"{d}/ca.crt").read()
    wait_until("the user's CA in every caBundle", lambda: ca_bundles() == [ca] * 3)
    assert pem_body(served_certificate()) == pem_body(open(f"{d}/tls.crt").read())
    assert injected(pod("app-a", "user-secret", {"app": "chat"}))
    assert kget("secret", "-n", NS, USER_SECRET)["metadata"]["resourceVersion"] == written, "the operator wrote it"
    use, denied = used(audit_events(mark))
    assert not denied, f"forbidden: {denied}"
    assert ("", "secrets", "watch") in use and ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch") in use
    state["op"].stop()


def renewal():
    """A renewed certificate written over the mounted files is served
    without a restart (as after a cert-manager renewal)."""
    d = os.path.join(work, "tls")
    orig = (open(os.path.join(d, "tls.crt")).read(), open(os.path.join(d, "tls.key")).read())
    assert pem_body(served_certificate()) == pem_body(orig[0])
    run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
        "-subj", "/CN=renewed", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", os.path.join(work, "renewed.key"), "-out", os.path.join(work, "renewed.crt"))
    renewed = open(os.path.join(work, "renewed.crt")).read()
    op = state["op"]
    write_pair(renewed, open(os.path.join(work, "renewed.key")).read())
    wait_until("the renewed certificate served", lambda: pem_body(served_certificate()) == pem_body(renewed), timeout=15)
    assert op.counter("tollgate_operator_tls_reloads_total", result="success") >= 1
    # Back to the one the webhook configurations trust.
    write_pair(*orig)
    wait_until("the original certificate served again", lambda: pem_body(served_certificate()) == pem_body(orig[0]),
               timeout=15)


@step("helm upgrade to the helm-made certificate, one replica, failurePolicy Ignore; renewed files over the mount served without a restart")
def upgrade_helm_generator():
    args = ["upgrade", REL, CHART, "-n", NS, "--reuse-values", "--set", "operator.replicaCount=1",
            "--set", "operator.podDisruptionBudget.enabled=false", "--set", "webhook.tls.generator=helm",
            "--set", "webhook.tls.secretName=", "--set", "webhook.mutating.failurePolicy=Ignore"]
    if HELM_VERSION.startswith("v4."):
        # The operator owns the caBundle it wrote: Helm 4's server-side
        # apply takes it over for a rendered one only with --force-conflicts
        # (README, Webhook certificates).
        p = run(HELM, *args, ok=False)
        assert p.returncode != 0 and "clientConfig.caBundle" in p.stderr, p.stderr[-1500:]
        args.append("--force-conflicts")
    notes = helm(*args).stdout
    assert "Not GitOps-safe" in notes, notes
    assert kget("role", "-n", NS, f"{FULL}-webhook-certs") is None
    assert kget("pdb", "-n", NS, OP) is None
    assert kget("deploy", "-n", NS, OP)["spec"]["replicas"] == 1
    mwc = kget("mutatingwebhookconfiguration", FULL)
    assert [w["failurePolicy"] for w in mwc["webhooks"]] == ["Ignore", "Ignore"]
    ca = secret_text(f"{FULL}-webhook-tls", "ca.crt")
    assert ca_bundles() == [ca] * 3, "the helm-made CA rendered into every caBundle"
    state["op"] = Operator("c", state["port"])
    assert injected(pod("app-a", "helm-tls", {"app": "chat"}))
    renewal()
    state["op"].stop()


@step("helm uninstall leaves nothing but the kept CRD (and the policies in it)")
def uninstall():
    helm("uninstall", REL, "-n", NS, "--wait")
    sel = f"app.kubernetes.io/instance={REL}"
    for kind in ("deploy", "svc", "secret", "sa", "role", "rolebinding", "pdb", "lease", "cm", *MONITORING.values()):
        items = kget(kind, "-n", NS, "-l", sel)["items"]
        assert not items, f"{kind} left: {[i['metadata']['name'] for i in items]}"
    assert kget("lease", "-n", NS, OP) is None
    # The operator's Secret is no chart object: garbage-collected with the
    # Lease that owns it. The user's own Secret is theirs.
    wait_until("the operator's Secret collected with its Lease", lambda: kget("secret", "-n", NS, CERTS) is None)
    assert kget("secret", "-n", NS, USER_SECRET)
    kubectl("-n", NS, "delete", "secret", USER_SECRET)
    for kind in ("clusterrole", "clusterrolebinding", "mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        items = kget(kind, "-l", sel)["items"]
        assert not items, f"{kind} left: {[i['metadata']['name'] for i in items]}"
    assert kget("crd", "llmpolicies.tollgate.dev"), "crds.keep keeps the CRD"
    assert kget("llmp", "-n", "app-a", "chat"), "and the policies"


@step("reinstalled with crds.keep=false (adopting the kept CRD), uninstall removes the CRD")
def reinstall():
    helm("install", REL, CHART, "-n", NS, "--set", "crds.keep=false")
    # Helm decides what to keep from the release's manifest.
    assert "helm.sh/resource-policy" not in helm("get", "manifest", REL, "-n", NS).stdout
    crd = kget("crd", "llmpolicies.tollgate.dev")
    if HELM_VERSION.startswith("v4."):
        # Helm 4 adopts by server-side apply and drops the annotation; Helm 3
        # patches from the new manifest alone and leaves it on the live
        # object, where it is inert.
        assert "helm.sh/resource-policy" not in crd["metadata"].get("annotations", {}), crd["metadata"]
    helm("uninstall", REL, "-n", NS, "--wait")
    wait_until("the CRD to be deleted", lambda: kget("crd", "llmpolicies.tollgate.dev") is None)


sys.exit(finish())
