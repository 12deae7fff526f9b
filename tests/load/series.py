"""How many series one sidecar exports for a typical policy: three routes
(one cached), eight allow-listed models across both APIs, a budget and PII
masking; every route and model called once streamed and once not, plus an
unknown model and an upstream 503. Prints the total and the largest
metric families.

    cargo build --release -p tollgate-proxy -p tollgate-tests
    python3 tests/load/series.py [--bin-dir target/release]

Only the mock and the proxy on loopback; a few seconds.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--bin-dir", type=Path, default=Path(__file__).resolve().parents[2] / "target" / "release")
BIN = ap.parse_args().bin_dir
work = Path(tempfile.mkdtemp(prefix="tg-series-"))
mock = subprocess.Popen([str(BIN / "tollgate-mock"), "--no-record"], stdout=subprocess.PIPE, text=True)
murl = re.search(r"(http://\S+)", mock.stdout.readline()).group(1)
models_o = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini", "gpt-4.1"]
models_a = ["claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1", "claude-3-5-haiku"]
cfg = f"""apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
server: {{listen: 127.0.0.1:0, drainDelay: 0s}}
admin: {{listen: 127.0.0.1:0}}
logging: {{level: warn}}
providers:
  - {{name: openai, type: openai, baseUrl: "{murl}/v1", credentials: {{env: K}}, models: {json.dumps(models_o)}}}
  - {{name: anthropic, type: anthropic, baseUrl: "{murl}", credentials: {{env: K}}, models: {json.dumps(models_a)}}}
routing:
  routes:
    - {{name: chat, targets: [{{provider: openai, model: gpt-4o-mini}}, {{provider: anthropic, model: claude-haiku-4-5}}]}}
    - {{name: smart, targets: [{{provider: openai, model: gpt-4.1}}, {{provider: anthropic, model: claude-sonnet-4-5}}]}}
    - {{name: cheap, targets: [{{provider: openai, model: gpt-4.1-mini}}]}}
budgets:
  limits: [{{name: daily, scope: policy, window: day, usd: 100}}]
cache: {{ttl: 1h, routes: [{{name: chat}}]}}
pii: {{action: mask}}
"""
(work / "proxy.yaml").write_text(cfg)
env = dict(os.environ, K="k", TOLLGATE_PRINT_ADDRS="1")
p = subprocess.Popen([str(BIN / "tollgate-proxy"), "run", "--config", str(work / "proxy.yaml")], stdout=subprocess.PIPE, text=True, env=env)
line = p.stdout.readline()
data, admin = re.search(r"data=(\S+) admin=(\S+)", line).groups()
for _ in range(100):
    try:
        if urllib.request.urlopen(admin + "/readyz").status == 200:
            break
    except OSError:
        time.sleep(0.05)


def post(path, body, headers={}):
    req = urllib.request.Request(data + path, json.dumps(body).encode(), {"content-type": "application/json", **headers})
    try:
        urllib.request.urlopen(req).read()
    except urllib.error.HTTPError:
        pass  # the unknown model and the 503 are meant to fail


n = 0
for model in ["chat", "smart", "cheap"] + models_o:
    for stream in (False, True):
        post("/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "temperature": 0}); n += 1
for model in models_a:
    for stream in (False, True):
        post("/v1/messages", {"model": model, "max_tokens": 32, "messages": [{"role": "user", "content": "hi"}], "stream": stream}); n += 1
# an unknown model and a failing upstream
post("/v1/chat/completions", {"model": "nope", "messages": [{"role": "user", "content": "hi"}]})
post("/v1/chat/completions", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, {"x-mock-status": "503"})
m = urllib.request.urlopen(admin + "/metrics").read().decode()
series = [l for l in m.splitlines() if l and not l.startswith("#")]
by = {}
for l in series:
    name = re.match(r"[a-zA-Z_:]+", l).group(0)
    base = re.sub(r"_(bucket|sum|count)$", "", name)
    by[base] = by.get(base, 0) + 1
print("requests", n, "series", len(series))
for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:12]:
    print(f"{v:6} {k}")
hist = sum(v for k, v in by.items() if k.startswith("gen_ai_client_operation") or k == "gen_ai_client_token_usage")
print("gen_ai histograms series", hist)
p.terminate(); mock.terminate()
