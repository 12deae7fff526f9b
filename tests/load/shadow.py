#!/usr/bin/env python3
"""Does shadow traffic delay the primary? (issue 3)

Two proxies on the same mock, identical but for one thing: proxy `shadow`
mirrors every request (`share: 1.0`) of its route to a shadow target.
The driver alternates between them in rounds at a fixed rate and reports
the primary's latency on each, so the difference is what mirroring costs
the app. The mirror runs after the primary answered, off the request path;
on this 2-core machine it still competes for CPU, which the figure includes.

    python3 tests/load/shadow.py --bin-dir target/release

Writes tests/load/SHADOW.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import procs  # noqa: E402
from bench import KEY, machine_info, run_driver  # noqa: E402

ROUTE = """\
routing:
  routes:
    - name: chat
      targets: [{{provider: openai, model: gpt-4o-mini}}]
{shadow}"""
SHADOW = "      shadow: {provider: openai, model: gpt-4o-mini, share: 1.0, queueSize: 512}\n"


def start(binary: Path, mock_url: str, run_dir: Path, name: str, shadow: bool) -> procs.Proc:
    d = run_dir / name
    d.mkdir()
    config = d / "proxy.yaml"
    config.write_text(
        procs.PROXY_CONFIG.format(mock_url=mock_url) + ROUTE.format(shadow=SHADOW if shadow else "")
    )
    env = dict(os.environ, TG_BENCH_KEY=KEY, TOLLGATE_PRINT_ADDRS="1")
    argv = [str(binary), "run", "--config", str(config)]
    pattern = r"data=(?P<data>http://127\.0\.0\.1:\d+) admin=(?P<admin>http://127\.0\.0\.1:\d+)"
    p = procs._start(name, argv, pattern, d, env=env)
    procs.wait_http_ok(p.urls["admin"] + "/readyz")
    return p


def metric_sum(admin: str, name: str) -> float:
    with urllib.request.urlopen(admin + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name) and line[len(name)] in "{ "
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin-dir", type=Path, required=True)
    ap.add_argument("--rps", type=float, default=500)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--phase-s", type=float, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "SHADOW.md")
    args = ap.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="tollgate-shadow-"))
    machine = machine_info()
    mock = plain = shadowed = None
    try:
        mock = procs.start_mock(args.bin_dir / "tollgate-mock", KEY, run_dir)
        plain = start(args.bin_dir / "tollgate-proxy", mock.urls["data"], run_dir, "plain", False)
        shadowed = start(args.bin_dir / "tollgate-proxy", mock.urls["data"], run_dir, "shadow", True)
        path = "/v1/chat/completions"
        rows = run_driver(
            args.bin_dir / "tollgate-load",
            ["--model", "chat", "rate",
             "--target", f"plain={plain.urls['data']}{path}",
             "--target", f"shadow={shadowed.urls['data']}{path}",
             "--rps", str(args.rps), "--duration-s", str(args.phase_s),
             "--rounds", str(args.rounds), "--warmup-s", "2"],
            timeout=2 * (2 + args.rounds * args.phase_s) + 60,
        )
        mirrored = metric_sum(shadowed.urls["admin"], "tollgate_shadow_requests_total")
    finally:
        for p in (shadowed, plain, mock):
            if p is not None:
                p.stop()

    def per_round(target: str, q: str) -> list[float]:
        return [
            r["stats"]["latency_us"][q]
            for r in rows
            if r.get("target") == target and r.get("round") != "all"
        ]

    lines = [
        "# Shadow traffic and the primary's latency",
        "",
        f"- Command: `python3 tests/load/shadow.py --bin-dir target/release` ({args.rounds} rounds x {args.phase_s:g} s per side at {args.rps:g} req/s)",
        *(f"- {k}: {v}" for k, v in machine.items()),
        f"- Mirrors completed on the shadowed proxy: {mirrored:g}",
        "",
        "| | plain p50 (µs) | shadowed p50 (µs) | difference | plain p99 (µs) | shadowed p99 (µs) | difference |",
        "|---|---|---|---|---|---|---|",
    ]
    p50 = (per_round("plain", "p50"), per_round("shadow", "p50"))
    p99 = (per_round("plain", "p99"), per_round("shadow", "p99"))
    for i, (a, b, c, d) in enumerate(zip(p50[0], p50[1], p99[0], p99[1])):
        lines.append(f"| round {i} | {a:.0f} | {b:.0f} | {b - a:+.0f} | {c:.0f} | {d:.0f} | {d - c:+.0f} |")
    med = lambda xs: statistics.median(xs) if xs else float("nan")  # noqa: E731
    d50 = med([b - a for a, b in zip(*p50)])
    d99 = med([b - a for a, b in zip(*p99)])
    lines += ["", f"Median difference per round: p50 {d50:+.0f} µs, p99 {d99:+.0f} µs."]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
