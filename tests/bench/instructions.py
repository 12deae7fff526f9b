"""Instructions per request, counted by valgrind's callgrind: the feature
cost of Tollgate measured in a figure that does not drift with the load of
a shared machine.

CPU time per request (what `suite.py` reports) is the target, but on two
shared cores two runs of the same binary differ by ±10 %, more than most
single changes move it. Callgrind counts the instructions the proxy
executes in user space, which is the same for the same binary and traffic
whatever else runs. It does not see the kernel (sockets, wake-ups: most of
the CPU at a fixed rate) nor cache misses, and valgrind hides some CPU
features, so SHA-256 runs its portable code here instead of the SHA
extensions it uses on the real CPU (the cache key's hash looks dearer than
it is). Use it to find and confirm where user-space work goes; judge the
targets with `suite.py`.

    python3 tests/bench/instructions.py                      # routing only and every feature
    python3 tests/bench/instructions.py --contenders tollgate,tg-pii --requests 300
    python3 tests/bench/instructions.py --proxy OLD --proxy NEW   # two builds side by side
    python3 tests/bench/instructions.py --contenders tollgate,tg-traced,tg-trace-unsampled  # Jaeger built

For each contender and proxy binary: start the mock and the proxy under
`valgrind --tool=callgrind`, send warm-up requests (first-use costs:
tokenizer tables, connection pools, lazy statics), zero the counters, send
`--requests` requests at a low fixed rate, dump, and divide. The top
functions by inclusive count are listed with `--top`. Needs valgrind
(Debian's package) and the release binaries.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "load"))
import contenders as cs  # noqa: E402
import procs  # noqa: E402

LISTEN = r"data=(?P<data>http://127\.0\.0\.1:\d+) admin=(?P<admin>http://127\.0\.0\.1:\d+)"


def drive(bin_dir: Path, name: str, url: str, count: int) -> dict:
    """`count` requests at 100 req/s (valgrind runs the proxy ~50× slower)."""
    argv = [str(bin_dir / "tollgate-load"), "--key", cs.KEY, "--prompt", cs.PROMPT, "--temperature", "0",
            "rate", "--target", f"{name}={url}", "--rps", "100", "--duration-s", str(count / 100),
            "--warmup-s", "0", "--timeout-ms", "30000"]
    if name == "tg-all":
        argv += ["--unique-seed", name]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=count / 10 + 120)
    if done.returncode != 0:
        raise RuntimeError(f"tollgate-load exited {done.returncode}: {done.stderr[-2000:]}")
    stats = json.loads(done.stdout.splitlines()[0])["stats"]
    if stats["errors"]:
        raise RuntimeError(f"{name}: {stats['errors']} of {stats['sent']} requests failed")
    return stats


def measure(bin_dir: Path, proxy: Path, name: str, requests: int, warmup: int, work: Path, top: int) -> dict:
    run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=work))
    mock = procs.start_mock(bin_dir / "tollgate-mock", cs.KEY, run_dir)
    jaeger = None
    try:
        what, sections = cs.TOLLGATE[name]
        if sections is None and name.startswith("tg-trace"):
            # The export task runs in the proxy's process, so its work is
            # counted with the requests'.
            jaeger, otlp_port = cs.start_jaeger(run_dir)
            sections = cs.TRACING.format(port=otlp_port, ratio=1 if name == "tg-traced" else 0)
        elif sections is None:
            raise SystemExit(f"{name} needs a redis-server; not measured here")
        config = run_dir / "proxy.yaml"
        config.write_text(procs.PROXY_CONFIG.format(mock_url=mock.urls["data"]) + sections)
        out = run_dir / "callgrind.out"
        argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(proxy), "run",
                "--config", str(config)]
        p = procs._start(name, argv, LISTEN, run_dir,
                         env=dict(os.environ, TG_BENCH_KEY=cs.KEY, TOLLGATE_PRINT_ADDRS="1"))
        try:
            procs.wait_http_ok(p.urls["admin"] + "/readyz", timeout_s=120)
            url = p.urls["data"] + "/v1/chat/completions"
            drive(bin_dir, name, url, warmup)
            subprocess.run(["callgrind_control", "--zero", str(p.pid)], check=True, capture_output=True)
            sent = drive(bin_dir, name, url, requests)["sent"]
            subprocess.run(["callgrind_control", "--dump", str(p.pid)], check=True, capture_output=True)
        finally:
            p.stop()
        dumps = sorted(run_dir.glob("callgrind.out.*"), key=lambda f: f.stat().st_mtime)
        if not dumps:
            raise RuntimeError(f"{name}: callgrind wrote no dump")
        text = dumps[-1].read_text(errors="replace")
        total = int(re.search(r"^summary:\s*(\d+)", text, re.M).group(1))
        return {"contender": name, "proxy": str(proxy), "what": what, "requests": sent,
                "instructions_per_request": total / sent, "top": top_functions(dumps[-1], sent, top)}
    finally:
        mock.stop()
        if jaeger:
            jaeger.stop()


def top_functions(dump: Path, requests: int, n: int) -> list[tuple[str, float]]:
    """The proxy's own functions by inclusive instructions per request."""
    if n <= 0:
        return []
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(dump)],
                          capture_output=True, text=True).stdout
    rows = []
    for line in text.splitlines():
        m = re.match(r"^\s*([0-9,]+)\s+(?:\([^)]*\)\s+)?\S*?:(tollgate_\S+)", line)
        if m and "{{closure}}" not in m.group(2):
            rows.append((m.group(2), int(m.group(1).replace(",", "")) / requests))
    seen, out = set(), []
    for name, v in rows:
        if name not in seen:
            seen.add(name)
            out.append((name, v))
    return out[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", type=Path, default=HERE.parents[1] / "target" / "release")
    ap.add_argument("--proxy", type=Path, action="append",
                    help="tollgate-proxy binary (repeat to compare builds; default BIN_DIR/tollgate-proxy)")
    ap.add_argument("--contenders", default="tollgate,tg-all")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--top", type=int, default=0, help="list the N dearest Tollgate functions")
    args = ap.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is missing (apt-get install valgrind)")
    proxies = args.proxy or [args.bin_dir / "tollgate-proxy"]
    names = args.contenders.split(",")
    results = []
    with tempfile.TemporaryDirectory(prefix="tg-instructions-") as work:
        for proxy in proxies:
            for name in names:
                r = measure(args.bin_dir, proxy, name, args.requests, args.warmup, Path(work), args.top)
                results.append(r)
                print(f"{proxy}  {name:14} {r['instructions_per_request'] / 1000:8.1f} k instructions/request",
                      flush=True)
                for fn, v in r["top"]:
                    print(f"    {v / 1000:8.1f} k  {fn}")
    for proxy in proxies:
        base = next((r for r in results if r["proxy"] == str(proxy) and r["contender"] == names[0]), None)
        for r in results:
            if base and r["proxy"] == str(proxy) and r is not base:
                ratio = r["instructions_per_request"] / base["instructions_per_request"]
                print(f"{proxy}  {r['contender']} / {names[0]}: {ratio:.2f}×")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
