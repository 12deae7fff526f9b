#!/usr/bin/env python3
"""The side-by-side benchmark (issue 9): Tollgate vs direct, nginx and LiteLLM.

Started by run.sh, which builds the binaries and sets up nginx and LiteLLM.
Every contender (contenders.py) forwards to one mock provider on loopback,
and every phase interleaves the contenders in rounds (A B C, C B A, …) in
one driver process (tests/src/bin/tollgate-load.rs), so drift on a shared
machine hits them alike. Figures are differences to `direct` and ratios to
`direct` and `nginx` from the same phase.

Phases:
1. Fixed rate, non-streaming, open loop: 1,000 req/s for every contender
   but LiteLLM, and 50 req/s for direct, nginx, Tollgate, Tollgate with
   everything, and LiteLLM (one LiteLLM worker serves about 100 req/s at
   most here, and a fixed rate near that measures its queue, not its
   overhead); each at mock think time 0 and 50 ms. Added p50/p90/p99, CPU
   per request.
2. Streams at a fixed rate (20 req/s, N chunks): time to first event added.
3. Saturation: a closed loop at a fixed concurrency; requests per second.
4. RSS idle, and with 1,000 streams held open.

Writes REPORT.md (report.py) and results.json beside this file. Exit status
1 only when the harness fails (a server did not start, a driver failed); a
missed target is reported, not an error.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import contenders as cs
import report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "load"))
import bench as load_bench  # noqa: E402  (machine_info)
import procs  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# The same request everywhere: ~450 bytes, temperature 0 (cacheable), with an
# email and a phone number in the words the mock echoes, so the PII
# contenders have something to mask and the preflight can see that they did.
EMAIL = "maria.gonzalez@example.org"
PROMPT = (f"Hi, I am Maria, {EMAIL} or +44 20 7946 0958. Please summarize the following notes "
          "for the weekly report. Toll roads are financed in several ways. Governments may issue "
          "bonds backed by future toll revenue, while private concessionaires raise equity and debt "
          "to build and operate a road for a fixed term. Traffic forecasts drive the price of that "
          "debt, and when they prove optimistic the operator renegotiates or defaults.")

ALL_TG = ["tollgate", "tg-pii", "tg-budget-mem", "tg-budget-redis", "tg-cache-hit", "tg-all",
          "tg-traced", "tg-trace-unsampled"]

# Sizes: (full, smoke). Smoke runs the harness end to end in seconds.
SIZES = {
    "rate_rounds": (5, 2), "rate_phase_s": (4.0, 0.5), "rate_warmup_s": (2.0, 0.3),
    "high_rps": (1000.0, 200.0), "low_rps": (50.0, 20.0),
    "stream_rps": (20.0, 20.0), "stream_rounds": (4, 2), "stream_phase_s": (3.0, 0.5), "stream_chunks": (20, 5),
    "sat_rounds": (3, 1), "sat_phase_s": (3.0, 0.5), "sat_concurrency": (64, 8),
    "sat_think_ms": (50, 50),
    "streams": (1000, 20),
}


def main() -> int:
    args = parse_args()
    size = {k: v[1 if args.smoke else 0] for k, v in SIZES.items()}
    for k in size:
        env = os.environ.get("TG_BENCH_" + k.upper())
        if env:
            size[k] = type(size[k])(env)
    wanted = args.contenders.split(",") if args.contenders else (
        ["direct", "tollgate", "tg-all"] if args.smoke else ["direct", "nginx", *ALL_TG, "litellm"])
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-bench-"))
    machine = load_bench.machine_info()
    log(f"{machine['Machine']}; run dir {run_dir}")

    started: dict[str, cs.Contender] = {}
    unavailable: dict[str, str] = {}
    mock = redis = jaeger = None
    otlp_port = None
    results: dict = {"size": size, "phases": [], "rss": {}, "streams": {}, "preflight": {}}
    try:
        mock = procs.start_mock(args.bin_dir / "tollgate-mock", cs.KEY, run_dir)
        mock_url = mock.urls["data"]
        started["direct"] = cs.Contender("direct", "mock provider, no hop", mock_url + "/v1/chat/completions",
                                         [mock.pid], [])
        if "nginx" in wanted:
            started["nginx"] = cs.start_nginx(mock_url, run_dir)
        if "tg-budget-redis" in wanted:
            redis, redis_port = cs.start_redis(run_dir)
        traced = [n for n in ("tg-traced", "tg-trace-unsampled") if n in wanted]
        if traced:
            try:
                jaeger, otlp_port = cs.start_jaeger(run_dir)
            except RuntimeError as err:
                for n in traced:
                    unavailable[n] = str(err)
                    wanted.remove(n)
        for name in ALL_TG:
            if name in wanted:
                started[name] = cs.start_tollgate(name, args.bin_dir / "tollgate-proxy", mock_url, run_dir,
                                                  redis_port if name == "tg-budget-redis" else None,
                                                  otlp_port)
        if "tg-musl" in wanted:
            if args.musl_bin.is_file():
                started["tg-musl"] = cs.start_tollgate("tg-musl", args.musl_bin, mock_url, run_dir)
            else:
                unavailable["tg-musl"] = f"no {args.musl_bin} (make images builds it)"
        if redis is not None:
            started["tg-budget-redis"].pids.append(redis.pid)
            started["tg-budget-redis"].procs.append(redis)
        if "litellm" in wanted:
            try:
                started["litellm"] = cs.start_litellm(args.litellm_venv, mock_url, run_dir)
            except RuntimeError as err:
                unavailable["litellm"] = f"did not start: {err}"
        log("started: " + ", ".join(f"{c.name} (pids {c.all_pids()})" for c in started.values()))

        set_mock(mock_url, {})
        results["preflight"] = preflight(started, unavailable)
        for name in unavailable:
            c = started.pop(name, None)
            if c is not None:
                c.stop()
        results["rss"]["idle_start"] = {n: c.rss_kb() for n, c in started.items()}

        def have(names):
            return [n for n in names if n in started]

        rate_all = have(["direct", "nginx", *ALL_TG, "tg-musl"])
        rate_low = have(["direct", "nginx", "tollgate", "tg-all", "litellm"])
        for rps, names in ((size["high_rps"], rate_all), (size["low_rps"], rate_low)):
            for think in (0, 50):
                set_mock(mock_url, {"latencyMs": think} if think else {})
                results["phases"].append(rate_phase(args, size, started, names, rps, think))
        set_mock(mock_url, {"chunks": size["stream_chunks"]})
        results["phases"].append(rate_phase(
            args, size, started, have(["direct", "nginx", "tollgate", "tg-pii", "tg-all", "litellm"]),
            size["stream_rps"], 0, stream=True))
        set_mock(mock_url, {})
        results["phases"].append(saturate_phase(args, size, started, list(started), 0))
        # With a provider that takes time to answer, a proxy's own ceiling
        # stops mattering except on the cache-hit path (issue 5's 2× target).
        set_mock(mock_url, {"latencyMs": size["sat_think_ms"]})
        results["phases"].append(saturate_phase(
            args, size, started, have(["direct", "nginx", "tollgate", "tg-cache-hit"]), size["sat_think_ms"]))
        set_mock(mock_url, {})
        check_alive(started)
        results["rss"]["idle_after_load"] = {n: c.rss_kb() for n, c in started.items()}

        # Streams last: they grow every process's memory.
        set_mock(mock_url, {"chunks": 300, "chunkIntervalMs": 1000})
        for name in have(["tollgate", "tg-all", "nginx", "litellm"]):
            results["streams"][name] = hold_streams(args, started[name], size["streams"])
            check_alive(started)
        set_mock(mock_url, {})
    except (RuntimeError, OSError, subprocess.SubprocessError, json.JSONDecodeError) as err:
        print(f"harness failure: {err}", file=sys.stderr)
        for p in [mock, *[p for c in started.values() for p in c.procs]]:
            if p is not None and hasattr(p, "stderr_tail"):
                print(f"--- {p.name} (tail) ---", *p.stderr_tail(), sep="\n", file=sys.stderr)
            elif p is not None:
                print(f"--- {p.name} (tail) ---\n{p.tail()}", file=sys.stderr)
        return 1
    finally:
        for c in started.values():
            c.stop()
        if mock is not None:
            mock.stop()
        if jaeger is not None:
            jaeger.stop()

    machine["Machine"] += f", {os.getloadavg()[0]:.2f} at the end"
    results["machine"] = machine
    results["contenders"] = {n: c.what for n, c in started.items()}
    results["unavailable"] = unavailable
    results["command"] = command_line(args)
    results["litellm_version"] = litellm_version(args.litellm_venv) if "litellm" in started else None
    results["nginx_version"] = nginx_version() if "nginx" in started else None
    out = args.out_dir or (run_dir if args.smoke else HERE)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    text = report.build(results)
    (out / "REPORT.md").write_text(text)
    print(text)
    log(f"written to {out / 'REPORT.md'} and results.json")
    return 0


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bin-dir", type=Path, default=ROOT / "target" / "release")
    p.add_argument("--litellm-venv", type=Path, default=ROOT / ".venv-litellm")
    p.add_argument("--musl-bin", type=Path,
                   default=ROOT / "target" / "x86_64-unknown-linux-musl" / "dist" / "tollgate-proxy",
                   help="the image's binary, for the tg-musl contender")
    p.add_argument("--smoke", action="store_true", help="seconds-long run of the harness itself")
    p.add_argument("--contenders", help="comma-separated subset, e.g. direct,nginx,tollgate")
    p.add_argument("--out-dir", type=Path, help="where REPORT.md and results.json go "
                   "(default: tests/bench, or the run's temporary directory with --smoke)")
    return p.parse_args()


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def command_line(args) -> str:
    env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("TG_BENCH_"))
    flags = (" --smoke" if args.smoke else "") + (f" --contenders {args.contenders}" if args.contenders else "")
    return f"{env} bash tests/bench/run.sh{flags}".strip()


def set_mock(mock_url: str, defaults: dict) -> None:
    """Server-wide mock switches: LiteLLM does not forward `x-mock-*` headers."""
    req = urllib.request.Request(mock_url + "/__mock/defaults", data=json.dumps(defaults).encode(),
                                 method="PUT", headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        if resp.status != 200:
            raise RuntimeError(f"mock defaults: {resp.status}")


def check_alive(started: dict) -> None:
    for c in started.values():
        if not c.alive():
            raise RuntimeError(f"{c.name} exited")


# === preflight: every contender answers, and its features are really on ===


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {cs.KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, {}, {"error": err.read().decode(errors="replace")[:300]}


def preflight(started: dict, unavailable: dict) -> dict:
    body = {"model": cs.MODEL, "messages": [{"role": "user", "content": PROMPT}], "temperature": 0}
    out = {}
    for name, c in started.items():
        status, headers, resp = post(c.url, dict(body, seed=987654321) if name == "tg-all" else body)
        reply = (resp.get("choices") or [{}])[0].get("message", {}).get("content", "")
        checks = {"status 200": status == 200, "mock reply": reply.startswith("Mock reply")}
        masked = EMAIL not in reply
        if name in ("tg-pii", "tg-all"):
            checks["email masked"] = masked
        elif status == 200:
            checks["email passed as sent"] = not masked
        if name.startswith("tg-budget") or name == "tg-all":
            checks["budget header"] = "x-tollgate-budget-remaining-usd" in headers
        if name == "tg-all":
            checks["cache miss"] = headers.get("x-tollgate-cache") == "miss"
        if name == "tg-cache-hit":
            _, again, _ = post(c.url, body)
            checks["cache hit"] = again.get("x-tollgate-cache") == "hit"
        out[name] = checks
        failed = [k for k, ok in checks.items() if not ok]
        log(f"preflight {name}: " + ("ok" if not failed else "FAILED " + ", ".join(failed)))
        if failed:
            unavailable[name] = "preflight failed: " + ", ".join(failed) + (
                f" (status {status}: {resp.get('error', '')})" if status != 200 else "")
    return out


# === phases ===


def driver(args, argv: list[str], timeout: float) -> list[dict]:
    cmd = [str(args.bin_dir / "tollgate-load"), "--key", cs.KEY, "--prompt", PROMPT, "--temperature", "0", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"tollgate-load {argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def target_args(started: dict, names: list[str]) -> list[str]:
    out = []
    for n in names:
        c = started[n]
        out += ["--target", f"{n}={c.url}"]
        if n != "direct":  # the mock's CPU is everyone's; direct reports it for reference
            out += ["--pid", f"{n}=" + ",".join(map(str, c.all_pids()))]
        else:
            out += ["--pid", f"direct={c.pids[0]}"]
        if n == "tg-all":
            out += ["--unique-seed", n]
    return out


def rate_phase(args, size, started, names, rps, think, stream=False) -> dict:
    rounds, secs = (size["stream_rounds"], size["stream_phase_s"]) if stream else (
        size["rate_rounds"], size["rate_phase_s"])
    kind = "stream" if stream else "rate"
    log(f"{kind}: {rps:g} req/s, think {think} ms, {rounds} rounds x {secs:g} s: {', '.join(names)}")
    argv = ["rate", *target_args(started, names), "--rps", str(rps), "--duration-s", str(secs),
            "--rounds", str(rounds), "--warmup-s", str(size["rate_warmup_s"])]
    if stream:
        argv.append("--stream")
    t = len(names) * (size["rate_warmup_s"] + rounds * secs)
    lines = driver(args, argv, timeout=2 * t + 120)
    check_alive(started)
    return {"kind": kind, "rps": rps, "think_ms": think, "rounds": rounds, "phase_s": secs,
            "chunks": size["stream_chunks"] if stream else None, "targets": names, "lines": lines}


def saturate_phase(args, size, started, names, think) -> dict:
    log(f"saturate: concurrency {size['sat_concurrency']}, think {think} ms, {size['sat_rounds']} rounds x "
        f"{size['sat_phase_s']:g} s: {', '.join(names)}")
    argv = ["saturate", *target_args(started, names), "--concurrency", str(size["sat_concurrency"]),
            "--duration-s", str(size["sat_phase_s"]), "--rounds", str(size["sat_rounds"]), "--warmup-s", "1"]
    t = len(names) * (1 + size["sat_rounds"] * size["sat_phase_s"])
    lines = driver(args, argv, timeout=2 * t + 120)
    check_alive(started)
    return {"kind": "saturate", "concurrency": size["sat_concurrency"], "rounds": size["sat_rounds"],
            "phase_s": size["sat_phase_s"], "think_ms": think, "targets": names, "lines": lines}


def hold_streams(args, c: cs.Contender, n: int) -> dict:
    """Opens n streams through c, samples its RSS while all are held, closes them."""
    log(f"streams: {n} open through {c.name}")
    cmd = [str(args.bin_dir / "tollgate-load"), "--key", cs.KEY, "--prompt", PROMPT, "streams", "--url", c.url,
           "--streams", str(n), "--chunk-interval-ms", "1000", "--hold-s", "120", "--open-timeout-s", "90"]
    d = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        opened = json.loads(d.stdout.readline() or "null")
        if not opened or opened.get("event") != "open":
            raise RuntimeError(f"streams driver: no 'open' report; stderr: {d.stderr.read()}")
        samples = []
        for _ in range(10):
            samples.append(c.rss_kb())
            time.sleep(0.2)
        d.stdin.close()
        done = json.loads(d.stdout.readline() or "null")
        d.wait(timeout=30)
    finally:
        if d.poll() is None:
            d.kill()
            d.wait()
    # Let the contender close the streams before the next one opens its own.
    time.sleep(2)
    return {"wanted": n, "opened": opened["open"], "failed": opened["failed"], "open_secs": opened["secs"],
            "open_at_end": (done or {}).get("open_at_end"), "rss_kb": max(samples),
            "rss_after_kb": c.rss_kb()}


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
