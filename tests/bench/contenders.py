"""The contenders of the side-by-side benchmark, started as real processes.

Every contender forwards to the same upstream on loopback: the mock
provider, or (`--upstream nginx-fixed`) an nginx that answers every request
with one fixed chat completion (`start_fixed_nginx`):

- `direct`: the upstream itself, no hop, the floor every other figure is
  measured against.
- `nginx`: a plain reverse proxy hop (Debian's nginx, keep-alive upstream,
  no buffering), run unprivileged from a generated config.
- `tollgate`: routing only; `tg-pii`, `tg-budget-mem`, `tg-budget-redis`
  (a real redis-server), `tg-cache-hit` and `tg-all` (PII + memory budgets
  + cache, sent a unique seed per request so the cache always misses);
  `tg-1cpu`, routing only under a one-CPU cgroup quota (cpu_quota.py).
- `litellm`: the LiteLLM proxy from PyPI, the mock as an OpenAI-compatible
  provider, telemetry and the remote cost map off, a master key set.

Each contender knows its pids (for CPU and RSS from /proc) and the URL of
its chat-completions endpoint. Servers that pick their own port (the mock,
Tollgate) report it; nginx, redis and LiteLLM get a free port from us.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
import procs  # noqa: E402  (tests/load/procs.py: mock and proxy start-up, /proc reads)
from cpu_quota import CpuQuota  # noqa: E402

KEY = "sk-tollgate-bench"  # the mock's key, LiteLLM's master key, what the driver sends
MODEL = "gpt-4o-mini"

# The same request everywhere: ~450 bytes, temperature 0 (cacheable), with an
# email and a phone number in the words the mock echoes, so the PII
# contenders have something to mask and the preflight can see that they did.
EMAIL = "maria.gonzalez@example.org"
PROMPT = (f"Hi, I am Maria, {EMAIL} or +44 20 7946 0958. Please summarize the following notes "
          "for the weekly report. Toll roads are financed in several ways. Governments may issue "
          "bonds backed by future toll revenue, while private concessionaires raise equity and debt "
          "to build and operate a road for a fixed term. Traffic forecasts drive the price of that "
          "debt, and when they prove optimistic the operator renegotiates or defaults.")


@dataclass
class Contender:
    name: str
    what: str
    url: str  # chat-completions endpoint
    pids: list[int] = field(default_factory=list)  # processes whose CPU and RSS count
    procs: list = field(default_factory=list)  # what to stop, in order
    admin: str | None = None
    workers: int | None = None  # Tollgate's runtime workers, from its start-up log
    quota: CpuQuota | None = None

    def rss_kb(self) -> int:
        return sum(rss_kb(p) for p in self.all_pids())

    def all_pids(self) -> list[int]:
        """The contender's pids plus their children now (nginx workers)."""
        out = []
        for p in self.pids:
            out.append(p)
            out.extend(children(p))
        return sorted(set(out))

    def alive(self) -> bool:
        return all(Path(f"/proc/{p}").exists() for p in self.pids)

    def stop(self) -> None:
        for p in self.procs:
            p.stop()


class Popen:
    """A process we started without a 'listening' line to parse."""

    def __init__(self, name: str, argv: list[str], run_dir: Path, env=None, cwd=None, user=None):
        self.name = name
        self.stderr_path = run_dir / f"{name}.log"
        if user is not None:
            argv = ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *argv]
        self.popen = subprocess.Popen(argv, stdout=self.stderr_path.open("w"), stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, cwd=cwd)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)

    def tail(self, n: int = 20) -> str:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return "\n".join(text.splitlines()[-n:])


# === Tollgate ===

PII = """\
pii:
  action: mask
  promptGuard: {user: flag}
"""
BUDGETS = """\
budgets:
{store}  limits:
    - {{name: monthly, scope: policy, window: month, usd: 1000000}}
  rateLimits:
    - {{name: rpm, scope: policy, requestsPerMinute: 100000000}}
"""
CACHE = """\
cache:
  ttl: 1h
"""

TOLLGATE = {
    # name: (description, config sections)
    "tollgate": ("Tollgate, routing only", ""),
    # The container image's binary (static musl, jemalloc; `make images`).
    "tg-musl": ("Tollgate, routing only, the image's static musl binary", ""),
    "tg-pii": ("Tollgate, PII masking + prompt guard", PII),
    "tg-budget-mem": ("Tollgate, budget + rate limit in memory", BUDGETS.format(store="")),
    "tg-budget-redis": ("Tollgate, budget + rate limit in Redis", None),
    "tg-cache-hit": ("Tollgate, exact cache, every request a hit", CACHE),
    "tg-all": ("Tollgate, PII + memory budgets + cache (every request a miss)",
               PII + BUDGETS.format(store="") + CACHE),
    # Routing only, in the work-stealing runtime instead of the per-core
    # default (`server.runtime`).
    "tg-stealing": ("Tollgate, routing only, work-stealing runtime", ""),
    # Routing only, in a cgroup limited to one CPU, as `limits.cpu: 1` does.
    "tg-1cpu": ("Tollgate, routing only, one CPU (cgroup quota)", ""),
    # Routing only, traced: every request to Jaeger over OTLP/gRPC, or
    # tracing on but every trace sampled out (the sections need Jaeger's port).
    "tg-traced": ("Tollgate, routing only, every request traced (OTLP/gRPC to Jaeger)", None),
    "tg-trace-unsampled": ("Tollgate, routing only, tracing on, every trace sampled out", None),
}

# The fixed answer carries an email of its own, so there `tg-all` scans
# answers too: PII on requests and answers.
FIXED_TOLLGATE = {
    "tg-all": ("Tollgate, PII on requests and answers + memory budgets + cache (every request a miss)",
               PII + "  responses: {scan: true}\n" + BUDGETS.format(store="") + CACHE),
}

TRACING = """\
tracing:
  otlp: {{endpoint: "http://127.0.0.1:{port}", protocol: grpc}}
  sampleRatio: {ratio}
"""


def redis_store(port: int) -> str:
    return (f"  store: {{type: redis, redis: {{url: \"redis://127.0.0.1:{port}/0\", keyPrefix: bench, "
            "timeout: 100ms}, failMode: closed}\n")


def start_tollgate(name: str, binary: Path, upstream_url: str, run_dir: Path, redis_port: int | None = None,
                   otlp_port: int | None = None, spec: tuple[str, str] | None = None) -> Contender:
    """Tollgate as `name` (TOLLGATE, or `spec`: description and config sections)."""
    what, sections = spec or TOLLGATE[name]
    if sections is None and name.startswith("tg-trace"):
        sections = TRACING.format(port=otlp_port, ratio=1 if name == "tg-traced" else 0)
    elif sections is None:
        sections = BUDGETS.format(store=redis_store(redis_port))
    config = procs.PROXY_CONFIG.format(mock_url=upstream_url) + sections
    if name == "tg-stealing":
        config = config.replace("maxConcurrentRequests: 4096}", "maxConcurrentRequests: 4096, runtime: workStealing}", 1)
        assert "workStealing" in config
    sub = run_dir / name
    sub.mkdir()
    # procs.start_proxy writes proxy.yaml with only the provider; write ours.
    (sub / "proxy.yaml").write_text(config)
    # The start-up line (with the runtime's worker count) is the one info
    # line of the binary's own target; the access log stays off.
    env = dict(os.environ, TG_BENCH_KEY=KEY, TOLLGATE_PRINT_ADDRS="1", RUST_LOG="warn,tollgate_proxy=info")
    argv = [str(binary), "run", "--config", str(sub / "proxy.yaml")]
    quota = None
    if name == "tg-1cpu":
        quota = CpuQuota(f"tollgate-bench-{os.getpid()}-{name}", cpus=1)
        argv = quota.wrap(argv)
    pattern = r"data=(?P<data>http://127\.0\.0\.1:\d+) admin=(?P<admin>http://127\.0\.0\.1:\d+)"
    try:
        p = procs._start(name, argv, pattern, sub, env=env)
    except RuntimeError:
        if quota:
            quota.stop()
        raise
    stops = [p, quota] if quota else [p]  # the cgroup goes once its process has
    procs.wait_http_ok(p.urls["admin"] + "/readyz")
    return Contender(name, what + (f", {quota.describe()}" if quota else ""),
                     p.urls["data"] + "/v1/chat/completions", [p.pid], stops, admin=p.urls["admin"],
                     workers=logged_workers(p.stderr_path), quota=quota)


def logged_workers(log: Path, timeout_s: float = 5) -> int | None:
    """The worker count in Tollgate's `started` line (text or JSON log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        m = re.search(r"started.*?\bworkers[\"=:]+\s*(\d+)", log.read_text(errors="replace"))
        if m:
            return int(m.group(1))
        time.sleep(0.05)
    return None


# === redis ===

def start_redis(run_dir: Path) -> tuple[Popen, int]:
    port = free_port()
    p = Popen("redis", ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                        "--appendonly", "no", "--protected-mode", "yes"], run_dir)
    wait_tcp(port, p)
    return p, port


# === jaeger (the collector of the traced contenders) ===

JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {{receivers: [otlp], exporters: [jaeger_storage_exporter]}}
  telemetry: {{metrics: {{level: none}}, logs: {{level: warn}}}}
extensions:
  jaeger_query:
    storage: {{traces: mem}}
    http: {{endpoint: "127.0.0.1:{query}"}}
    grpc: {{endpoint: "127.0.0.1:{query_grpc}"}}
  jaeger_storage:
    backends: {{mem: {{memory: {{max_traces: 20000}}}}}}
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
exporters:
  jaeger_storage_exporter: {{trace_storage: mem}}
"""


def jaeger_binary() -> Path:
    if os.environ.get("TOLLGATE_JAEGER_BIN"):
        return Path(os.environ["TOLLGATE_JAEGER_BIN"])
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "tollgate/tools/jaeger-v1.75.0/bin/jaeger"


def start_jaeger(run_dir: Path) -> tuple[Popen, int]:
    """Jaeger v2 (tests/trace/build-jaeger.sh builds it); its OTLP/gRPC port."""
    binary = jaeger_binary()
    if not binary.is_file():
        raise RuntimeError(f"no {binary} (tests/trace/build-jaeger.sh builds it)")
    ports = {k: free_port() for k in ("grpc", "http", "query", "query_grpc")}
    conf = run_dir / "jaeger.yaml"
    conf.write_text(JAEGER_CONFIG.format(**ports))
    p = Popen("jaeger", [str(binary), "--config", str(conf)], run_dir)
    wait_tcp(ports["grpc"], p)
    return p, ports["grpc"]


# === LiteLLM ===

LITELLM_CONF = """\
model_list:
  - model_name: {model}
    litellm_params:
      model: openai/{model}
      api_base: {mock_url}/v1
      api_key: {key}
general_settings:
  master_key: {key}
litellm_settings:
  telemetry: false
"""


def start_litellm(venv: Path, mock_url: str, run_dir: Path) -> Contender:
    binary = venv / "bin" / "litellm"
    if not binary.exists():
        raise RuntimeError(f"{binary} missing (run.sh installs tests/bench/litellm-requirements.txt)")
    sub = run_dir / "litellm"
    sub.mkdir()
    (sub / "config.yaml").write_text(LITELLM_CONF.format(model=MODEL, mock_url=mock_url, key=KEY))
    port = free_port()
    env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
               LITELLM_LOG="ERROR", NO_DOCS="True", DISABLE_ADMIN_UI="True")
    p = Popen("litellm", [str(binary), "--config", str(sub / "config.yaml"), "--host", "127.0.0.1",
                          "--port", str(port), "--telemetry", "False"], sub, env=env, cwd=sub)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", p, timeout_s=120)
    return Contender("litellm", "LiteLLM proxy", f"http://127.0.0.1:{port}/v1/chat/completions", [p.pid], [p])


# === helpers ===

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_tcp(port: int, p: Popen, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if p.popen.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{p.name} not listening on {port} after {timeout_s}s:\n{p.tail()}")


def wait_http(url: str, p: Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if p.popen.poll() is not None:
            raise RuntimeError(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout_s}s:\n{p.tail()}")


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            out.extend(int(c) for c in text)
    except OSError:
        pass
    return out
