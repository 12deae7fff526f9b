#!/usr/bin/env python3
"""The side-by-side benchmark (issues 9 and 19): Tollgate vs direct, nginx and LiteLLM.

Started by run.sh, which builds the binaries and sets up nginx and LiteLLM.
Every contender (contenders.py, nginx.py) forwards to one upstream on
loopback, and every phase (phases.py) interleaves the contenders in rounds
(A B C, C B A, …) in one driver process (tests/src/bin/tollgate-load.rs),
so drift on a shared machine hits them alike. Figures are differences to
`direct` and ratios to `direct` and `nginx` from the same phase.

`--upstream mock` (the default): the mock provider answers, and the phases
are
1. Fixed rate, non-streaming, open loop: 1,000 req/s for every contender
   but LiteLLM, and 50 req/s for direct, nginx, Tollgate, Tollgate with
   everything, and LiteLLM (one LiteLLM worker serves about 100 req/s at
   most here, and a fixed rate near that measures its queue, not its
   overhead); each at mock think time 0 and 50 ms. Added p50/p90/p99, CPU
   per request.
2. Streams at a fixed rate (20 req/s, N chunks): time to first event added.
3. Saturation: a closed loop at a fixed concurrency; requests per second.
4. RSS idle, and with 1,000 streams held open.
Writes REPORT.md (report.py) and results.json beside this file.

`--upstream nginx-fixed` (issue 19): nginx answers every request with one
fixed chat completion, so the upstream costs almost nothing and the hop's
own cost shows. Contenders direct, nginx, tollgate, tg-all and tg-1cpu
(routing only under a one-CPU cgroup quota); phases: a closed loop at 8
connections (throughput, p99, CPU per request) and at 1 connection (added
latency). Writes REPORT-nginx-upstream.md (report_fixed.py) and
results-nginx-upstream.json.

Exit status 1 only when the harness fails (a server did not start, a
driver failed); a missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import contenders as cs
import nginx
import phases as ph
import report
import report_fixed
from cpu_quota import CpuQuotaUnavailable
from preflight import preflight

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
import bench as load_bench  # noqa: E402  (machine_info)
import procs  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

ALL_TG = ["tollgate", "tg-pii", "tg-budget-mem", "tg-budget-redis", "tg-cache-hit", "tg-all",
          "tg-traced", "tg-trace-unsampled"]
FIXED_CONTENDERS = ["direct", "nginx", "tollgate", "tg-all", "tg-1cpu", "tg-stealing"]

# Sizes: (full, smoke). Smoke runs the harness end to end in seconds.
SIZES = {
    "rate_rounds": (5, 2), "rate_phase_s": (4.0, 0.5), "rate_warmup_s": (2.0, 0.3),
    "high_rps": (1000.0, 200.0), "low_rps": (50.0, 20.0),
    "stream_rps": (20.0, 20.0), "stream_rounds": (4, 2), "stream_phase_s": (3.0, 0.5), "stream_chunks": (20, 5),
    "sat_rounds": (3, 1), "sat_phase_s": (3.0, 0.5), "sat_concurrency": (64, 8),
    "sat_think_ms": (50, 50),
    "streams": (1000, 20),
    # --upstream nginx-fixed: closed loops at 8 connections and at 1.
    "fixed_rounds": (6, 2), "fixed_phase_s": (3.0, 0.3), "fixed_latency_phase_s": (2.0, 0.3),
    "fixed_concurrency": (8, 8), "fixed_warmup_s": (1.0, 0.2),
}


def main() -> int:
    args = parse_args()
    fixed = args.upstream == "nginx-fixed"
    size = {k: v[1 if args.smoke else 0] for k, v in SIZES.items()}
    for k in size:
        env = os.environ.get("TG_BENCH_" + k.upper())
        if env:
            size[k] = type(size[k])(env)
    wanted = args.contenders.split(",") if args.contenders else (
        FIXED_CONTENDERS if fixed else ["direct", "tollgate", "tg-all"] if args.smoke
        else ["direct", "nginx", *ALL_TG, "litellm"])
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    machine = load_bench.machine_info()
    log(f"{machine['Machine']}; run dir {run_dir}")

    started: dict[str, cs.Contender] = {}
    unavailable: dict[str, str] = {}
    mock = None
    others: list = []  # servers some contenders use (Jaeger)
    results: dict = {"upstream": args.upstream, "size": size, "phases": [], "rss": {}, "streams": {},
                     "preflight": {}}
    try:
        if fixed:
            started["direct"] = nginx.start_fixed_nginx(run_dir)
            upstream_url = started["direct"].url.removesuffix("/v1/chat/completions")
        else:
            mock = procs.start_mock(args.bin_dir / "tollgate-mock", cs.KEY, run_dir)
            upstream_url = mock.urls["data"]
            started["direct"] = cs.Contender("direct", "mock provider, no hop",
                                             upstream_url + "/v1/chat/completions", [mock.pid], [])
        start_contenders(args, wanted, upstream_url, run_dir, started, unavailable, others, fixed)
        log("started: " + ", ".join(f"{c.name} (pids {c.all_pids()}" + (
            f", {c.workers} workers)" if c.workers else ")") for c in started.values()))

        if not fixed:
            set_mock(upstream_url, {})
        results["preflight"] = (preflight(started, unavailable, "Fixed reply", answer_has_pii=True) if fixed
                                else preflight(started, unavailable, "Mock reply"))
        for name in unavailable:
            c = started.pop(name, None)
            if c is not None:
                c.stop()
        results["rss"]["idle_start"] = {n: c.rss_kb() for n, c in started.items()}
        (run_fixed if fixed else run_mock)(args, size, started, upstream_url, results)
    except (RuntimeError, OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        print(f"harness failure: {err}", file=sys.stderr)
        for p in [mock, *[p for c in started.values() for p in c.procs]]:
            if p is not None and hasattr(p, "stderr_tail"):
                print(f"--- {p.name} (tail) ---", *p.stderr_tail(), sep="\n", file=sys.stderr)
            elif p is not None and hasattr(p, "tail"):
                print(f"--- {p.name} (tail) ---\n{p.tail()}", file=sys.stderr)
        return 1
    finally:
        for c in started.values():
            c.stop()
        for p in [mock, *others]:
            if p is not None:
                p.stop()

    machine["Machine"] += f", {os.getloadavg()[0]:.2f} at the end"
    results["machine"] = machine
    results["contenders"] = {n: c.what for n, c in started.items()}
    results["workers"] = {n: c.workers for n, c in started.items() if c.workers is not None}
    results["unavailable"] = unavailable
    results["command"] = command_line(args)
    results["litellm_version"] = litellm_version(args.litellm_venv) if "litellm" in started else None
    results["nginx_version"] = nginx_version() if fixed or "nginx" in started else None
    out = args.out_dir or (run_dir if args.smoke else HERE)
    out.mkdir(parents=True, exist_ok=True)
    suffix = "-nginx-upstream" if fixed else ""
    (out / f"results{suffix}.json").write_text(json.dumps(results, indent=1) + "\n")
    text = (report_fixed if fixed else report).build(results)
    (out / f"REPORT{suffix}.md").write_text(text)
    print(text)
    log(f"written to {out / f'REPORT{suffix}.md'} and results{suffix}.json")
    return 0


def start_contenders(args, wanted, upstream_url, run_dir, started, unavailable, others, fixed) -> None:
    """Every wanted contender but `direct`, in front of the upstream."""
    if "nginx" in wanted:
        started["nginx"] = nginx.start_nginx(upstream_url, run_dir)
    redis = redis_port = otlp_port = None
    if "tg-budget-redis" in wanted:
        redis, redis_port = cs.start_redis(run_dir)
    traced = [n for n in ("tg-traced", "tg-trace-unsampled") if n in wanted]
    if traced:
        try:
            jaeger, otlp_port = cs.start_jaeger(run_dir)
            others.append(jaeger)
        except RuntimeError as err:
            for n in traced:
                unavailable[n] = str(err)
                wanted.remove(n)
    for name in [*ALL_TG, "tg-1cpu", "tg-stealing"]:
        if name in wanted:
            try:
                started[name] = cs.start_tollgate(
                    name, args.bin_dir / "tollgate-proxy", upstream_url, run_dir,
                    redis_port if name == "tg-budget-redis" else None, otlp_port,
                    spec=cs.FIXED_TOLLGATE.get(name) if fixed else None)
            except CpuQuotaUnavailable as err:
                unavailable[name] = f"no CPU quota: {err}"
    if "tg-musl" in wanted:
        if args.musl_bin.is_file():
            started["tg-musl"] = cs.start_tollgate("tg-musl", args.musl_bin, upstream_url, run_dir)
        else:
            unavailable["tg-musl"] = f"no {args.musl_bin} (make images builds it)"
    if redis is not None:
        started["tg-budget-redis"].pids.append(redis.pid)
        started["tg-budget-redis"].procs.append(redis)
    if "litellm" in wanted:
        try:
            started["litellm"] = cs.start_litellm(args.litellm_venv, upstream_url, run_dir)
        except RuntimeError as err:
            unavailable["litellm"] = f"did not start: {err}"


def run_mock(args, size, started, mock_url, results) -> None:
    """The mock provider's phases: fixed rates, streams, saturation, held streams."""

    def have(names):
        return [n for n in names if n in started]

    rate_all = have(["direct", "nginx", *ALL_TG, "tg-musl", "tg-1cpu", "tg-stealing"])
    rate_low = have(["direct", "nginx", "tollgate", "tg-all", "litellm"])
    for rps, names in ((size["high_rps"], rate_all), (size["low_rps"], rate_low)):
        for think in (0, 50):
            set_mock(mock_url, {"latencyMs": think} if think else {})
            results["phases"].append(ph.rate_phase(args, size, started, names, rps, think))
    set_mock(mock_url, {"chunks": size["stream_chunks"]})
    results["phases"].append(ph.rate_phase(
        args, size, started, have(["direct", "nginx", "tollgate", "tg-pii", "tg-all", "litellm"]),
        size["stream_rps"], 0, stream=True))
    set_mock(mock_url, {})
    results["phases"].append(ph.saturate_phase(args, size, started, list(started), 0))
    # With a provider that takes time to answer, a proxy's own ceiling
    # stops mattering except on the cache-hit path (issue 5's 2× target).
    set_mock(mock_url, {"latencyMs": size["sat_think_ms"]})
    results["phases"].append(ph.saturate_phase(
        args, size, started, have(["direct", "nginx", "tollgate", "tg-cache-hit"]), size["sat_think_ms"]))
    set_mock(mock_url, {})
    ph.check_alive(started)
    results["rss"]["idle_after_load"] = {n: c.rss_kb() for n, c in started.items()}

    # Streams last: they grow every process's memory.
    set_mock(mock_url, {"chunks": 300, "chunkIntervalMs": 1000})
    for name in have(["tollgate", "tg-all", "nginx", "litellm"]):
        results["streams"][name] = ph.hold_streams(args, started[name], size["streams"])
        ph.check_alive(started)
    set_mock(mock_url, {})


def run_fixed(args, size, started, _upstream_url, results) -> None:
    """The fixed-answer upstream's phases: closed loops at 8 connections and at 1."""
    names = list(started)
    for concurrency, secs in ((size["fixed_concurrency"], size["fixed_phase_s"]),
                              (1, size["fixed_latency_phase_s"])):
        results["phases"].append(ph.saturate_phase(
            args, size, started, names, 0, concurrency=concurrency, rounds=size["fixed_rounds"], secs=secs,
            warmup_s=size["fixed_warmup_s"]))
    results["rss"]["idle_after_load"] = {n: c.rss_kb() for n, c in started.items()}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "release")
    p.add_argument("--litellm-venv", type=Path, default=ROOT / ".venv-litellm")
    p.add_argument("--musl-bin", type=Path,
                   default=ROOT / "target" / "x86_64-unknown-linux-musl" / "dist" / "tollgate-proxy",
                   help="the image's binary, for the tg-musl contender")
    p.add_argument("--upstream", choices=["mock", "nginx-fixed"], default="mock",
                   help="what the contenders forward to: the mock provider, or nginx serving a fixed answer")
    p.add_argument("--smoke", action="store_true", help="seconds-long run of the harness itself")
    p.add_argument("--contenders", help="comma-separated subset, e.g. direct,nginx,tollgate")
    p.add_argument("--out-dir", type=Path, help="where REPORT.md and results.json go "
                   "(default: tests/bench, or the run's temporary directory with --smoke)")
    return p.parse_args()


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def command_line(args) -> str:
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("TG_BENCH_"))
    own_bins = args.bin_dir.resolve() != (ROOT / "target" / "release").resolve()
    flags = ((f" --upstream {args.upstream}" if args.upstream != "mock" else "") + (" --smoke" if args.smoke else "")
             + (f" --contenders {args.contenders}" if args.contenders else "")
             + (f" --bin-dir {args.bin_dir}" if own_bins else "") + (f" --out-dir {args.out_dir}" if args.out_dir else ""))
    return f"{env} bash tests/bench/run.sh{flags}".strip()


def set_mock(mock_url: str, defaults: dict) -> None:
    """Server-wide mock switches: LiteLLM does not forward `x-mock-*` headers."""
    req = urllib.request.Request(mock_url + "/__mock/defaults", data=json.dumps(defaults).encode(),
                                 method="PUT", headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        if resp.status != 200:
            raise RuntimeError(f"mock defaults: {resp.status}")


def litellm_version(venv: Path) -> str:
    try:
        out = subprocess.run([str(venv / "bin" / "pip"), "show", "litellm"], capture_output=True, text=True,
                             timeout=60).stdout
        return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version")), "?")
    except (OSError, subprocess.SubprocessError):
        return "?"


def nginx_version() -> str:
    try:
        out = subprocess.run(["nginx", "-v"], capture_output=True, text=True, timeout=10).stderr
        return out.strip().split("/", 1)[-1]
    except (OSError, subprocess.SubprocessError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
