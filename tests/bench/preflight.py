"""The preflight: one request to every contender before the load, checking
that it answers as its upstream does and that its features are really on.

A contender that fails its preflight is reported as not measured instead of
being measured without its feature. What is checked, by contender:

- every one: status 200 and the upstream's reply (the mock's echo, or the
  fixed answer); the email in the reply as sent unless PII is on;
- PII (`tg-pii`, `tg-all`): the email masked in the reply, and a finding
  in the request counted in `/metrics`; with the fixed answer, which holds
  an email of its own, a finding in the answer too;
- budgets: `x-tollgate-budget-remaining-usd`, and the request settled at a
  listed price (`tollgate_budget_spend_usd_total{model="gpt-4o-mini"}`:
  the answer's `usage` and model name were read);
- caches: `x-tollgate-cache: miss` for `tg-all` (a unique seed), a hit on
  the second request for `tg-cache-hit`;
- `tg-1cpu`: one runtime worker, from its start-up log.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.error
import urllib.request

import contenders as cs


def post(url: str, body: dict) -> tuple[int, dict, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST", headers={
        "content-type": "application/json", "authorization": f"Bearer {cs.KEY}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, {}, {"error": err.read().decode(errors="replace")[:300]}


def metric(admin: str, name: str, **labels: str) -> float:
    """The sum of a metric's series that carry `labels`, from `/metrics`."""
    with urllib.request.urlopen(admin + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    total = 0.0
    for m in re.finditer(rf"^{name}(?:\{{([^}}]*)\}})? (\S+)$", text, re.M):
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def eventually(check, timeout_s: float = 5.0) -> bool:
    """Settlement runs after the answer is sent: poll for it."""
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def preflight(started: dict, unavailable: dict, reply_prefix: str, answer_has_pii: bool = False) -> dict:
    """`reply_prefix` starts every upstream reply; `answer_has_pii` when the
    upstream's answer holds PII of its own (the fixed answer)."""
    body = {"model": cs.MODEL, "messages": [{"role": "user", "content": cs.PROMPT}], "temperature": 0}
    out = {}
    for name, c in started.items():
        status, headers, resp = post(c.url, dict(body, seed=987654321) if name == "tg-all" else body)
        reply = (resp.get("choices") or [{}])[0].get("message", {}).get("content", "")
        checks = {"status 200": status == 200, "upstream's reply": reply.startswith(reply_prefix)}
        masked = cs.EMAIL not in reply
        if name in ("tg-pii", "tg-all"):
            checks["email masked"] = masked
            checks["PII found in the request"] = metric(
                c.admin, "tollgate_pii_detections_total", direction="request") > 0
            if answer_has_pii and name == "tg-all":
                checks["PII found in the answer"] = metric(
                    c.admin, "tollgate_pii_detections_total", direction="response") > 0
        elif status == 200:
            checks["email passed as sent"] = not masked
        if name.startswith("tg-budget") or name == "tg-all":
            checks["budget header"] = "x-tollgate-budget-remaining-usd" in headers
            checks["settled at a listed price"] = eventually(
                lambda: metric(c.admin, "tollgate_budget_spend_usd_total", model=cs.MODEL) > 0)
        if name == "tg-all":
            checks["cache miss"] = headers.get("x-tollgate-cache") == "miss"
        if name == "tg-cache-hit":
            _, again, _ = post(c.url, body)
            checks["cache hit"] = again.get("x-tollgate-cache") == "hit"
        if name == "tg-1cpu":
            checks["one worker"] = c.workers == 1
        out[name] = checks
        failed = [k for k, ok in checks.items() if not ok]
        print(f"[bench] preflight {name}: " + ("ok" if not failed else "FAILED " + ", ".join(failed)),
              file=sys.stderr, flush=True)
        if failed:
            unavailable[name] = "preflight failed: " + ", ".join(failed) + (
                f" (status {status}: {resp.get('error', '')})" if status != 200 else "")
    return out
