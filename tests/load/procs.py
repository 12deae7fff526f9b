"""Start and stop the mock provider and the proxy, and read their /proc figures.

Both bind port 0 and print one "listening" line; we wait for that line (with a
deadline), never for a fixed sleep. Everything here talks to loopback only.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
START_TIMEOUT_S = 15.0


@dataclass
class Proc:
    """A server we started: its process, the URLs it printed, and its log."""

    name: str
    popen: subprocess.Popen
    urls: dict[str, str]
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def rss_kb(self) -> dict[str, int]:
        """VmRSS (resident now), its RssAnon (heap, stacks) and RssFile
        (mapped binary and libraries) parts, and VmHWM (peak), in KiB."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
        return out

    def cpu_s(self) -> float:
        """User + system CPU seconds used so far (all threads)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        # The command name may hold spaces; fields after ')' are fixed.
        fields = stat.rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / CLK_TCK

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=5)
        return self.popen.returncode

    def stderr_tail(self, lines: int = 20) -> list[str]:
        text = self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""
        return [line for line in text.splitlines() if line.strip()][-lines:]


def _start(name: str, argv: list[str], pattern: str, run_dir: Path, env=None) -> Proc:
    stderr_path = run_dir / f"{name}.stderr"
    popen = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=stderr_path.open("w"),
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + START_TIMEOUT_S
    while (remaining := deadline - time.monotonic()) > 0:
        if not select.select([popen.stdout], [], [], remaining)[0]:
            break
        line = popen.stdout.readline()
        if not line:
            break
        match = re.search(pattern, line)
        if match:
            return Proc(name, popen, match.groupdict(), stderr_path)
    popen.kill()
    popen.wait(timeout=5)
    raise RuntimeError(f"{name} did not report its address; stderr:\n{stderr_path.read_text()}")


def start_mock(binary: Path, key: str, run_dir: Path) -> Proc:
    # --no-record: the mock would otherwise keep every request in memory.
    argv = [str(binary), "--listen", "127.0.0.1:0", "--openai-key", key, "--no-record"]
    return _start("mock", argv, r"listening on (?P<data>http://127\.0\.0\.1:\d+)", run_dir)


PROXY_CONFIG = """\
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
server: {{listen: 127.0.0.1:0, drainDelay: 0s, maxConcurrentRequests: 4096}}
admin: {{listen: 127.0.0.1:0}}
logging: {{level: warn}}
providers:
  - name: openai
    type: openai
    baseUrl: {mock_url}/v1
    credentials: {{env: TG_BENCH_KEY}}
    models: [gpt-4o-mini]
"""


def start_proxy(binary: Path, mock_url: str, key: str, run_dir: Path) -> Proc:
    config = run_dir / "proxy.yaml"
    config.write_text(PROXY_CONFIG.format(mock_url=mock_url))
    env = dict(os.environ, TG_BENCH_KEY=key, TOLLGATE_PRINT_ADDRS="1")
    argv = [str(binary), "run", "--config", str(config)]
    pattern = r"data=(?P<data>http://127\.0\.0\.1:\d+) admin=(?P<admin>http://127\.0\.0\.1:\d+)"
    proc = _start("proxy", argv, pattern, run_dir, env=env)
    wait_http_ok(proc.urls["admin"] + "/readyz")
    return proc


def wait_http_ok(url: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as err:
            last = err
        time.sleep(0.05)
    raise RuntimeError(f"{url} not ready after {timeout_s}s: {last}")


def in_flight(admin_url: str) -> float:
    """The proxy's own count of requests being handled, streams included."""
    with urllib.request.urlopen(admin_url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    match = re.search(r"^tollgate_requests_in_flight(?:\{[^}]*\})? (\S+)$", text, re.M)
    if not match:
        raise RuntimeError("tollgate_requests_in_flight missing from /metrics")
    return float(match.group(1))


def wait_in_flight(admin_url: str, want, timeout_s: float) -> tuple[bool, float, float]:
    """Poll until want(in_flight) holds; returns (met, last value, seconds waited)."""
    start = time.monotonic()
    value = in_flight(admin_url)
    while not want(value) and time.monotonic() - start < timeout_s:
        time.sleep(0.1)
        value = in_flight(admin_url)
    return want(value), value, time.monotonic() - start
