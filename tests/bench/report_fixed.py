"""Turns the fixed-answer mode's results (`suite.py --upstream nginx-fixed`)
into REPORT-nginx-upstream.md, and judges issue 19's targets (`judge`).

Both phases are closed loops over the same contenders in alternating
rounds: at 8 connections for throughput, p99 and CPU per request, and at 1
connection for the latency a hop adds (the contender's p50 minus `direct`'s
in the same round, median over rounds). CPU is the contender's processes'
utime + stime during its phases; `direct`'s is the fixed-answer nginx's.
"""

from __future__ import annotations

from report import med, mib, ms, ratio


def build(r: dict) -> str:
    many = next(p for p in r["phases"] if p["concurrency"] > 1)
    one = next(p for p in r["phases"] if p["concurrency"] == 1)
    f8, f1 = figures(many), figures(one)
    workers = r.get("workers", {})
    out = ["# Tollgate benchmark: nginx fixed-answer upstream", ""]
    out += [f"- Command: `{r['command']}`"]
    out += [f"- {k}: {v}" for k, v in r["machine"].items()]
    if r.get("nginx_version"):
        out += [f"- Versions: nginx {r['nginx_version']}"]
    out += ["- Contenders: " + "; ".join(
        f"`{n}` {w}" + (f" ({workers[n]} runtime worker{'s' if workers[n] > 1 else ''})" if n in workers else "")
        for n, w in r["contenders"].items())]
    for n, why in r.get("unavailable", {}).items():
        out += [f"- **Not measured: `{n}`**, {why}"]
    out += ["", "Every contender forwards to one nginx that answers every request with the same chat "
            "completion (`usage` included, OpenAI's headers), so the upstream costs almost nothing and a "
            "hop's own cost shows; `direct` is that nginx called without a hop. Closed loops, contenders "
            f"alternating in rounds ({many['rounds']} rounds × {many['phase_s']:g} s at {many['concurrency']} "
            f"connections, {one['rounds']} × {one['phase_s']:g} s at 1); the load driver, the upstream and "
            "the contender share the machine's cores. Ratios are from the same run."]

    out += ["", "## Targets (issue 19)", "", "| Target | Measured | Result |", "|---|---|---|"]
    out += [f"| {t} | {m} | {v} |" for t, m, v in judge(f8, f1)]

    out += ["", f"## Closed loop, {many['concurrency']} connections", "",
            "| Contender | req/s (median; rounds' range) | × direct | × nginx | p50 ms | p99 ms "
            "(rounds' range) | p99 × nginx | CPU µs/req | CPU × tollgate | cores busy | run-queue wait µs/req "
            "| errors |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for n in many["targets"]:
        x = f8[n]
        out.append("| " + " | ".join([
            f"`{n}`", f"{x['rps']:,.0f} ({x['rps_min']:,.0f}–{x['rps_max']:,.0f})",
            ratio(x["rps"], f8["direct"]["rps"]), ratio(x["rps"], f8.get("nginx", {}).get("rps")),
            ms(x["p50"]), f"{ms(x['p99'])} ({ms(x['p99_min'])}–{ms(x['p99_max'])})",
            ratio(x["p99"], f8.get("nginx", {}).get("p99")), cpu(x["cpu_us"]),
            ratio(x["cpu_us"], f8.get("tollgate", {}).get("cpu_us")), f"{x['cores']:.2f}", cpu(x["wait_us"]),
            str(x["errors"]),
        ]) + " |")
    out += ["", "Cores busy: the contender's CPU seconds per second of its phases (`tg-1cpu` may use "
            "at most 1.00). Run-queue wait: how long the contender's threads were runnable but waited for a "
            "CPU (`/proc/PID/task/*/schedstat`), summed over threads, per request."]

    out += ["", "## Closed loop, 1 connection: added latency", "",
            "| Contender | p50 ms | p99 ms | added p50 ms | added p99 ms | added p50 × nginx | CPU µs/req "
            "| run-queue wait µs/req | errors |",
            "|---|---|---|---|---|---|---|---|---|"]
    for n in one["targets"]:
        x = f1[n]
        added = ["", "", ""] if n == "direct" else [
            ms(x["added_p50"]), ms(x["added_p99"]), ratio(x["added_p50"], f1.get("nginx", {}).get("added_p50"))]
        out.append("| " + " | ".join([f"`{n}`" + (" (absolute)" if n == "direct" else ""), ms(x["p50"]),
                                      ms(x["p99"]), *added, cpu(x["cpu_us"]), cpu(x["wait_us"]),
                                      str(x["errors"])]) + " |")

    if "tg-1cpu" in f8 and "tollgate" in f8:
        t, c = f8["tollgate"], f8["tg-1cpu"]
        th = many.get("throttling", {}).get("tg-1cpu")
        out += ["", "## One CPU: a sidecar with `limits.cpu: 1`", "",
                f"`tg-1cpu` runs in a cgroup with a one-CPU quota ({workers.get('tg-1cpu', '?')} runtime worker); "
                f"`tollgate` runs unconstrained ({workers.get('tollgate', '?')} workers). Same phase, "
                f"{many['concurrency']} connections.", "",
                "| | req/s | CPU µs/req | req per CPU-second | cores busy |", "|---|---|---|---|---|"]
        for n, x in (("tollgate", t), ("tg-1cpu", c)):
            out.append(f"| `{n}` | {x['rps']:,.0f} | {cpu(x['cpu_us'])} | {per_cpu_s(x):,.0f} | {x['cores']:.2f} |")
        if th:
            out += ["", f"The quota throttled `tg-1cpu` in {th['throttled']} of {th['periods']} CFS periods "
                    f"({th['throttled_us'] / 1000:.0f} ms in all) during the phase, warm-up included."]

    if "tg-stealing" in f8 and "tollgate" in f8:
        out += ["", "## Runtimes: per-core (default) against work-stealing", "",
                f"`tollgate` runs the default `server.runtime: perCore` ({workers.get('tollgate', '?')} "
                "single-threaded workers, a `SO_REUSEPORT` listener and an upstream pool each); `tg-stealing` "
                f"runs `workStealing` ({workers.get('tg-stealing', '?')} workers of one tokio multi-thread "
                "runtime). Same phases.", "",
                "| | connections | req/s | p50 ms | p99 ms | CPU µs/req | run-queue wait µs/req |",
                "|---|---|---|---|---|---|---|"]
        for conc, f in ((many["concurrency"], f8), (1, f1)):
            for n in ("tollgate", "tg-stealing"):
                if n in f:
                    x = f[n]
                    out.append(f"| `{n}` | {conc} | {x['rps']:,.0f} | {ms(x['p50'])} | {ms(x['p99'])} | "
                               f"{cpu(x['cpu_us'])} | {cpu(x['wait_us'])} |")

    idle, after = r["rss"].get("idle_start", {}), r["rss"].get("idle_after_load", {})
    out += ["", "## Memory (VmRSS of the contender's processes, MiB)", "",
            "| Contender | idle at start | after the load |", "|---|---|---|"]
    out += [f"| `{n}` | {mib(idle.get(n))} | {mib(after.get(n))} |" for n in r["contenders"]]

    out += ["", "## Preflight (each contender checked once before the load)", ""]
    for n, checks in r["preflight"].items():
        out.append(f"- `{n}`: " + ", ".join(f"{k} {'ok' if ok else 'FAILED'}" for k, ok in checks.items()))
    return "\n".join(out) + "\n"


# === figures ===


def figures(p: dict) -> dict:
    """Per contender: medians over rounds, CPU over all rounds, and the
    latency added over `direct` in each round (median over rounds)."""
    rounds: dict = {}
    for line in p["lines"]:
        rounds.setdefault(line["round"], {})[line["target"]] = line["stats"]
    out = {}
    for n in p["targets"]:
        mine = [s[n] for s in rounds.values() if n in s]
        lat = [s for s in mine if s["latency_us"]]
        paired = [s for s in rounds.values() if n in s and "direct" in s and s[n]["latency_us"]
                  and s["direct"]["latency_us"]]
        cpu_s = [s.get("cpu_s") for s in mine]
        wait_s = [s.get("runq_wait_s") for s in mine]
        ok = sum(s["ok"] for s in mine)
        secs = sum(s["secs"] for s in mine)
        rps = [s["achieved_rps"] for s in mine]
        p99 = [s["latency_us"]["p99"] for s in lat]
        out[n] = {
            "rps": med(rps), "rps_min": min(rps, default=0), "rps_max": max(rps, default=0),
            "p50": med([s["latency_us"]["p50"] for s in lat]),
            "p99": med(p99), "p99_min": min(p99, default=None), "p99_max": max(p99, default=None),
            "added_p50": med([s[n]["latency_us"]["p50"] - s["direct"]["latency_us"]["p50"] for s in paired]),
            "added_p99": med([s[n]["latency_us"]["p99"] - s["direct"]["latency_us"]["p99"] for s in paired]),
            "errors": sum(s["errors"] for s in mine),
            "cpu_us": None if None in cpu_s or not ok else 1e6 * sum(cpu_s) / ok,
            "wait_us": None if None in wait_s or not ok else 1e6 * sum(wait_s) / ok,
            "cores": 0.0 if None in cpu_s or not secs else sum(cpu_s) / secs,
        }
    return out


def judge(f8: dict, f1: dict) -> list[tuple[str, str, str]]:
    out = []
    t8, n8, a8, c8 = (f8.get(k) for k in ("tollgate", "nginx", "tg-all", "tg-1cpu"))
    t1, n1 = f1.get("tollgate"), f1.get("nginx")

    def row(target, have, measured, x, limit, higher_is_better):
        if not have:
            return target, "–", "NOT MEASURED"
        met = x >= limit if higher_is_better else x <= limit
        return target, measured, "met" if met else f"missed (by {abs(x / limit - 1):.0%})"

    out.append(row("Pass-through throughput ≥ 0.8× the nginx hop (8 connections)",
                   t8 and n8 and not t8["errors"],
                   t8 and n8 and f"{t8['rps']:,.0f} vs {n8['rps']:,.0f} req/s = {t8['rps'] / n8['rps']:.2f}×",
                   t8 and n8 and t8["rps"] / n8["rps"], 0.8, True))
    ok = t1 and n1 and not t1["errors"] and n1["added_p50"] > 0
    out.append(row("Added latency p50 at 1 connection ≤ 2× nginx's added p50", ok,
                   ok and f"{ms(t1['added_p50'])} vs {ms(n1['added_p50'])} ms = "
                   f"{t1['added_p50'] / n1['added_p50']:.2f}×",
                   ok and t1["added_p50"] / n1["added_p50"], 2.0, False))
    out.append(row("p99 at 8 connections ≤ 2× nginx's p99", t8 and n8 and not t8["errors"],
                   t8 and n8 and f"{ms(t8['p99'])} vs {ms(n8['p99'])} ms = {t8['p99'] / n8['p99']:.2f}×",
                   t8 and n8 and t8["p99"] / n8["p99"], 2.0, False))
    ok = t8 and a8 and t8["cpu_us"] and a8["cpu_us"] is not None and not a8["errors"]
    out.append(row("All features (PII on requests and answers + memory budgets + cache miss) ≤ 1.3× "
                   "pass-through CPU per request (8 connections)", ok,
                   ok and f"{a8['cpu_us']:.1f} vs {t8['cpu_us']:.1f} µs = {a8['cpu_us'] / t8['cpu_us']:.2f}×",
                   ok and a8["cpu_us"] / t8["cpu_us"], 1.3, False))
    ok = t8 and c8 and t8["cpu_us"] and c8["cpu_us"] and not c8["errors"]
    out.append(row("One CPU (quota, one worker) serves ≥ 0.9× per core what two workers serve "
                   "(requests per CPU-second, 8 connections)", ok,
                   ok and f"{per_cpu_s(c8):,.0f} vs {per_cpu_s(t8):,.0f} req per CPU-second = "
                   f"{t8['cpu_us'] / c8['cpu_us']:.2f}× (throughput {c8['rps']:,.0f} vs {t8['rps']:,.0f} "
                   f"req/s = {c8['rps'] / t8['rps']:.2f}×)",
                   ok and t8["cpu_us"] / c8["cpu_us"], 0.9, True))
    return out


def per_cpu_s(x: dict) -> float:
    return 1e6 / x["cpu_us"] if x.get("cpu_us") else float("nan")


def cpu(us) -> str:
    return "–" if us is None else f"{us:.1f}"
