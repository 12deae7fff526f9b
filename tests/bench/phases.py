"""The benchmark's phases: each one run of the load driver
(tests/src/bin/tollgate-load.rs) over a list of contenders, alternating
them in rounds (A B C, then C B A, …) so drift on a shared machine hits
them alike. The driver prints one JSON line per round and contender; a
phase returns them with its settings, for report.py / report_fixed.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import contenders as cs


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def driver(args, argv: list[str], timeout: float) -> list[dict]:
    cmd = [str(args.bin_dir / "tollgate-load"), "--key", cs.KEY, "--prompt", cs.PROMPT, "--temperature", "0", *argv]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"tollgate-load {argv[0]} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def check_alive(started: dict) -> None:
    for c in started.values():
        if not c.alive():
            raise RuntimeError(f"{c.name} exited")


def target_args(started: dict, names: list[str]) -> list[str]:
    out = []
    for n in names:
        c = started[n]
        # `direct`'s CPU is the upstream's, which every contender uses too:
        # it is reported for reference.
        out += ["--target", f"{n}={c.url}", "--pid", f"{n}=" + ",".join(map(str, c.all_pids()))]
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


def saturate_phase(args, size, started, names, think, concurrency=None, rounds=None, secs=None,
                   warmup_s=1.0) -> dict:
    """Closed loop: `concurrency` requests always in flight per contender
    (default the mock mode's sizes)."""
    concurrency = concurrency or size["sat_concurrency"]
    rounds = rounds or size["sat_rounds"]
    secs = secs or size["sat_phase_s"]
    log(f"saturate: concurrency {concurrency}, think {think} ms, {rounds} rounds x {secs:g} s: {', '.join(names)}")
    quotas = {n: started[n].quota for n in names if started[n].quota}
    throttled = {n: q.throttling() for n, q in quotas.items()}
    argv = ["saturate", *target_args(started, names), "--concurrency", str(concurrency),
            "--duration-s", str(secs), "--rounds", str(rounds), "--warmup-s", str(warmup_s)]
    t = len(names) * (warmup_s + rounds * secs)
    lines = driver(args, argv, timeout=2 * t + 120)
    check_alive(started)
    out = {"kind": "saturate", "concurrency": concurrency, "rounds": rounds, "phase_s": secs, "think_ms": think,
           "targets": names, "lines": lines}
    if quotas:
        # CFS periods the quota throttled during the phase (warm-up included).
        out["throttling"] = {n: {k: v - throttled[n][k] for k, v in q.throttling().items()}
                             for n, q in quotas.items()}
    return out


def hold_streams(args, c: cs.Contender, n: int) -> dict:
    """Opens n streams through c, samples its RSS while all are held, closes them."""
    log(f"streams: {n} open through {c.name}")
    cmd = [str(args.bin_dir / "tollgate-load"), "--key", cs.KEY, "--prompt", cs.PROMPT, "streams", "--url", c.url,
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
