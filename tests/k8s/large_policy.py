#!/usr/bin/env python3
"""The operator's memory with one large policy: RSS before, while a policy of
N dictionary terms (about 0.9 MB of spec at 30,000) is stored and
reconciled, and after it is deleted. Run inside a cluster:

    tests/k8s/cluster.sh run -- python3 tests/k8s/large_policy.py BIN [N]

BIN is a tollgate-operator binary (e.g. the image's,
target/x86_64-unknown-linux-musl/dist/tollgate-operator). A measurement, not
a test: figures in RESULTS.md.
"""
import json
import os
import socket
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = sys.argv[1]
N = int(sys.argv[2]) if len(sys.argv) > 2 else 30000
KUBECTL = os.environ.get("KUBECTL") or os.path.join(os.environ["TOLLGATE_K8S_BIN"], "kubectl")
NS = "large-policy"


def kubectl(*args, stdin=None):
    return subprocess.run([KUBECTL, *args], input=stdin, capture_output=True, text=True)


def rss_mib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def conditions():
    p = json.loads(kubectl("-n", NS, "get", "llmp", "big", "-o", "json").stdout or "{}")
    return {c["type"]: c["status"] for c in p.get("status", {}).get("conditions", [])}


def sample(pid, seconds):
    """The highest and the last RSS over `seconds`, sampled every 100 ms."""
    peak, end = 0.0, time.monotonic() + seconds
    while time.monotonic() < end:
        peak = max(peak, rss_mib(pid))
        time.sleep(0.1)
    return peak, rss_mib(pid)


kubectl("create", "namespace", NS)
kubectl("-n", NS, "create", "secret", "generic", "llm-keys", "--from-literal=openai=x", "--from-literal=anthropic=y")
op = subprocess.Popen([BIN, "run", "--namespace", NS, "--admin-addr", f"127.0.0.1:{free_port()}",
                       "--webhook-addr", f"127.0.0.1:{free_port()}", "--tls-san", "127.0.0.1"],
                      env=dict(os.environ, RUST_LOG="warn"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    _, base = sample(op.pid, 5)
    policy = yaml.safe_load(open(os.path.join(ROOT, "operator", "testdata", "policy.yaml")))
    policy["metadata"].update(name="big", namespace=NS)
    policy["spec"]["pii"] = {"custom": [{"name": "codenames", "terms": [f"codename-{i:011}" for i in range(N)]}]}
    body = json.dumps(policy)
    assert kubectl("create", "-f", "-", stdin=body).returncode == 0
    deadline = time.monotonic() + 60
    while conditions().get("Ready") != "True":
        assert time.monotonic() < deadline, f"not Ready: {conditions()}"
        time.sleep(0.2)
    peak, held = sample(op.pid, 5)
    kubectl("-n", NS, "delete", "llmp", "big")
    _, after10 = sample(op.pid, 10)
    _, after30 = sample(op.pid, 20)
    print(f"policy {len(body) / 1e6:.2f} MB ({N} terms); RSS MiB: before {base:.1f}, peak {peak:.1f}, "
          f"held {held:.1f}, deleted +10 s {after10:.1f}, +30 s {after30:.1f}")
finally:
    op.terminate()
    op.wait()
