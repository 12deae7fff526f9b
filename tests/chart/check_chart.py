#!/usr/bin/env python3
"""Static tests of charts/tollgate: lint, render every ci/*-values.yaml,
and assert on the rendered objects; the schema and the chart's own checks
refuse bad values with clear messages; values are documented; the CRD copy
is current. Needs `helm` on PATH (or $HELM), python3-yaml and openssl.
With $HELM_REFERENCE (another helm, e.g. Helm 4 when $HELM is Helm 3), also
checks that both render every variant to the same objects.

    tests/chart/check_chart.py            # prints one line per check, then "N passed, N failed"
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import tomllib
import traceback

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CHART = os.path.join(ROOT, "charts", "tollgate")
HELM = os.environ.get("HELM", "helm")
HELM_REFERENCE = os.environ.get("HELM_REFERENCE")
NS = "tollgate-system"
MONITORING_APIS = [
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PodMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
]

results = []


def helm_major(binary):
    v = subprocess.run([binary, "version", "--template", "{{.Version}}"], capture_output=True, text=True).stdout
    m = re.match(r"v(\d+)\.", v)
    assert m, f"{binary} version: {v!r}"
    return int(m.group(1))


HELM_MAJOR = helm_major(HELM)
print(f"# {HELM} (Helm {HELM_MAJOR})")


def check(fn):
    """Runs one check; a failed assert or error counts as a failure."""
    name = fn.__name__
    try:
        fn()
        results.append((name, True))
        print(f"ok   - {name}")
    except Exception as e:  # noqa: BLE001 - report every kind of failure
        results.append((name, False))
        print(f"FAIL - {name}: {e}")
        if os.environ.get("VERBOSE"):
            traceback.print_exc()
    return fn


def helm(*args, ok=True, binary=None):
    p = subprocess.run([binary or HELM, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed:\n{p.stderr}")
    return p


def render(*args, apis=(), binary=None):
    """helm template → list of objects."""
    cmd = ["template", "t", CHART, "-n", NS, *args]
    for a in apis:
        cmd += ["--api-versions", a]
    out = helm(*cmd, binary=binary).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def ci(name):
    return ["-f", os.path.join(CHART, "ci", f"{name}-values.yaml")]


def find(objs, kind, name=None):
    got = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    return got


def one(objs, kind, name=None):
    got = find(objs, kind, name)
    assert len(got) == 1, f"expected one {kind} {name or ''}, got {len(got)}"
    return got[0]


def container(objs):
    return one(objs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def refused(args, message):
    p = helm("template", "t", CHART, "-n", NS, *args, ok=False)
    assert p.returncode != 0, f"{args} was accepted"
    assert message in p.stderr, f"{args}: expected {message!r} in:\n{p.stderr}"


# === the CRD copy ===

@check
def crd_copy_is_identical_to_crds_dir():
    a = open(os.path.join(ROOT, "crds", "llmpolicy.yaml"), "rb").read()
    b = open(os.path.join(CHART, "files", "crds", "llmpolicy.yaml"), "rb").read()
    assert a == b, ("charts/tollgate/files/crds/llmpolicy.yaml differs from crds/llmpolicy.yaml; "
                    "copy it: cp crds/llmpolicy.yaml charts/tollgate/files/crds/")


@check
def rendered_crd_is_the_generated_one_plus_labels_and_keep():
    want = yaml.safe_load(open(os.path.join(ROOT, "crds", "llmpolicy.yaml")))
    got = one(render(), "CustomResourceDefinition")
    assert got["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert got["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    del got["metadata"]["annotations"], got["metadata"]["labels"]
    assert got == want, "the rendered CRD differs from crds/llmpolicy.yaml beyond metadata"
    crd = one(render("--set", "crds.keep=false"), "CustomResourceDefinition")
    assert "annotations" not in crd["metadata"]
    assert not find(render("--set", "crds.enabled=false"), "CustomResourceDefinition")


# === versions and license ===

def workspace_version():
    """`[workspace.package] version` of the root Cargo.toml (what every crate and image is tagged with)."""
    return cargo_toml("Cargo.toml")["workspace"]["package"]["version"]


def cargo_toml(path):
    with open(os.path.join(ROOT, path), "rb") as f:
        return tomllib.load(f)


@check
def app_version_is_the_workspace_version_and_the_default_image_tag():
    version = workspace_version()
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    assert chart["appVersion"] == version, f"Chart.yaml appVersion {chart['appVersion']} != workspace version {version}"
    c = container(render())
    assert c["image"] == f"ghcr.io/tollgate-dev/tollgate-operator:{version}", c["image"]
    assert f"--proxy-image=ghcr.io/tollgate-dev/tollgate-proxy:{version}" in c["args"], c["args"]


@check
def license_is_apache_2_everywhere():
    text = open(os.path.join(ROOT, "LICENSE")).read()
    assert "Apache License\n                           Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text
    workspace = cargo_toml("Cargo.toml")["workspace"]
    assert workspace["package"]["license"] == "Apache-2.0", workspace["package"]
    for crate in workspace["members"]:
        package = cargo_toml(os.path.join(crate, "Cargo.toml"))["package"]
        assert package.get("license") == {"workspace": True}, f"{crate}/Cargo.toml: license.workspace = true"
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    assert chart["annotations"]["artifacthub.io/license"] == "Apache-2.0"
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "## License" in readme and "Apache License 2.0" in readme.split("## License", 1)[1]


@check
def kube_version_is_the_oldest_tested_and_built_against():
    """Chart.yaml's minimum, the operator's k8s-openapi feature, the oldest
    API server the e2e runs on and the README all name one Kubernetes."""
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    m = re.fullmatch(r">=1\.(\d+)\.0-0", chart["kubeVersion"])
    assert m, chart["kubeVersion"]
    minor = m.group(1)
    features = cargo_toml("Cargo.toml")["workspace"]["dependencies"]["k8s-openapi"]["features"]
    assert f"v1_{minor}" in features, f"k8s-openapi features {features}, Chart.yaml 1.{minor}"
    env = open(os.path.join(ROOT, "tests", "k8s", "versions.env")).read()
    oldest = re.search(r'TOLLGATE_K8S_OLDEST_VERSION:=v1\.(\d+)\.\d+', env)
    assert oldest and oldest.group(1) == minor, f"versions.env oldest {oldest and oldest.group(0)}, Chart.yaml 1.{minor}"
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert f"Supported Kubernetes versions: 1.{minor} and newer" in readme


# === image references ===

DIGEST_OP = "sha256:" + "a" * 64
DIGEST_PROXY = "sha256:" + "b" * 64


def images(*args):
    """(operator image, --proxy-image) as rendered."""
    c = container(render(*args))
    proxy = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--proxy-image=")]
    assert len(proxy) == 1, c["args"]
    return c["image"], proxy[0]


@check
def artifact_hub_annotations_match_the_chart():
    chart = yaml.safe_load(open(os.path.join(CHART, "Chart.yaml")))
    a = chart["annotations"]
    op, proxy = images()
    listed = {i["name"]: i["image"] for i in yaml.safe_load(a["artifacthub.io/images"])}
    assert listed == {"tollgate-operator": op, "tollgate-proxy": proxy}, (listed, op, proxy)
    crd = yaml.safe_load(open(os.path.join(ROOT, "crds", "llmpolicy.yaml")))
    [entry] = yaml.safe_load(a["artifacthub.io/crds"])
    served = [v["name"] for v in crd["spec"]["versions"] if v.get("served")]
    assert (entry["name"], entry["kind"], entry["version"]) == \
        (crd["metadata"]["name"], crd["spec"]["names"]["kind"], served[-1]), entry
    # Each example is a policy the operator renders (its own validation).
    binary = os.environ.get("TOLLGATE_OPERATOR_BIN", os.path.join(ROOT, "target", "debug", "tollgate-operator"))
    for example in yaml.safe_load(a["artifacthub.io/crdsExamples"]):
        assert example["kind"] == "LlmPolicy", example
        with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
            yaml.safe_dump(example, f)
            f.flush()
            r = subprocess.run([binary, "render", "-f", f.name, "-n", "default"], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert a["artifacthub.io/operator"] == "true"


@check
def mirror_variant_replaces_the_registry_and_pins_digests():
    values = yaml.safe_load(open(os.path.join(CHART, "ci", "mirror-values.yaml")))
    op, proxy = images(*ci("mirror"))
    assert op == ("registry.example.test:5000/ghcr/tollgate-dev/tollgate-operator@"
                  + values["operator"]["image"]["digest"]), op
    assert proxy == ("registry.example.test:5000/ghcr/tollgate-dev/tollgate-proxy@"
                     + values["sidecar"]["image"]["digest"]), proxy
    pod = one(render(*ci("mirror")), "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "mirror-pull"}], pod.get("imagePullSecrets")


@check
def image_registry_replaces_only_a_registry_component():
    v = workspace_version()

    def expect(registry, repo, want):
        got = images("--set", f"global.imageRegistry={registry}", "--set", f"sidecar.image.repository={repo}")[1]
        assert got == f"{want}:{v}", f"{registry} + {repo}: {got}"
    # The first component is a registry when it has a '.' or ':' or is localhost ...
    expect("mirror.test", "ghcr.io/org/proxy", "mirror.test/org/proxy")
    expect("mirror.test", "localhost:5000/proxy", "mirror.test/proxy")
    expect("mirror.test", "localhost/org/proxy", "mirror.test/org/proxy")
    # ... otherwise (Docker Hub) the registry is put in front.
    expect("mirror.test:5000", "org/proxy", "mirror.test:5000/org/proxy")
    expect("mirror.test", "proxy", "mirror.test/proxy")
    expect("mirror.test/", "ghcr.io/org/proxy", "mirror.test/org/proxy")
    # Both images, and a parent chart's global (other keys in it are allowed).
    op, proxy = images("--set", "global.imageRegistry=mirror.test", "--set", "global.storageClass=x")
    assert op == f"mirror.test/tollgate-dev/tollgate-operator:{v}", op
    assert proxy == f"mirror.test/tollgate-dev/tollgate-proxy:{v}", proxy


@check
def digest_pins_the_image_with_or_without_a_tag():
    op, proxy = images("--set", f"operator.image.digest={DIGEST_OP}", "--set", f"sidecar.image.digest={DIGEST_PROXY}")
    assert op == f"ghcr.io/tollgate-dev/tollgate-operator@{DIGEST_OP}", op
    assert proxy == f"ghcr.io/tollgate-dev/tollgate-proxy@{DIGEST_PROXY}", proxy
    op, proxy = images("--set", f"operator.image.digest={DIGEST_OP}", "--set", "operator.image.tag=1.2.3",
                       "--set", "sidecar.image.tag=1.2.3", "--set", f"sidecar.image.digest={DIGEST_PROXY}")
    assert op == f"ghcr.io/tollgate-dev/tollgate-operator:1.2.3@{DIGEST_OP}", op
    assert proxy == f"ghcr.io/tollgate-dev/tollgate-proxy:1.2.3@{DIGEST_PROXY}", proxy
    op, proxy = images("--set", "sidecar.image.tag=dev")
    assert proxy == "ghcr.io/tollgate-dev/tollgate-proxy:dev" and op.endswith(f":{workspace_version()}"), (op, proxy)


# === lint and the ci variants ===

@check
def lint_strict_default_and_every_ci_file():
    files = sorted(f for f in os.listdir(os.path.join(CHART, "ci")) if f.endswith("-values.yaml"))
    assert {"minimal-values.yaml", "ha-values.yaml", "cert-manager-values.yaml",
            "monitoring-values.yaml", "redis-budgets-values.yaml", "mirror-values.yaml",
            "tracing-values.yaml", "user-secret-values.yaml", "shared-store-values.yaml"} <= set(files), files
    helm("lint", "--strict", CHART)
    for f in files:
        helm("lint", "--strict", CHART, "-f", os.path.join(CHART, "ci", f))
        # Every variant renders, with and without the optional APIs.
        render("-f", os.path.join(CHART, "ci", f))
        render("-f", os.path.join(CHART, "ci", f), apis=MONITORING_APIS + ["cert-manager.io/v1"])


@check
def default_install_is_ha_and_locked_down():
    objs = render()
    d = one(objs, "Deployment")
    assert d["spec"]["replicas"] == 2
    assert d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pod = d["spec"]["template"]["spec"]
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = pod["containers"][0]
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["POD_NAMESPACE"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
    assert "--lease-name=t-tollgate-operator" in c["args"]
    assert "--proxy-image=ghcr.io/tollgate-dev/tollgate-proxy:0.1.0" in c["args"]
    defaults = json.loads(next(a for a in c["args"] if a.startswith("--sidecar-defaults=")).split("=", 1)[1])
    assert defaults == {"resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                      "limits": {"cpu": "1", "memory": "256Mi"}},
                 "port": 15800, "adminPort": 15801, "logLevel": "info", "logFormat": "json",
                 "accessLog": {"enabled": True, "sample": 1}, "perModelHistograms": True}, defaults
    assert env["TOLLGATE_LOG_FORMAT"]["value"] == "json", "the operator logs JSON by default"
    assert c["image"] == "ghcr.io/tollgate-dev/tollgate-operator:0.1.0"
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"] == d["spec"]["selector"]
    svc = one(objs, "Service")
    assert svc["spec"]["selector"] == d["spec"]["selector"]["matchLabels"]
    assert {p["name"]: p["port"] for p in svc["spec"]["ports"]} == {"https-webhook": 443, "http-metrics": 8080}
    for o in objs:
        if o["kind"] not in ("CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding",
                             "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            assert o["metadata"]["namespace"] == NS, f"{o['kind']} {o['metadata']['name']} not in {NS}"


def certificate_rbac(objs):
    """(rules of the webhook certificate's Role, or None; the ClusterRole's
    rules on webhook configurations)."""
    role = find(objs, "Role", "t-tollgate-webhook-certs")
    rules = one(objs, "ClusterRole", "t-tollgate")["rules"]
    return (role[0]["rules"] if role else None,
            [r for r in rules if r["apiGroups"] == ["admissionregistration.k8s.io"]])


@check
def rbac_is_least_privilege():
    objs = render()
    rules = one(objs, "ClusterRole", "t-tollgate")["rules"]
    flat = {(g, r, v) for rule in rules for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
    assert not any("*" in x for t in flat for x in t), "no wildcards"
    assert not any(r == "secrets" for _, r, _ in flat), "no cluster-wide Secret access"
    # Secret reads: a ClusterRole the chart binds nowhere; the operator may
    # bind that one role only (per namespace with policies).
    secrets = one(objs, "ClusterRole", "t-tollgate-secrets")["rules"]
    assert secrets == [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}], secrets
    assert not [b for b in find(objs, "ClusterRoleBinding") if b["roleRef"]["name"] == "t-tollgate-secrets"]
    bind = [r for r in rules if "bind" in r["verbs"] or "escalate" in r["verbs"]]
    assert bind == [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"],
                     "resourceNames": ["t-tollgate-secrets"], "verbs": ["bind"]}], bind
    args = container(objs)["args"]
    assert "--secrets-role=t-tollgate-secrets" in args and "--service-account=t-tollgate" in args, args
    role = one(objs, "Role", "t-tollgate-leader-election")
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                             "resourceNames": ["t-tollgate-operator"], "verbs": ["get", "update", "watch"]}], role["rules"]
    assert one(objs, "Lease")["metadata"]["name"] == "t-tollgate-operator"
    # The operator-made certificate (the default): its one Secret by name
    # (create cannot be limited to a name), and the caBundle of the chart's
    # own two configurations only.
    assert certificate_rbac(objs) == (
        [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["t-tollgate-webhook-certs"],
          "verbs": ["get", "watch", "update"]},
         {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]}],
        [{"apiGroups": ["admissionregistration.k8s.io"],
          "resources": ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
          "resourceNames": ["t-tollgate"], "verbs": ["get", "patch"]}]), certificate_rbac(objs)
    # A user's Secret: read and watched only; the caBundle from the values
    # (user-secret variant) needs no access to the configurations.
    assert certificate_rbac(render(*ci("user-secret"))) == (
        [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["platform-webhook-tls"],
          "verbs": ["get", "watch"]}], [])
    _, wh = certificate_rbac(render(*ci("user-secret"), "--set", "webhook.tls.caBundle="))
    assert wh and wh[0]["resourceNames"] == ["t-tollgate"] and wh[0]["verbs"] == ["get", "patch"], wh
    # Mounted certificates (cert-manager, the helm generator): neither.
    for args in (["--set", "webhook.tls.generator=helm"], ["--set", "certManager.enabled=true"]):
        assert certificate_rbac(render(*args)) == (None, []), args
    sa = one(objs, "ServiceAccount")["metadata"]["name"]
    for b in find(objs, "ClusterRoleBinding") + find(objs, "RoleBinding"):
        assert b["subjects"] == [{"kind": "ServiceAccount", "name": sa, "namespace": NS}]


def openssl(*args, stdin=None):
    p = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p.stdout


def b64(s):
    import base64
    return base64.b64decode(s).decode()


@check
def webhooks_select_enabled_namespaces_and_trust_the_generated_ca():
    objs = render("--set", "webhook.tls.generator=helm")
    secret = one(objs, "Secret", "t-tollgate-webhook-tls")
    ca, crt = b64(secret["data"]["ca.crt"]), b64(secret["data"]["tls.crt"])
    with tempfile.TemporaryDirectory() as d:
        open(f"{d}/ca", "w").write(ca)
        open(f"{d}/crt", "w").write(crt)
        openssl("verify", "-CAfile", f"{d}/ca", f"{d}/crt")
        sans = openssl("x509", "-in", f"{d}/crt", "-noout", "-ext", "subjectAltName")
    assert "DNS:t-tollgate-operator.tollgate-system.svc" in sans, sans
    mwc = one(objs, "MutatingWebhookConfiguration")
    vwc = one(objs, "ValidatingWebhookConfiguration")
    hooks = mwc["webhooks"] + vwc["webhooks"]
    for h in hooks:
        assert b64(h["clientConfig"]["caBundle"]) == ca, f"{h['name']}: caBundle is not the Secret's CA"
        assert h["clientConfig"]["service"] == {"name": "t-tollgate-operator", "namespace": NS,
                                                "path": h["clientConfig"]["service"]["path"], "port": 443}
        excl = [e for e in h["namespaceSelector"]["matchExpressions"] if e["key"] == "kubernetes.io/metadata.name"]
        assert excl == [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": [NS, "kube-system"]}], excl
        assert h["sideEffects"] == "None" and h["admissionReviewVersions"] == ["v1"]
        assert 1 <= h["timeoutSeconds"] <= 30
    ns_hook, pod_hook = mwc["webhooks"]
    assert ns_hook["namespaceSelector"]["matchLabels"] == {"tollgate.dev/injection": "enabled"}
    assert pod_hook["objectSelector"]["matchLabels"] == {"tollgate.dev/inject": "true"}
    assert {"key": "tollgate.dev/injection", "operator": "NotIn", "values": ["enabled"]} in pod_hook["namespaceSelector"]["matchExpressions"]
    assert [h["failurePolicy"] for h in hooks] == ["Fail", "Fail", "Fail"]
    args = container(objs)["args"]
    assert "--tls-cert-file=/etc/tollgate/webhook-tls/tls.crt" in args and not [a for a in args if "webhook-config" in a]
    objs = render("--set", "webhook.mutating.failurePolicy=Ignore", "--set", "webhook.excludedNamespaces={monitoring}")
    mwc = one(objs, "MutatingWebhookConfiguration")
    assert [h["failurePolicy"] for h in mwc["webhooks"]] == ["Ignore", "Ignore"]
    assert one(objs, "ValidatingWebhookConfiguration")["webhooks"][0]["failurePolicy"] == "Fail"
    excl = mwc["webhooks"][0]["namespaceSelector"]["matchExpressions"][0]
    assert excl["values"] == [NS, "kube-system", "monitoring"], excl


@check
def development_url_goes_into_client_config_and_certificate():
    objs = render("--set", "webhook.url=https://127.0.0.1:9443")
    for h in one(objs, "MutatingWebhookConfiguration")["webhooks"]:
        assert h["clientConfig"]["url"] == "https://127.0.0.1:9443/mutate" and "service" not in h["clientConfig"]
    assert "--tls-san=127.0.0.1" in container(objs)["args"]
    objs = render("--set", "webhook.url=https://127.0.0.1:9443", "--set", "webhook.tls.generator=helm")
    crt = b64(one(objs, "Secret")["data"]["tls.crt"])
    sans = openssl("x509", "-noout", "-ext", "subjectAltName", stdin=crt)
    assert "IP Address:127.0.0.1" in sans, sans
    args = container(render(*ci("minimal"), "--set", "webhook.url=https://op.example.test:9443"))["args"]
    assert "--tls-san=op.example.test" in args, args


def tls_args(objs):
    return [a for a in container(objs)["args"] if a.startswith(("--tls-", "--mutating-", "--validating-"))]


@check
def the_operator_makes_the_certificate_by_default_for_any_replica_count():
    for args, replicas in (([], 2), (ci("ha"), 3), (ci("minimal"), 1)):
        objs = render(*args)
        assert one(objs, "Deployment")["spec"]["replicas"] == replicas
        assert tls_args(objs) == [
            "--tls-secret=t-tollgate-webhook-certs", "--tls-generate",
            "--tls-ca-validity=87600h", "--tls-cert-validity=8760h",
            "--tls-san=t-tollgate-operator", "--tls-san=t-tollgate-operator.tollgate-system",
            "--tls-san=t-tollgate-operator.tollgate-system.svc",
            "--tls-san=t-tollgate-operator.tollgate-system.svc.cluster.local",
            "--mutating-webhook-config=t-tollgate", "--validating-webhook-config=t-tollgate"], tls_args(objs)
        # Nothing generated in the manifests: no Secret, no caBundle, no mount.
        assert not find(objs, "Secret"), args
        pod = one(objs, "Deployment")["spec"]["template"]["spec"]
        assert "volumes" not in pod and "volumeMounts" not in pod["containers"][0], args
        for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
            w = one(objs, kind)
            assert all("caBundle" not in h["clientConfig"] for h in w["webhooks"]), kind
            assert "annotations" not in w["metadata"], kind
    a = tls_args(render("--set", "webhook.tls.operator.certValidity=2160h",
                        "--set", "webhook.tls.operator.caValidity=43800h"))
    assert "--tls-cert-validity=2160h" in a and "--tls-ca-validity=43800h" in a, a
    for h in one(render(*ci("minimal")), "MutatingWebhookConfiguration")["webhooks"]:
        assert h["failurePolicy"] == "Ignore"


@check
def helm_template_renders_the_same_bytes_every_time():
    """GitOps tools render with `helm template` (Argo CD) or compare
    renders: every variant but the `helm` generator renders identically."""
    variants = [[]] + [["-f", os.path.join(CHART, "ci", f)]
                       for f in sorted(os.listdir(os.path.join(CHART, "ci"))) if f.endswith("-values.yaml")]
    for args in variants:
        for apis in ((), MONITORING_APIS + ["cert-manager.io/v1"]):
            cmd = ["template", "t", CHART, "-n", NS, *args] + [x for a in apis for x in ("--api-versions", a)]
            first, second = helm(*cmd).stdout, helm(*cmd).stdout
            assert first == second, f"{args or 'the defaults'}: two renders differ"
            assert "BEGIN RSA PRIVATE KEY" not in first and "BEGIN PRIVATE KEY" not in first, args
    # The check would catch a generated certificate: the helm generator's
    # differs on every render (documented as not GitOps-safe).
    gen = ["template", "t", CHART, "-n", NS, "--set", "webhook.tls.generator=helm"]
    assert helm(*gen).stdout != helm(*gen).stdout


@check
def a_users_secret_is_served_and_its_ca_rendered_or_injected():
    objs = render(*ci("user-secret"))
    values = yaml.safe_load(open(os.path.join(CHART, "ci", "user-secret-values.yaml")))
    pem = values["webhook"]["tls"]["caBundle"]
    assert tls_args(objs) == ["--tls-secret=platform-webhook-tls"], tls_args(objs)
    assert not find(objs, "Secret")
    hooks = one(objs, "MutatingWebhookConfiguration")["webhooks"] + one(objs, "ValidatingWebhookConfiguration")["webhooks"]
    for h in hooks:
        assert b64(h["clientConfig"]["caBundle"]) == pem, h["name"]
    openssl("x509", "-noout", "-subject", stdin=pem)
    # Without caBundle the operator copies the Secret's ca.crt.
    objs = render(*ci("user-secret"), "--set", "webhook.tls.caBundle=")
    assert tls_args(objs) == ["--tls-secret=platform-webhook-tls", "--mutating-webhook-config=t-tollgate",
                              "--validating-webhook-config=t-tollgate"], tls_args(objs)
    for h in one(objs, "MutatingWebhookConfiguration")["webhooks"]:
        assert "caBundle" not in h["clientConfig"]


@check
def ha_variant():
    objs = render(*ci("ha"))
    d = one(objs, "Deployment")
    assert d["spec"]["replicas"] == 3
    assert one(objs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2
    pod = d["spec"]["template"]["spec"]
    assert "requiredDuringSchedulingIgnoredDuringExecution" in pod["affinity"]["podAntiAffinity"]
    assert pod["topologySpreadConstraints"][0]["topologyKey"] == "topology.kubernetes.io/zone"
    assert pod["priorityClassName"] == "system-cluster-critical"


@check
def cert_manager_variant():
    objs = render(*ci("cert-manager"), apis=["cert-manager.io/v1"])
    cert = one(objs, "Certificate")
    assert cert["spec"]["secretName"] == "t-tollgate-webhook-tls"
    assert cert["spec"]["issuerRef"] == {"name": "internal-ca", "kind": "ClusterIssuer"}
    assert "t-tollgate-operator.tollgate-system.svc" in cert["spec"]["dnsNames"]
    assert not find(objs, "Issuer") and not find(objs, "Secret")
    for kind in ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"):
        w = one(objs, kind)
        assert w["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == f"{NS}/t-tollgate-webhook"
        assert all("caBundle" not in h["clientConfig"] for h in w["webhooks"])
    c = container(objs)
    assert tls_args(objs) == ["--tls-cert-file=/etc/tollgate/webhook-tls/tls.crt",
                              "--tls-key-file=/etc/tollgate/webhook-tls/tls.key"], tls_args(objs)
    vol = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    assert vol["secret"]["secretName"] == "t-tollgate-webhook-tls"
    # Without an issuerRef the chart makes a self-signed CA and an Issuer for it.
    objs = render("--set", "certManager.enabled=true")
    assert {i["metadata"]["name"] for i in find(objs, "Issuer")} == {"t-tollgate-selfsigned", "t-tollgate-ca"}
    assert one(objs, "Certificate", "t-tollgate-webhook")["spec"]["issuerRef"] == {"name": "t-tollgate-ca", "kind": "Issuer"}


@check
def monitoring_variant_needs_the_api():
    objs = render(*ci("monitoring"), apis=MONITORING_APIS)
    sm = one(objs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"][0]["port"] == "http-metrics"
    assert sm["spec"]["selector"]["matchLabels"] == one(objs, "Service")["spec"]["selector"]
    pm = one(objs, "PodMonitor")
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] == "tollgate-admin"
    assert pm["spec"]["namespaceSelector"] == {"any": True}
    rule = one(objs, "PrometheusRule")
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]
    names = {a["alert"] for a in alerts}
    assert "TollgatePromptGuardBlocksSpiking" not in names and "TollgatePiiBlocksSpiking" in names
    for a in alerts:
        assert a["labels"]["team"] == "platform" and a["labels"]["severity"] in ("warning", "critical"), a
        assert {"summary", "description", "runbook_url"} <= set(a["annotations"]), a["alert"]
    cm = one(objs, "ConfigMap", "t-tollgate-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Tollgate"
    dash = json.loads(cm["data"]["tollgate.json"])
    assert dash["uid"] == "tollgate" and dash["panels"]
    # Without the prometheus-operator API nothing is rendered, and NOTES says so.
    objs = render(*ci("monitoring"))
    for kind in ("ServiceMonitor", "PodMonitor", "PrometheusRule"):
        assert not find(objs, kind), kind
    # Helm 3's `install --dry-run=client` still needs a cluster; tests/chart/e2e.py
    # checks NOTES with both against the real API server.
    if HELM_MAJOR >= 4:
        p = helm("install", "t", CHART, "-n", NS, "--dry-run=client", *ci("monitoring"))
        assert "WARNING: ServiceMonitor was requested" in p.stdout, p.stdout[-2000:]


@check
def redis_budgets_variant_tunes_the_budget_alerts():
    objs = render(*ci("redis-budgets"), apis=MONITORING_APIS)
    rules = {r.get("alert"): r for g in one(objs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]}
    assert "tollgate:budget_usage_ratio:max >= 0.7 < 1" in rules["TollgateBudgetNearlySpent"]["expr"]
    assert rules["TollgateBudgetStoreErrors"]["labels"] == {"severity": "warning", "team": "finops"}
    assert "TollgateBudgetSettlementsLost" in rules
    assert one(objs, "PodMonitor")


# === bad values are refused, with messages that say what is wrong ===

@check
def schema_refuses_typos_and_wrong_types():
    refused(["--set", "operator.replicas=3"], "additional properties 'replicas' not allowed")
    refused(["--set", "operator.replicaCount=two"], "/operator/replicaCount")
    refused(["--set", "webhok.url=x"], "additional properties 'webhok' not allowed")
    refused(["--set", "webhook.mutating.failurePolicy=Never"], "value must be one of 'Fail', 'Ignore'")
    refused(["--set", "webhook.mutating.timeoutSeconds=60"], "/webhook/mutating/timeoutSeconds")
    refused(["--set", "webhook.url=http://127.0.0.1:9443"], "/webhook/url")
    refused(["--set", "webhook.tls.generator=openssl"], "/webhook/tls/generator")
    refused(["--set", "webhook.tls.operator.certValidity=1y"], "/webhook/tls/operator/certValidity")
    refused(["--set", "webhook.tls.operator.caValidity=1.5h"], "/webhook/tls/operator/caValidity")
    refused(["--set", "webhook.tls.caBundle=not a certificate"], "/webhook/tls/caBundle")
    refused(["--set", "webhook.tls.secretName=Platform_TLS"], "/webhook/tls/secretName")
    refused(["--set", "crds.keep=maybe"], "/crds/keep")
    refused(["--set", "monitoring.prometheusRule.thresholds.upstreamErrorRatio=5"], "upstreamErrorRatio")
    refused(["--set", "monitoring.prometheusRule.thresholds.webhookLatencyP99Seconds=0.5"], "webhookLatencyP99Seconds")
    refused(["--set", "monitoring.serviceMonitor.interval=30 seconds"], "/monitoring/serviceMonitor/interval")
    refused(["--set", "certManager.issuerRef.kind=Secret"], "/certManager/issuerRef/kind")
    refused(["--set", "sidecar.image.tag=1", "--set", "sidecar.image.pullSecret=x"], "pullSecret")
    refused(["--set", "sidecar.loglevel=debug"], "additional properties 'loglevel' not allowed")
    refused(["--set", "sidecar.logFormat=xml"], "/sidecar/logFormat")
    refused(["--set", "operator.logFormat=xml"], "/operator/logFormat")
    refused(["--set-json", 'sidecar.accessLog={"sample":2}'], "/sidecar/accessLog/sample")
    refused(["--set", "sidecar.resources.request.cpu=1"], "additional properties 'request' not allowed")
    refused(["--set", "operator.resources.limit.memory=1Gi"], "additional properties 'limit' not allowed")
    refused(["--set", "sidecar.resources.limits.memory=true"], "/sidecar/resources/limits/memory")
    refused(["--set", "operator.image.digest=sha256:abc"], "/operator/image/digest")
    refused(["--set", "sidecar.image.digest=" + "a" * 64], "/sidecar/image/digest")
    refused(["--set", "sidecar.image.digest=sha256:" + "A" * 64], "/sidecar/image/digest")
    refused(["--set", "global.imageRegistry=https://mirror.test"], "/global/imageRegistry")


@check
def numeric_quantities_are_accepted_and_passed_as_strings():
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        f.write("operator:\n  resources:\n    limits: {cpu: 2}\n"
                "sidecar:\n  resources:\n    requests: {cpu: 0.5, memory: 64Mi}\n    limits: {cpu: 1}\n")
        f.flush()
        c = container(render("-f", f.name))
    assert c["resources"]["limits"]["cpu"] == 2, c["resources"]
    defaults = json.loads(next(a for a in c["args"] if a.startswith("--sidecar-defaults=")).split("=", 1)[1])
    assert defaults["resources"] == {"requests": {"cpu": "0.5", "memory": "64Mi"},
                                     "limits": {"cpu": "1", "memory": "256Mi"}}, defaults


@check
def the_access_log_setting_reaches_the_sidecar_defaults():
    def defaults(*args):
        c = container(render(*args))
        return json.loads(next(a for a in c["args"] if a.startswith("--sidecar-defaults=")).split("=", 1)[1])
    assert defaults()["accessLog"] == {"enabled": True, "sample": 1}, "every request by default"
    assert defaults("--set-json", 'sidecar.accessLog={"sample":0.25}')["accessLog"] == {"enabled": True, "sample": 0.25}
    assert defaults("--set", "sidecar.perModelHistograms=false")["perModelHistograms"] is False


def tracing_settings(*args):
    """(operator env OTEL_* → value, sidecar trace flags) as rendered."""
    c = container(render(*args))
    env = {e["name"]: e.get("value") for e in c["env"] if e["name"].startswith("OTEL_")}
    flags = [a for a in c["args"] if a.startswith(("--sidecar-otlp-", "--sidecar-trace-"))]
    return env, flags


@check
def traces_are_off_by_default_and_on_with_an_endpoint():
    assert tracing_settings() == ({}, []), "no OTEL_* variables and no sidecar trace flags by default"
    env, flags = tracing_settings(*ci("tracing"))
    assert env == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector.observability:4318",
                   "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                   "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                   "OTEL_TRACES_SAMPLER_ARG": "0.1"}, env
    assert flags == ["--sidecar-otlp-endpoint=http://otel-collector.observability:4318",
                     "--sidecar-otlp-protocol=http/protobuf",
                     "--sidecar-trace-sample-ratio=0.1"], flags
    # gRPC and every trace by default; the pod's name and namespace (which
    # the operator makes resource attributes) come from the downward API.
    env, flags = tracing_settings("--set", "tracing.otlp.endpoint=http://c.test:4317")
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "grpc" and env["OTEL_TRACES_SAMPLER_ARG"] == "1", env
    assert "--sidecar-otlp-protocol=grpc" in flags and "--sidecar-trace-sample-ratio=1" in flags, flags
    c = container(render("--set", "tracing.otlp.endpoint=http://c.test:4317"))
    names = [e["name"] for e in c["env"]]
    assert {"POD_NAME", "POD_NAMESPACE"} <= set(names), names
    # The operator only: sidecars keep no trace settings.
    env, flags = tracing_settings(*ci("tracing"), "--set", "tracing.sidecars=false")
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] and flags == [], (env, flags)
    # Sidecars only when there is an endpoint at all.
    assert tracing_settings("--set", "tracing.sidecars=true", "--set-json", "tracing.sampleRatio=0.5") == ({}, [])
    # Collector headers only from a Secret: the operator's own in the
    # release namespace, the sidecars' of the same name in their namespace
    # (both optional); never a value in the manifests.
    c = container(render(*ci("tracing"), "--set", "tracing.otlp.headersSecret=otlp-headers"))
    headers = [e for e in c["env"] if e["name"] == "OTEL_EXPORTER_OTLP_HEADERS"]
    assert headers == [{"name": "OTEL_EXPORTER_OTLP_HEADERS", "valueFrom": {"secretKeyRef": {
        "name": "otlp-headers", "key": "headers", "optional": True}}}], headers
    assert "--sidecar-otlp-headers-secret=otlp-headers" in c["args"], c["args"]
    env, _ = tracing_settings(*ci("tracing"))
    assert "OTEL_EXPORTER_OTLP_HEADERS" not in env, env
    c = container(render(*ci("tracing"), "--set", "tracing.otlp.headersSecret=otlp-headers",
                         "--set", "tracing.sidecars=false"))
    assert not any(a.startswith("--sidecar-otlp-headers") for a in c["args"]), c["args"]
    refused(["--set", "tracing.otlp.headersSecret=Bad_Name"], "/tracing/otlp/headersSecret")
    # A private collector CA from a ConfigMap: mounted (optional) into the
    # operator, named by OTEL_EXPORTER_OTLP_CERTIFICATE, and passed on to
    # the sidecars by name.
    objs = render(*ci("tracing"), "--set", "tracing.otlp.caConfigMap=otlp-ca")
    c, pod = container(objs), one(objs, "Deployment")["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    mount = [m for m in c["volumeMounts"] if m["name"] == "otlp-ca"]
    assert mount == [{"name": "otlp-ca", "mountPath": "/etc/tollgate/otlp-ca", "readOnly": True}], c["volumeMounts"]
    assert env["OTEL_EXPORTER_OTLP_CERTIFICATE"] == "/etc/tollgate/otlp-ca/ca.crt", env
    volume = [v for v in pod["volumes"] if v["name"] == "otlp-ca"]
    assert volume == [{"name": "otlp-ca", "configMap": {"name": "otlp-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}],
                                                       "optional": True}}], pod["volumes"]
    assert "--sidecar-otlp-ca-configmap=otlp-ca" in c["args"], c["args"]
    # Nothing of it without an endpoint, or without the value.
    for args in (["--set", "tracing.otlp.caConfigMap=otlp-ca"], ci("tracing")):
        objs = render(*args)
        c, pod = container(objs), one(objs, "Deployment")["spec"]["template"]["spec"]
        assert "otlp-ca" not in json.dumps(pod), args
    refused(["--set", "tracing.otlp.caConfigMap=Bad_Name"], "/tracing/otlp/caConfigMap")
    refused(["--set", "tracing.otlp.protocol=http/json"], "/tracing/otlp/protocol")
    refused(["--set-json", "tracing.sampleRatio=1.5"], "/tracing/sampleRatio")
    refused(["--set", "tracing.otlp.endpoint=otel-collector:4317"], "/tracing/otlp/endpoint")
    refused(["--set", "tracing.sidecar=true"], "additional properties 'sidecar' not allowed")


def default_store(*args):
    """The operator's --default-store as rendered (None without one)."""
    c = container(render(*args))
    flags = [a.split("=", 1)[1] for a in c["args"] if a.startswith("--default-store=")]
    assert len(flags) <= 1, c["args"]
    return json.loads(flags[0]) if flags else None


@check
def a_shared_store_reaches_the_operator_as_its_default_store():
    assert default_store() is None, "no shared store by default"
    ref = lambda key: {"name": "tollgate-redis", "key": key}  # noqa: E731
    assert default_store(*ci("shared-store")) == {
        "redis": {"url": "rediss://redis.shared-redis.svc:6380/0", "username": "tollgate",
                  "passwordSecretRef": ref("password"),
                  "tls": {"caSecretRef": ref("ca.crt"), "certSecretRef": ref("tls.crt"), "keySecretRef": ref("tls.key")}},
        "failMode": "closed", "budgets": True, "cache": True}
    # Cluster seeds, a Secret with the password only, the cache left out.
    d = default_store("--set", "sharedStore.url=redis://redis-0.r:6379", "--set", "sharedStore.cluster=true",
                      "--set-json", 'sharedStore.nodes=["redis://redis-1.r:6379","redis://redis-2.r:6379"]',
                      "--set", "sharedStore.secret.name=redis", "--set", "sharedStore.cache=false",
                      "--set", "sharedStore.keyPrefix=tg", "--set", "sharedStore.timeout=250ms")
    assert d == {"redis": {"url": "redis://redis-0.r:6379", "cluster": True,
                           "nodes": ["redis://redis-1.r:6379", "redis://redis-2.r:6379"],
                           "passwordSecretRef": {"name": "redis", "key": "password"},
                           "keyPrefix": "tg", "timeout": "250ms"},
                 "failMode": "open", "budgets": True, "cache": False}, d
    d = default_store("--set", "sharedStore.url=redis://sentinel-0.r:26379", "--set", "sharedStore.sentinelMasterName=mymaster")
    assert d["redis"] == {"url": "redis://sentinel-0.r:26379", "sentinel": {"masterName": "mymaster"}}, d
    # Names and keys only: no Secret is read or written by the chart.
    objs = render(*ci("shared-store"))
    assert not find(objs, "Secret"), [o["metadata"]["name"] for o in find(objs, "Secret")]
    # The operator takes it: the cache example renders with the store's
    # files mounted from the Secret and its own key prefix.
    binary = os.environ.get("TOLLGATE_OPERATOR_BIN", os.path.join(ROOT, "target", "debug", "tollgate-operator"))
    flag = json.dumps(default_store(*ci("shared-store")))
    example = os.path.join(ROOT, "examples", "k8s", "cache.yaml")
    r = subprocess.run([binary, "render", "-f", example, "-n", "team-a", "--default-store", flag],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    cache = [d for d in yaml.safe_load_all(r.stdout) if d][0]
    config = yaml.safe_load(cache["data"]["config.yaml"]) if "data" in cache else cache
    store = config["cache"]["store"]["redis"]
    assert store["tls"]["caFile"] == "/var/run/secrets/tollgate/tollgate-redis/ca.crt", store
    assert store["passwordFile"] == "/var/run/secrets/tollgate/tollgate-redis/password", store
    assert store["keyPrefix"].startswith("tollgate:team-a:"), store
    refused(["--set", "sharedStore.url=redis://r:6379", "--set", "sharedStore.secret.name=s",
             "--set", "sharedStore.secret.caKey=ca.crt"], "sharedStore.url must start with rediss://")
    refused(["--set", "sharedStore.url=rediss://r:6380", "--set", "sharedStore.secret.name=s",
             "--set", "sharedStore.secret.certKey=tls.crt"], "sharedStore.secret.certKey and keyKey go together")
    refused(["--set", "sharedStore.url=rediss://r:6380", "--set", "sharedStore.secret.caKey=ca.crt"],
            "need sharedStore.secret.name")
    refused(["--set", "sharedStore.url=redis://r:6379", "--set", "sharedStore.cluster=true",
             "--set", "sharedStore.sentinelMasterName=m"], "exclude each other")
    refused(["--set", "sharedStore.url=redis://r:6379", "--set-json", 'sharedStore.nodes=["redis://s:6379"]'],
            "sharedStore.nodes needs sharedStore.cluster or sharedStore.sentinelMasterName")
    refused(["--set", "sharedStore.url=redis://:pw@r:6379"], "/sharedStore/url")
    refused(["--set", "sharedStore.url=http://r:6379"], "/sharedStore/url")
    refused(["--set", "sharedStore.failMode=maybe"], "/sharedStore/failMode")
    refused(["--set", "sharedStore.timeout=soon"], "/sharedStore/timeout")
    refused(["--set", "sharedStore.secret.name=Bad_Name"], "/sharedStore/secret/name")
    refused(["--set", "sharedStore.password=x"], "additional properties 'password' not allowed")


@check
def impossible_combinations_fail_with_a_reason():
    refused(["--set", "certManager.enabled=true", "--set", "webhook.tls.generator=helm"],
            "certManager.enabled and webhook.tls.generator=helm exclude each other")
    refused(["--set", "certManager.enabled=true", "--set", "webhook.tls.generator=secret",
             "--set", "webhook.tls.secretName=x"],
            "certManager.enabled and webhook.tls.generator=secret exclude each other")
    refused(["--set", "webhook.tls.generator=secret"], "webhook.tls.generator=secret needs webhook.tls.secretName")
    refused(["--set", "webhook.tls.secretName=x"],
            "webhook.tls.secretName is read only with webhook.tls.generator=secret (the certificate comes from operator)")
    refused(["--set", "certManager.enabled=true", "--set", "webhook.tls.secretName=x"],
            "(the certificate comes from cert-manager)")
    refused(["-f", os.path.join(CHART, "ci", "user-secret-values.yaml"), "--set", "webhook.tls.generator=operator",
             "--set", "webhook.tls.secretName="],
            "webhook.tls.caBundle is read only with webhook.tls.generator=secret")
    refused(["--set", "operator.replicaCount=1"], "minAvailable (1) must be below operator.replicaCount (1)")
    refused(["--set", "grafanaDashboard.enabled=true"], "grafanaDashboard.enabled needs monitoring.prometheusRule.enabled")
    refused(["--set", "sidecar.adminPort=15800"], "sidecar.port and sidecar.adminPort must differ (both 15800)")


# === values.yaml is documented and matches the schema ===

def value_paths():
    """(path, documented) for every key of values.yaml, from its text."""
    out, stack, comment = [], [], False
    for line in open(os.path.join(CHART, "values.yaml")):
        s = line.strip()
        if s.startswith("#"):
            comment = comment or s.startswith("# --")
            continue
        m = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not m:
            comment = False
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        out.append((".".join(k for _, k in stack), comment))
        comment = False
    return out


@check
def every_value_has_a_doc_comment():
    paths = value_paths()
    documented = {p for p, d in paths if d}
    for path, _ in paths:
        if path in documented or any(path.startswith(d + ".") for d in documented):
            continue  # documented, or part of a documented value (resources.requests.cpu)
        if any(p.startswith(path + ".") for p, _ in paths):
            continue  # a grouping key: its own keys are checked
        raise AssertionError(f"values.yaml: {path} has no `# --` comment")
    assert len(documented) > 50, len(documented)


@check
def the_readme_values_table_is_generated_from_values_yaml():
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import values_doc
    # The generator documents exactly the keys this file's check finds
    # documented, and the README holds what it generates.
    assert [p for p, _ in values_doc.documented(open(os.path.join(CHART, "values.yaml")).read())] == \
        [p for p, d in value_paths() if d]
    readme = open(os.path.join(CHART, "README.md")).read()
    assert values_doc.rendered(readme) == readme, \
        "charts/tollgate/README.md is out of date: run python3 tests/chart/values_doc.py --write"


@check
def schema_and_values_have_the_same_keys():
    schema = json.load(open(os.path.join(CHART, "values.schema.json")))
    defs = schema["definitions"]

    def keys(node, prefix):
        if "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        props = node.get("properties")
        if not props or node.get("additionalProperties", True) is not False:
            return {prefix}
        out = set()
        for k, v in props.items():
            out |= keys(v, f"{prefix}.{k}" if prefix else k)
        return out

    in_schema = keys(schema, "")
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))

    def vkeys(node, prefix, schema_paths):
        out = set()
        for k, v in node.items():
            p = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict) and v and p not in schema_paths:
                out |= vkeys(v, p, schema_paths)
            else:
                out.add(p)
        return out

    in_values = vkeys(values, "", in_schema)
    # issuerRef is {} by default; its keys are schema-only.
    schema_only = {"certManager.issuerRef.name", "certManager.issuerRef.kind", "certManager.issuerRef.group",
                   "monitoring.podMonitor.namespaceSelector.matchNames"}
    missing = in_schema - in_values - schema_only
    assert not missing, f"in the schema but not in values.yaml: {sorted(missing)}"
    extra = {p for p in in_values if p not in in_schema
             and not any(p.startswith(s + ".") or s.startswith(p + ".") for s in in_schema)}
    assert not extra, f"in values.yaml but not in the schema: {sorted(extra)}"


# === Helm 3 and Helm 4 agree ===

GENERATED = re.compile(r"-----BEGIN [A-Z ]+-----[^-]+-----END [A-Z ]+-----")


def comparable(objs):
    """Objects with what differs on every render (generated keys) masked."""
    def mask(v):
        if isinstance(v, dict):
            return {k: ("<generated>" if k in ("caBundle", "ca.crt", "tls.crt", "tls.key") else mask(x))
                    for k, x in v.items()}
        if isinstance(v, list):
            return [mask(x) for x in v]
        return v
    return sorted((mask(o) for o in objs), key=lambda o: (o["kind"], o["metadata"]["name"]))


if HELM_REFERENCE:
    @check
    def renders_every_variant_like_the_reference_helm():
        ref = helm_major(HELM_REFERENCE)
        assert ref != HELM_MAJOR, f"both are Helm {ref}"
        variants = [[]] + [["-f", os.path.join(CHART, "ci", f)]
                           for f in sorted(os.listdir(os.path.join(CHART, "ci"))) if f.endswith("-values.yaml")]
        for args in variants:
            for apis in ((), MONITORING_APIS + ["cert-manager.io/v1"]):
                got = comparable(render(*args, apis=apis))
                want = comparable(render(*args, apis=apis, binary=HELM_REFERENCE))
                assert got == want, (f"Helm {HELM_MAJOR} and Helm {ref} render {args or 'the defaults'} "
                                     f"(apis: {bool(apis)}) differently")
                assert len(got) >= 10, len(got)


passed = sum(1 for _, ok in results if ok)
failed = len(results) - passed
print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
