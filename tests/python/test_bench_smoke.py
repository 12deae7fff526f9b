"""The side-by-side benchmark harness (tests/bench) runs end to end.

Not the benchmark itself (20 minutes, `make bench`): its `--smoke` mode,
with seconds-long phases. With the mock provider upstream: three
contenders (the mock direct, Tollgate routing only, Tollgate with PII +
budgets + cache). With nginx's fixed answer as the upstream
(`--upstream nginx-fixed`, about 10 s): direct, the nginx hop, Tollgate
routing only and with every feature, and Tollgate under a one-CPU cgroup
quota, which must then run one runtime worker. A change that breaks the
driver, the harness or a report is caught here. No figure is judged.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, binary

sys.path.insert(0, str(REPO / "tests/bench"))
import cpu_quota  # noqa: E402


def run_smoke(tmp_path: Path, *flags: str, timeout: float) -> subprocess.CompletedProcess:
    bin_dir = binary("tollgate-load").parent
    for name in ("tollgate-mock", "tollgate-proxy"):
        binary(name)
    return subprocess.run(
        [sys.executable, str(REPO / "tests/bench/suite.py"), "--smoke", "--bin-dir", str(bin_dir),
         "--out-dir", str(tmp_path), *flags],
        capture_output=True, text=True, timeout=timeout,
    )


def assert_every_phase_clean(results: dict) -> None:
    # Every contender answered and had its features on.
    assert all(all(c.values()) for c in results["preflight"].values()), results["preflight"]
    # Every phase ran every request without an error.
    for phase in results["phases"]:
        for line in phase["lines"]:
            assert line["stats"]["errors"] == 0, (phase["kind"], line)


@pytest.mark.timeout(300)
def test_bench_smoke_writes_a_report(tmp_path):
    done = run_smoke(tmp_path, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "REPORT.md").read_text()
    results = json.loads((tmp_path / "results.json").read_text())
    assert "## Targets" in report and "## Saturation" in report
    assert results["unavailable"] == {}
    assert_every_phase_clean(results)
    assert results["streams"]["tollgate"]["opened"] == results["streams"]["tollgate"]["wanted"]


@pytest.mark.timeout(120)
def test_bench_smoke_nginx_fixed_upstream(tmp_path):
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("nginx is not installed (Debian's nginx-light)")
    done = run_smoke(tmp_path, "--upstream", "nginx-fixed", timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    report = (tmp_path / "REPORT-nginx-upstream.md").read_text()
    results = json.loads((tmp_path / "results-nginx-upstream.json").read_text())
    assert "## Targets (issue 19)" in report and "## Closed loop, 1 connection" in report
    assert [p["concurrency"] for p in results["phases"]] == [8, 1]
    # The one-CPU contender runs wherever a cgroup quota can be set (root
    # here, and in CI); its preflight checked that it ran one worker.
    no_quota = cpu_quota.why_not()
    assert set(results["unavailable"]) == (set() if no_quota is None else {"tg-1cpu"}), results["unavailable"]
    if no_quota is None:
        assert results["workers"]["tg-1cpu"] == 1
        assert "## One CPU" in report
    # PII on answers and a budget settled at a listed price: the fixed
    # answer keeps those features at work.
    assert results["preflight"]["tg-all"]["PII found in the answer"]
    assert results["preflight"]["tg-all"]["settled at a listed price"]
    assert_every_phase_clean(results)
