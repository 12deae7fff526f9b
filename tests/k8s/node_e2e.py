"""Real-node e2e: the Helm chart installed as the README says, on a real
kubelet + containerd, with Tollgate's own images, and a real app behind the
injected sidecar. Run inside the cluster's network namespace by
tests/k8s/node-e2e.sh (`cluster.sh run` with TOLLGATE_K8S_NODE=1).

Each check prints `ok   - NAME (Ns)` or `FAIL - NAME: why`; the last line is
`N passed, N failed`. Figures (install to first answer, pod start-up with and
without the sidecar) go to stdout and to $TOLLGATE_E2E_REPORT if set.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RELEASE_NS = "tollgate-system"
APP_NS = "team-a"
MOCK_NS = "llm-mock"
POLICY_KEY = "sk-e2e-policy-key-9f3a"  # the Secret's key: the only one the provider accepts
APP_IMAGE = "tollgate.test/app:e2e"
MOCK_IMAGE = "tollgate.test/mock:e2e"
SIDECAR = "tollgate-proxy"
PII_EMAIL = "jane.roe@example.org"

# Pod securityContext that the `restricted` Pod Security Standard admits.
RESTRICTED_POD = {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "readOnlyRootFilesystem": True,
}

figures = {}


def log(msg):
    print(msg, flush=True)


def run(*args, check=True, input=None, timeout=300):
    p = subprocess.run(list(args), capture_output=True, text=True, input=input, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def kubectl(*args, **kw):
    return run("kubectl", *args, **kw)


def kjson(*args):
    return json.loads(kubectl(*args, "-o", "json").stdout)


def apply(obj):
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def wait_until(what, fn, timeout=120, interval=0.5):
    """Polls fn until it returns a truthy value; fails with the last error."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
            last = f"returned {v!r}"
        except Exception as e:  # noqa: BLE001 - any failure is retried until the deadline
            last = f"{type(e).__name__}: {e}"
        time.sleep(interval)
    raise AssertionError(f"{what}: not after {timeout}s ({last})")


def http(method, url, body=None, headers=None, timeout=30):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def pods(ns, selector):
    return kjson("-n", ns, "get", "pods", "-l", selector)["items"]


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def wait_pods_ready(ns, selector, count, timeout=180):
    def check():
        ps = [p for p in pods(ns, selector) if not p["metadata"].get("deletionTimestamp")]
        return ps if len(ps) == count and all(ready(p) for p in ps) else None

    try:
        return wait_until(f"{count} ready pods {selector} in {ns}", check, timeout)
    except AssertionError:
        for p in pods(ns, selector):
            log(f"  pod {p['metadata']['name']}: {json.dumps(p.get('status', {}))[:1500]}")
        log(kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp", check=False).stdout[-3000:])
        raise


def container_app(name, args, probe=True):
    c = {
        "name": name,
        "image": APP_IMAGE,
        "imagePullPolicy": "Never",
        "args": args,
        "securityContext": RESTRICTED_CONTAINER,
    }
    if probe:
        c["ports"] = [{"name": "http", "containerPort": 8080}]
        c["readinessProbe"] = {"httpGet": {"path": "/first", "port": 8080}, "periodSeconds": 1}
    return c


def app_deployment(name, ns, replicas, labels):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"e2e": name}},
            "template": {
                "metadata": {"labels": {"e2e": name, **labels}},
                "spec": {
                    "securityContext": RESTRICTED_POD,
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container_app("app", ["serve"])],
                },
            },
        },
    }


class Mock:
    def __init__(self, ip):
        self.url = f"http://{ip}:8080"

    def requests(self):
        return json.loads(http("GET", f"{self.url}/__mock/requests")[1])

    def clear(self):
        http("DELETE", f"{self.url}/__mock/requests")


# === the checks, in order: each builds on the ones before ===

state = {}


def check_images_and_install():
    """README: helm install, then rollout status of the operator."""
    t0 = time.monotonic()
    state["t_install"] = t0
    run("helm", "install", "tollgate", os.path.join(ROOT, "charts/tollgate"), "-n", RELEASE_NS, "--create-namespace")
    kubectl("-n", RELEASE_NS, "rollout", "status", "deploy/tollgate-operator", "--timeout=180s", timeout=200)
    ops = pods(RELEASE_NS, "app.kubernetes.io/component=operator")
    assert len(ops) == 2 and all(ready(p) for p in ops), "two operator replicas Ready"
    for p in ops:
        # Real probes on a real kubelet: Ready is the kubelet's verdict.
        c = p["spec"]["containers"][0]
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert p["status"]["containerStatuses"][0]["started"] is True
        assert p["spec"]["containers"][0]["image"].endswith(":" + chart_app_version())
    figures["operator_ready_s"] = round(time.monotonic() - t0, 1)
    # The API server reaches both webhooks through the chart's Service (so
    # every injection below went through it), not a URL.
    for kind in ("mutatingwebhookconfiguration", "validatingwebhookconfiguration"):
        for wh in kjson("get", kind, "tollgate")["webhooks"]:
            svc = wh["clientConfig"].get("service")
            assert svc and svc["namespace"] == RELEASE_NS and "url" not in wh["clientConfig"], wh["clientConfig"]


def chart_app_version():
    with open(os.path.join(ROOT, "charts/tollgate/Chart.yaml")) as f:
        for line in f:
            if line.startswith("appVersion:"):
                return line.split(":", 1)[1].strip().strip('"')
    raise AssertionError("no appVersion")


def check_leader():
    op_names = {p["metadata"]["name"] for p in pods(RELEASE_NS, "app.kubernetes.io/component=operator")}
    wait_until(
        "an operator replica holds the Lease",
        lambda: any(
            l["spec"].get("holderIdentity") in op_names
            for l in kjson("-n", RELEASE_NS, "get", "leases")["items"]
        ),
        60,
    )


def check_mock_provider():
    kubectl("create", "namespace", MOCK_NS)
    kubectl("label", "namespace", MOCK_NS, "pod-security.kubernetes.io/enforce=restricted")
    apply(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "mock", "namespace": MOCK_NS, "labels": {"app": "mock"}},
            "spec": {
                "securityContext": RESTRICTED_POD,
                "containers": [
                    {
                        "name": "mock",
                        "image": MOCK_IMAGE,
                        "imagePullPolicy": "Never",
                        "args": ["--listen", "0.0.0.0:8080", "--openai-key", POLICY_KEY],
                        "ports": [{"containerPort": 8080}],
                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1},
                        "securityContext": RESTRICTED_CONTAINER,
                    }
                ],
            },
        }
    )
    p = wait_pods_ready(MOCK_NS, "app=mock", 1, 120)[0]
    state["mock"] = Mock(p["status"]["podIP"])
    assert state["mock"].requests() == []


def check_policy_and_app():
    """README: label the namespace, create the Secret, apply the policy, roll out the app."""
    kubectl("create", "namespace", APP_NS)
    kubectl(
        "label",
        "namespace",
        APP_NS,
        "tollgate.dev/injection=enabled",
        "pod-security.kubernetes.io/enforce=restricted",
    )
    kubectl("-n", APP_NS, "create", "secret", "generic", "llm-keys", f"--from-literal=openai={POLICY_KEY}")
    with open(os.path.join(ROOT, "examples/k8s/policy.yaml")) as f:
        policy = f.read()
    # The one change to the README's file: the provider is the mock pod.
    policy = policy.replace(
        "credentialsSecretRef: {name: llm-keys, key: openai}",
        "credentialsSecretRef: {name: llm-keys, key: openai}\n"
        f"      baseUrl: {state['mock'].url}/v1",
    )
    assert "baseUrl" in policy
    state["policy"] = policy
    kubectl("-n", APP_NS, "apply", "-f", "-", input=policy)
    wait_until(
        "policy chat Ready",
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in kjson("-n", APP_NS, "get", "llmp", "chat").get("status", {}).get("conditions", [])
        ),
        60,
    )
    t0 = time.monotonic()
    apply(app_deployment("chat", APP_NS, 2, {"app": "chat"}))
    kubectl("-n", APP_NS, "rollout", "status", "deploy/chat", "--timeout=180s", timeout=200)
    ps = wait_pods_ready(APP_NS, "e2e=chat", 2)
    figures["app_pod_ready_with_sidecar_s"] = round(time.monotonic() - t0, 1)
    state["app_pods"] = ps
    first = json.loads(http("GET", f"http://{ps[0]['status']['podIP']}:8080/first")[1])
    figures["helm_install_to_first_answer_s"] = round(time.monotonic() - state["t_install"], 1)
    assert first["status"] == 200, f"first request {first}"


def check_native_sidecar_restricted():
    for p in state["app_pods"]:
        inits = p["spec"].get("initContainers", [])
        assert inits and inits[0]["name"] == SIDECAR, "the sidecar is the first init container"
        s = inits[0]
        assert s["restartPolicy"] == "Always", "native sidecar"
        sc = s["securityContext"]
        assert sc["runAsNonRoot"] and sc["readOnlyRootFilesystem"] and sc["capabilities"]["drop"] == ["ALL"]
        assert sc["allowPrivilegeEscalation"] is False and sc["seccompProfile"]["type"] == "RuntimeDefault"
        assert p["metadata"]["annotations"]["tollgate.dev/policy"] == "chat"
        st = {c["name"]: c for c in p["status"].get("initContainerStatuses", [])}[SIDECAR]
        assert st["ready"] and st["started"] and "running" in st["state"], st


def check_first_request_after_sidecar():
    """The app's very first request, sent before it even listens, succeeded
    in every replica: the kubelet started the app only once the sidecar's
    startup probe passed."""
    for p in state["app_pods"]:
        first = json.loads(http("GET", f"http://{p['status']['podIP']}:8080/first")[1])
        assert first["status"] == 200, f"{p['metadata']['name']} first request: {first}"
        env = json.loads(http("GET", f"http://{p['status']['podIP']}:8080/env")[1])
        assert env["OPENAI_BASE_URL"] == "http://127.0.0.1:15800/v1", env
        st = {c["name"]: c for c in p["status"]["initContainerStatuses"]}[SIDECAR]
        app = p["status"]["containerStatuses"][0]
        assert st["state"]["running"]["startedAt"] <= app["state"]["running"]["startedAt"]


def check_key_and_pii():
    mock = state["mock"]
    mock.clear()
    ip = state["app_pods"][0]["status"]["podIP"]
    status, body = http(
        "POST",
        f"http://{ip}:8080/call/chat/completions",
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"Write to {PII_EMAIL} please"}]},
    )
    assert status == 200, (status, body)
    reqs = [r for r in mock.requests() if r["path"].endswith("/chat/completions")]
    assert len(reqs) == 1, reqs
    headers = {k.lower(): v for k, v in reqs[0]["headers"]}
    assert headers.get("authorization") == f"Bearer {POLICY_KEY}", "the policy's key reached the provider"
    assert "tollgate-placeholder" not in json.dumps(reqs[0]), "the app's key never reaches the provider"
    assert PII_EMAIL not in reqs[0]["body"], "the e-mail address was masked"
    assert "Write to" in reqs[0]["body"]


def check_metrics_scrape():
    p = state["app_pods"][0]
    status, text = http("GET", f"http://{p['status']['podIP']}:15801/metrics")
    assert status == 200 and "tollgate_requests_total" in text, text[:500]
    op = pods(RELEASE_NS, "app.kubernetes.io/component=operator")[0]
    status, text = http("GET", f"http://{op['status']['podIP']}:{metrics_port(op)}/metrics")
    assert status == 200 and "tollgate_operator_" in text, text[:500]
    pol = kjson("-n", APP_NS, "get", "llmp", "chat")
    assert pol["status"].get("injectedPods") == 2, pol["status"]
    out = kubectl("-n", APP_NS, "get", "llmp").stdout
    assert "chat" in out, out


def free_port():
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return sk.getsockname()[1]


def podmonitor_targets():
    """The scrape targets the chart's PodMonitor (sidecar port
    `tollgate-admin`) and ServiceMonitor (operator port `http-metrics`)
    select: every running pod's container port of that name."""
    out = []
    for p in kjson("get", "pods", "-A")["items"]:
        if p["status"].get("phase") != "Running" or not p["status"].get("podIP"):
            continue
        spec = p["spec"]
        for c in spec.get("initContainers", []) + spec["containers"]:
            for port in c.get("ports", []):
                if port.get("name") in ("tollgate-admin", "http-metrics"):
                    out.append(
                        {
                            "targets": [f"{p['status']['podIP']}:{port['containerPort']}"],
                            "labels": {"namespace": p["metadata"]["namespace"], "pod": p["metadata"]["name"]},
                        }
                    )
    return out


def check_prometheus_discovers_and_scrapes():
    """A real Prometheus (Debian's) scrapes the sidecars and the operator over
    the pod network, at the ports the chart's PodMonitor and ServiceMonitor
    select. Debian builds Prometheus without kubernetes_sd_configs, so the
    test lists the targets from the API by the same rule (file_sd)."""
    if not shutil.which("prometheus"):
        raise AssertionError("prometheus is needed (apt-get install prometheus)")
    work = tempfile.mkdtemp(prefix="tollgate-prom-")
    with open(os.path.join(work, "targets.json"), "w") as f:
        json.dump(podmonitor_targets(), f)
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": "tollgate", "file_sd_configs": [{"files": [f"{work}/targets.json"]}]}],
    }
    with open(os.path.join(work, "prometheus.yml"), "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    port = free_port()
    prom = subprocess.Popen(
        [
            "prometheus",
            f"--config.file={work}/prometheus.yml",
            f"--storage.tsdb.path={work}/data",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "prometheus.log"), "w"),
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:

        def up_targets():
            if prom.poll() is not None:
                with open(os.path.join(work, "prometheus.log")) as f:
                    raise AssertionError(f"prometheus exited {prom.returncode}: {f.read()[-1500:]}")
            status, body = http("GET", f"{api}/query?query=" + urllib.parse.quote("up == 1"))
            assert status == 200, body
            res = json.loads(body)["data"]["result"]
            by_ns = {}
            for r in res:
                by_ns.setdefault(r["metric"]["namespace"], set()).add(r["metric"]["pod"])
            ok = len(by_ns.get(APP_NS, ())) >= 2 and len(by_ns.get(RELEASE_NS, ())) >= 2
            return by_ns if ok else None

        found = wait_until("Prometheus scrapes 2 sidecars and 2 operator replicas", up_targets, 60)
        q = urllib.parse.quote(f'sum(tollgate_requests_total{{namespace="{APP_NS}"}})')
        total = float(json.loads(http("GET", f"{api}/query?query={q}")[1])["data"]["result"][0]["value"][1])
        assert total >= 2, f"requests counted by the sidecars: {total}"
        q = urllib.parse.quote("max(tollgate_operator_leader)")
        leader = json.loads(http("GET", f"{api}/query?query={q}")[1])["data"]["result"][0]["value"][1]
        assert leader == "1", leader
        return {k: sorted(v) for k, v in found.items()}
    finally:
        prom.terminate()
        prom.wait()
        shutil.rmtree(work, ignore_errors=True)


def check_job_completes():
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "chat-once", "namespace": APP_NS},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": {"app": "chat"}},
                "spec": {
                    "restartPolicy": "Never",
                    "securityContext": RESTRICTED_POD,
                    "containers": [container_app("once", ["once"], probe=False)],
                },
            },
        },
    }
    apply(job)

    def complete():
        j = kjson("-n", APP_NS, "get", "job", "chat-once")
        conds = {c["type"]: c["status"] for c in j.get("status", {}).get("conditions", [])}
        assert conds.get("Failed") != "True", j["status"]
        return conds.get("Complete") == "True"

    wait_until("the Job completes while its sidecar runs", complete, 120)
    p = pods(APP_NS, "job-name=chat-once")[0]
    assert p["spec"]["initContainers"][0]["name"] == SIDECAR


def check_stream_survives_pod_delete():
    """Deleting a pod mid-stream: the app finishes its call, then the sidecar
    drains and exits 0 within the grace period."""
    p = state["app_pods"][1]
    name, ip = p["metadata"]["name"], p["status"]["podIP"]
    watch_out = tempfile.NamedTemporaryFile("w+", suffix=".json")
    watcher = subprocess.Popen(
        ["kubectl", "-n", APP_NS, "get", "pod", name, "-w", "-o", "json", "--output-watch-events"],
        stdout=watch_out,
    )
    req = urllib.request.Request(
        f"http://{ip}:8080/call/chat/completions",
        data=json.dumps(
            {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "count slowly"}]}
        ).encode(),
        headers={"content-type": "application/json", "x-mock-chunks": "20", "x-mock-chunk-interval-ms": "250"},
        method="POST",
    )
    t0 = time.monotonic()
    with urllib.request.urlopen(req, timeout=60) as resp:
        assert resp.status == 200
        first = resp.readline()
        assert first, "first stream line"
        kubectl("-n", APP_NS, "delete", "pod", name, "--wait=false")
        rest = resp.read().decode()
    body = first.decode() + rest
    assert "data: [DONE]" in body, body[-500:]
    assert body.count("data: {") >= 20, f"every chunk arrived ({body.count('data: {')})"

    def sidecar_exit():
        for ev in watch_events(watch_out.name):
            for c in ev.get("object", {}).get("status", {}).get("initContainerStatuses", []):
                term = c.get("state", {}).get("terminated")
                if c["name"] == SIDECAR and term:
                    return term
        return None

    try:
        term = wait_until("the sidecar terminated", sidecar_exit, 60)
    finally:
        watcher.terminate()
        watcher.wait()
    assert term["exitCode"] == 0, term
    figures["delete_to_sidecar_exit_s"] = round(time.monotonic() - t0, 1)
    wait_pods_ready(APP_NS, "e2e=chat", 2)
    state["app_pods"] = pods(APP_NS, "e2e=chat")


def watch_events(path):
    """The watch events `kubectl get -w -o json --output-watch-events` has
    written so far (concatenated JSON documents; a partial last one is left)."""
    with open(path) as f:
        text = f.read()
    dec, i, out = json.JSONDecoder(), 0, []
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return out
        try:
            obj, i = dec.raw_decode(text, i)
        except json.JSONDecodeError:
            return out
        out.append(obj)


def check_policy_edit_reaches_running_sidecar():
    """A budget lowered in the LlmPolicy is enforced by the running sidecars
    (kubelet ConfigMap projection + the proxy's reload): the app sees 429,
    with no pod restarted."""
    ps = wait_pods_ready(APP_NS, "e2e=chat", 2)
    before = {p["metadata"]["uid"]: p for p in ps}
    policy = state["policy"].replace(
        "- {name: daily, scope: policy, window: day, usd: 20}",
        "- {name: daily, scope: policy, window: day, usd: 20}\n      - {name: tiny, scope: policy, window: day, tokens: 1}",
    )
    assert policy != state["policy"]
    kubectl("-n", APP_NS, "apply", "-f", "-", input=policy)
    t0 = time.monotonic()
    for p in ps:
        ip = p["status"]["podIP"]

        def refused():
            status, body = http(
                "POST",
                f"http://{ip}:8080/call/chat/completions",
                {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one more"}]},
            )
            if status == 429:
                err = json.loads(body)["error"]
                assert err["type"], err
                return True
            assert status == 200, (status, body)
            return False

        wait_until("the new budget refuses with 429", refused, 150, interval=1)
    figures["policy_edit_to_enforced_s"] = round(time.monotonic() - t0, 1)
    for p in pods(APP_NS, "e2e=chat"):
        assert p["metadata"]["uid"] in before, "no pod was replaced"
        restarts = [c["restartCount"] for c in p["status"]["initContainerStatuses"] + p["status"]["containerStatuses"]]
        assert restarts == [0] * len(restarts), restarts


def check_startup_without_sidecar():
    ns = "plain"
    kubectl("create", "namespace", ns)
    t0 = time.monotonic()
    plain = app_deployment("plain", ns, 2, {})
    # No sidecar: the app calls the provider itself, with the key.
    plain["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "OPENAI_BASE_URL", "value": f"{state['mock'].url}/v1"},
        {"name": "OPENAI_API_KEY", "value": POLICY_KEY},
    ]
    apply(plain)
    kubectl("-n", ns, "rollout", "status", "deploy/plain", "--timeout=180s", timeout=200)
    figures["app_pod_ready_without_sidecar_s"] = round(time.monotonic() - t0, 1)
    for p in pods(ns, "e2e=plain"):
        assert not p["spec"].get("initContainers"), "not injected outside enabled namespaces"
        first = json.loads(http("GET", f"http://{p['status']['podIP']}:8080/first")[1])
        assert first["status"] == 200, first


def policy_condition(ns, name, type_):
    for c in kjson("-n", ns, "get", "llmp", name).get("status", {}).get("conditions", []):
        if c["type"] == type_:
            return c
    return None


def policy_events(ns, name):
    evs = kjson("-n", ns, "get", "events.events.k8s.io", "--field-selector", f"regarding.name={name}")["items"]
    return {(e.get("type"), e.get("reason")) for e in evs}


def check_bad_input_reaches_policy_status():
    """A Secret key that does not exist, a sidecar image that does not, and an
    app that the namespace's Pod Security level refuses: each ends in a
    condition and a Warning Event on the LlmPolicy."""
    ns = "team-b"
    kubectl("create", "namespace", ns)
    kubectl("label", "namespace", ns, "tollgate.dev/injection=enabled", "pod-security.kubernetes.io/enforce=restricted")
    kubectl("-n", ns, "create", "secret", "generic", "llm-keys", f"--from-literal=openai={POLICY_KEY}")
    policy = state["policy"].replace("key: openai}", "key: team-b-key}").replace(
        "  pii:", "  sidecar:\n    image: tollgate.test/no-such-image:1\n    imagePullPolicy: Never\n  pii:"
    )
    assert "team-b-key" in policy and "no-such-image" in policy
    kubectl("-n", ns, "apply", "-f", "-", input=policy)

    def secret_missing():
        c = policy_condition(ns, "chat", "Ready")
        return c and c["status"] == "False" and c["reason"] == "SecretMissing" and c
    c = wait_until("Ready=False SecretMissing", secret_missing, 60)
    assert 'Secret team-b/llm-keys has no key "team-b-key"' in c["message"], c["message"]
    wait_until("a SecretMissing Event", lambda: ("Warning", "SecretMissing") in policy_events(ns, "chat"), 30)
    kubectl("-n", ns, "patch", "secret", "llm-keys", "-p", json.dumps({"stringData": {"team-b-key": POLICY_KEY}}))
    wait_until(
        "Ready again once the key exists",
        lambda: (policy_condition(ns, "chat", "Ready") or {}).get("status") == "True",
        90,
        interval=1,
    )

    apply(app_deployment("chat", ns, 1, {"app": "chat"}))

    def pull_failed():
        c = policy_condition(ns, "chat", "SidecarsReady")
        return c and c["status"] == "False" and c["reason"] == "ImagePullFailed" and c
    c = wait_until("SidecarsReady=False ImagePullFailed", pull_failed, 120, interval=1)
    assert "no-such-image" in c["message"], c["message"]
    wait_until("an ImagePullFailed Event", lambda: ("Warning", "ImagePullFailed") in policy_events(ns, "chat"), 30)
    op = pods(RELEASE_NS, "app.kubernetes.io/component=operator")
    texts = [http("GET", f"http://{p['status']['podIP']}:{metrics_port(p)}/metrics")[1] for p in op]
    line = f'tollgate_operator_unhealthy_sidecars{{namespace="{ns}",policy="chat",reason="ImagePullFailed"}} 1'
    assert any(line in t for t in texts), "the leader exports the unhealthy sidecar"
    c = policy_condition(APP_NS, "chat", "SidecarsReady")
    assert c and c["status"] == "True", c

    # An app whose own spec breaks `restricted`: the API server refuses its
    # pods, so only the ReplicaSet's FailedCreate Event tells.
    loose = app_deployment("loose", ns, 1, {"app": "chat"})
    del loose["spec"]["template"]["spec"]["securityContext"]
    del loose["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    apply(loose)

    def refused():
        c = policy_condition(ns, "chat", "PodsAdmitted")
        return c and c["status"] == "False" and c["reason"] == "PodSecurityRejected" and c
    c = wait_until("PodsAdmitted=False PodSecurityRejected", refused, 90, interval=1)
    assert "ReplicaSet/loose-" in c["message"] and "violates PodSecurity" in c["message"], c["message"]
    wait_until("a PodSecurityRejected Event", lambda: ("Warning", "PodSecurityRejected") in policy_events(ns, "chat"), 30)
    assert (policy_condition(APP_NS, "chat", "PodsAdmitted") or {}).get("status") == "True"
    kubectl("delete", "namespace", ns, "--wait=false")


def metrics_port(op_pod):
    return next(x["containerPort"] for x in op_pod["spec"]["containers"][0]["ports"] if x["name"] == "http-metrics")


def check_upgrade_and_uninstall():
    run(
        "helm",
        "upgrade",
        "tollgate",
        os.path.join(ROOT, "charts/tollgate"),
        "-n",
        RELEASE_NS,
        "--set",
        "operator.logLevel=debug",
    )
    kubectl("-n", RELEASE_NS, "rollout", "status", "deploy/tollgate-operator", "--timeout=180s", timeout=200)
    run("helm", "uninstall", "tollgate", "-n", RELEASE_NS, "--wait", "--timeout", "120s", timeout=150)

    def gone():
        left = []
        for kind in ("mutatingwebhookconfigurations", "validatingwebhookconfigurations"):
            left += [i["metadata"]["name"] for i in kjson("get", kind)["items"] if "tollgate" in i["metadata"]["name"]]
        for kind in ("leases", "configmaps", "secrets", "services", "deployments", "serviceaccounts"):
            for i in kjson("-n", RELEASE_NS, "get", kind)["items"]:
                n = i["metadata"]["name"]
                if n not in ("kube-root-ca.crt", "default"):
                    left.append(f"{kind}/{n}")
        for kind in ("clusterroles", "clusterrolebindings"):
            left += [i["metadata"]["name"] for i in kjson("get", kind)["items"] if "tollgate" in i["metadata"]["name"]]
        return not left or (log(f"  left: {left}") and False)

    wait_until("nothing of the release left", gone, 90, interval=2)
    kubectl("get", "crd", "llmpolicies.tollgate.dev")  # crds.keep


CHECKS = [
    ("helm install; operator replicas Ready through real probes", check_images_and_install),
    ("an operator replica holds the Lease", check_leader),
    ("mock provider pod (restricted namespace)", check_mock_provider),
    ("policy + Secret + app Deployment (2 replicas) in a restricted, injected namespace", check_policy_and_app),
    ("native sidecar, first init container, restricted securityContext", check_native_sidecar_restricted),
    ("app starts after the sidecar is ready; first request answered", check_first_request_after_sidecar),
    ("provider sees the policy's key, never the app's; PII masked", check_key_and_pii),
    ("sidecar and operator /metrics scraped over the pod network; llmp injected", check_metrics_scrape),
    ("a real Prometheus scrapes the sidecars and the operator over the pod network", check_prometheus_discovers_and_scrapes),
    ("a Job completes although its sidecar runs", check_job_completes),
    ("pod deleted mid-stream: stream finishes, sidecar exits 0", check_stream_survives_pod_delete),
    ("LlmPolicy edit reaches running sidecars without restart (429)", check_policy_edit_reaches_running_sidecar),
    ("pod start-up without the sidecar", check_startup_without_sidecar),
    ("missing Secret key, missing image, Pod Security refusal: conditions and Events on the policy", check_bad_input_reaches_policy_status),
    ("helm upgrade, helm uninstall: no orphans, CRD kept", check_upgrade_and_uninstall),
]


def main():
    passed = failed = 0
    for name, fn in CHECKS:
        t0 = time.monotonic()
        try:
            fn()
            passed += 1
            log(f"ok   - {name} ({time.monotonic() - t0:.1f}s)")
        except Exception as e:  # noqa: BLE001
            failed += 1
            log(f"FAIL - {name}: {e}")
            traceback.print_exc()
            break  # later checks build on this one
    log("figures: " + json.dumps(figures))
    report = os.environ.get("TOLLGATE_E2E_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump(figures, f, indent=2)
    skipped = len(CHECKS) - passed - failed
    log(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
