"""Fixtures for the SDK compatibility suite.

The suite runs the official `openai` and `anthropic` Python SDKs against a real
`tollgate-proxy` that fronts the real `tollgate-mock` provider, both started
here as subprocesses on port 0. Tests then assert on two sides: what the SDK
gives the application, and what the mock recorded as arriving upstream.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

REPO = Path(__file__).resolve().parents[2]

# The keys the proxy is configured with, and that the mock insists on. The SDK
# clients below use a different placeholder, so a forwarded app key would make
# the mock answer 401 and the key-replacement tests fail.
OPENAI_UPSTREAM_KEY = "sk-upstream-openai-0123456789"
ANTHROPIC_UPSTREAM_KEY = "sk-ant-upstream-0123456789"
APP_PLACEHOLDER_KEY = "placeholder-app-key"

OPENAI_MODELS = ["gpt-4o-mini", "text-embedding-3-small", "gpt-3.5-turbo-instruct"]
ANTHROPIC_MODELS = ["claude-sonnet-4-5"]

STARTUP_DEADLINE_S = 30.0
SHUTDOWN_DEADLINE_S = 10.0

MOCK_LINE = re.compile(r"^tollgate-mock listening on (http://\S+)$")
PROXY_LINE = re.compile(r"^tollgate-proxy listening data=(http://\S+) admin=(http://\S+)$")


# === binaries and processes ===


def binary(name: str) -> Path:
    bin_dir = Path(os.environ.get("TOLLGATE_BIN_DIR", REPO / "target" / "debug"))
    path = bin_dir / name
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(
            f"{path} is missing: build it first (`cargo build -p tollgate-proxy -p tollgate-tests`) "
            f"or point TOLLGATE_BIN_DIR at the directory that holds {name}",
            pytrace=False,
        )
    return path


class Process:
    """A child binary that announces its addresses on one stdout line.

    stderr goes to a log file so a failed start, or a failed test, can show
    what the binary said.
    """

    def __init__(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log = log
        self._log_file = open(log, "wb")
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log_file,
            env=env,
        )
        self._first_line: str | None = None
        self._line_ready = threading.Event()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            if self._first_line is None:
                self._first_line = raw.decode(errors="replace").rstrip("\r\n")
                self._line_ready.set()
            # Keep draining so a chatty child never blocks on a full pipe.
        self._line_ready.set()

    def announced(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """Wait for the announcement line and match it against `pattern`."""
        self._line_ready.wait(STARTUP_DEADLINE_S)
        line = self._first_line
        if line is None:
            self.stop()
            raise RuntimeError(
                f"{self.argv[0]} printed no listening line (exit code {self.proc.returncode}, "
                f"deadline {STARTUP_DEADLINE_S}s)\n{self.stderr_tail()}"
            )
        m = pattern.match(line)
        if m is None:
            self.stop()
            raise RuntimeError(f"{self.argv[0]}: unexpected first stdout line {line!r}\n{self.stderr_tail()}")
        return m

    def stderr_tail(self, lines: int = 20) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "--- stderr tail ---\n" + "\n".join(text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(SHUTDOWN_DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()


def wait_until(what: str, check: Callable[[], bool], *, deadline_s: float = STARTUP_DEADLINE_S) -> None:
    """Poll `check` until it holds; the short pause is a poll interval, not a guess."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {deadline_s}s waiting for {what}")


# === the mock provider ===


@dataclass
class Recorded:
    method: str
    path: str
    query: str | None
    headers: list[tuple[str, str]]
    raw_body: str
    body: Any  # raw_body parsed as JSON, or None when it is not JSON

    def header(self, name: str) -> str | None:
        values = self.headers_named(name)
        return values[0] if values else None

    def headers_named(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


@dataclass
class Mock:
    """Reads and clears what the mock provider recorded."""

    url: str
    http: httpx.Client = field(repr=False)

    def clear(self) -> None:
        self.http.delete(f"{self.url}/__mock/requests").raise_for_status()

    def requests(self, path: str | None = None) -> list[Recorded]:
        resp = self.http.get(f"{self.url}/__mock/requests")
        resp.raise_for_status()
        out = [
            Recorded(
                method=r["method"],
                path=r["path"],
                query=r.get("query"),
                headers=[(k, v) for k, v in r["headers"]],
                raw_body=r["body"],
                body=_json_or_none(r["body"]) if r.get("bodyEncoding", "utf8") == "utf8" else None,
            )
            for r in resp.json()
        ]
        return [r for r in out if path is None or r.path == path]

    def only(self, path: str) -> Recorded:
        """The single request recorded on `path` since the last clear."""
        found = self.requests(path)
        assert len(found) == 1, f"expected one upstream request to {path}, mock recorded {found}"
        return found[0]


@pytest.fixture(scope="session")
def mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("mock")
    proc = Process(
        [
            str(binary("tollgate-mock")),
            "--listen",
            "127.0.0.1:0",
            "--openai-key",
            OPENAI_UPSTREAM_KEY,
            "--anthropic-key",
            ANTHROPIC_UPSTREAM_KEY,
        ],
        log=logs / "mock.stderr.log",
    )
    try:
        url = proc.announced(MOCK_LINE).group(1)
        yield url
    finally:
        proc.stop()


@pytest.fixture
def mock(mock_server: str) -> Iterator[Mock]:
    """The mock's recorder, cleared before each test (the suite runs serially)."""
    with httpx.Client(timeout=10) as http:
        m = Mock(url=mock_server, http=http)
        m.clear()
        yield m


# === the proxy ===


@dataclass
class Proxy:
    data: str
    admin: str
    process: Process


# Route aliases used by the translation suite.
TO_ANTHROPIC = "via-claude"
TO_OPENAI = "via-gpt"
# Route aliases with the response cache on (the cache suite).
CACHED_GPT = "cached-gpt"
CACHED_CLAUDE = "cached-claude"


def proxy_config(mock_url: str, *, openai_key_env: str, anthropic_key_env: str, max_attempts: int = 1) -> str:
    def models(names: list[str]) -> str:
        return "[" + ", ".join(names) + "]"

    return f"""\
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
server:
  listen: 127.0.0.1:0
  drainDelay: 0s
  maxRequestBody: 1Mi
admin:
  listen: 127.0.0.1:0
providers:
  - name: openai
    type: openai
    baseUrl: {mock_url}/v1
    credentials: {{env: {openai_key_env}}}
    models: {models(OPENAI_MODELS)}
  - name: anthropic
    type: anthropic
    baseUrl: {mock_url}
    credentials: {{env: {anthropic_key_env}}}
    models: {models(ANTHROPIC_MODELS)}
defaultProvider: openai
routing:
  defaults:
    retry: {{maxAttempts: {max_attempts}, initialBackoff: 10ms}}
  routes:
    # Aliases that cross APIs: an OpenAI app answered by Anthropic, and back.
    - name: {TO_ANTHROPIC}
      targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]
    - name: {TO_OPENAI}
      targets: [{{provider: openai, model: gpt-4o-mini}}]
    - name: {CACHED_GPT}
      targets: [{{provider: openai, model: gpt-4o-mini}}]
    - name: {CACHED_CLAUDE}
      targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]
cache:
  enabled: false
  routes: [{{name: {CACHED_GPT}}}, {{name: {CACHED_CLAUDE}}}]
"""


def start_proxy(
    workdir: Path, mock_url: str, *, openai_key: str, anthropic_key: str, extra: str = "", max_attempts: int = 1
) -> Proxy:
    """A proxy fronting the mock; `extra` is appended to its config (top-level sections)."""
    config = workdir / "proxy.yaml"
    config.write_text(
        proxy_config(
            mock_url, openai_key_env="TG_OPENAI_KEY", anthropic_key_env="TG_ANTHROPIC_KEY", max_attempts=max_attempts
        )
        + extra
    )
    env = dict(os.environ, TG_OPENAI_KEY=openai_key, TG_ANTHROPIC_KEY=anthropic_key, TOLLGATE_PRINT_ADDRS="1")
    env.setdefault("RUST_LOG", "info")
    env.setdefault("NO_COLOR", "1")
    proc = Process(
        [str(binary("tollgate-proxy")), "run", "--config", str(config)],
        log=workdir / "proxy.stderr.log",
        env=env,
    )
    m = proc.announced(PROXY_LINE)
    proxy = Proxy(data=m.group(1), admin=m.group(2), process=proc)

    def ready() -> bool:
        if proc.proc.poll() is not None:
            raise RuntimeError(f"tollgate-proxy exited with {proc.proc.returncode}\n{proc.stderr_tail()}")
        try:
            return httpx.get(f"{proxy.admin}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(f"{proxy.admin}/readyz to answer 200", ready)
    except Exception:
        proc.stop()
        raise
    return proxy


@pytest.fixture(scope="session")
def proxy(mock_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    p = start_proxy(
        tmp_path_factory.mktemp("proxy"),
        mock_server,
        openai_key=OPENAI_UPSTREAM_KEY,
        anthropic_key=ANTHROPIC_UPSTREAM_KEY,
    )
    with stopped_after(p):
        yield p


@contextmanager
def stopped_after(p: Proxy) -> Iterator[Proxy]:
    """Stops the proxy once the block (a fixture's `yield`) ends."""
    try:
        yield p
    finally:
        p.process.stop()


@pytest.fixture(scope="session")
def misconfigured_proxy(mock_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    """A proxy whose provider keys are wrong, so the mock answers 401."""
    p = start_proxy(
        tmp_path_factory.mktemp("proxy-bad-keys"),
        mock_server,
        openai_key="sk-wrong-openai-key",
        anthropic_key="sk-ant-wrong-key",
    )
    with stopped_after(p):
        yield p


# === SDK clients ===

# Generous enough for a debug build, short enough that a hung stream fails the
# test instead of the whole run.
CLIENT_TIMEOUT_S = 15.0


@pytest.fixture
def openai_client(proxy: Proxy) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"{proxy.data}/v1", api_key=APP_PLACEHOLDER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
def anthropic_client(proxy: Proxy) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=proxy.data, api_key=APP_PLACEHOLDER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
    ) as client:
        yield client


@pytest.fixture
def async_openai_client(proxy: Proxy) -> openai.AsyncOpenAI:
    """Unopened async client; use it as `async with` inside the test's event loop."""
    return openai.AsyncOpenAI(
        base_url=f"{proxy.data}/v1", api_key=APP_PLACEHOLDER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


@pytest.fixture
def async_anthropic_client(proxy: Proxy) -> anthropic.AsyncAnthropic:
    """Unopened async client; use it as `async with` inside the test's event loop."""
    return anthropic.AsyncAnthropic(
        base_url=proxy.data, api_key=APP_PLACEHOLDER_KEY, max_retries=0, timeout=CLIENT_TIMEOUT_S
    )


@pytest.fixture
def request_id() -> str:
    """A fresh id for a test to send as `x-request-id`."""
    return f"sdk-test-{uuid.uuid4()}"


# === failure reports ===


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Attach the proxy's and mock's stderr to a failed test's report."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "call" or not report.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    for name in ("proxy", "misconfigured_proxy"):
        p = funcargs.get(name)
        if isinstance(p, Proxy):
            report.sections.append((f"{name} stderr", p.process.stderr_tail()))
