#!/usr/bin/env python3
"""A real Prometheus (Debian's `prometheus` package) scrapes a running
tollgate-proxy with the chart's rules loaded: the scraped series match the
proxy's own /metrics, recording rules produce series over real data, every
rule evaluates without error, and every dashboard query runs.

    prometheus.py           # needs `prometheus`, helm ($HELM) and target/debug binaries
"""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELM = os.environ.get("HELM", "helm")
PROMETHEUS = os.environ.get("PROMETHEUS", "prometheus")
DEADLINE = 60.0
results = []


def check(name, fn):
    try:
        fn()
        results.append(True)
        print(f"ok   - {name}", flush=True)
    except Exception as e:  # noqa: BLE001
        results.append(False)
        print(f"FAIL - {name}: {e}", flush=True)


def wait_until(what, fn, deadline=DEADLINE):
    end = time.monotonic() + deadline
    last = None
    while time.monotonic() < end:
        try:
            v = fn()
            if v:
                return v
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({last})" if last else ""))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    work = tempfile.mkdtemp(prefix="tollgate-prometheus-")
    rendered = subprocess.run(
        [HELM, "template", "t", os.path.join(ROOT, "charts", "tollgate"), "-n", "tollgate-system",
         "--set", "monitoring.prometheusRule.enabled=true", "--api-versions", "monitoring.coreos.com/v1/PrometheusRule",
         "--show-only", "templates/prometheusrule.yaml"], check=True, capture_output=True, text=True).stdout
    groups = yaml.safe_load(rendered)["spec"]["groups"]
    for g in groups:
        g["interval"] = "1s"  # evaluate fast; the rules themselves are unchanged
    yaml.safe_dump({"groups": groups}, open(os.path.join(work, "rules.yaml"), "w"))

    addr_file = os.path.join(work, "proxy-admin")
    exposition = os.path.join(work, "proxy-metrics.txt")
    proxy = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "chart", "scrape_proxy.py"), exposition,
                              "--keep-running-file", addr_file], stdin=subprocess.PIPE)
    prom = None
    try:
        admin = wait_until("the proxy", lambda: os.path.exists(addr_file) and open(addr_file).read().strip())
        target = urllib.parse.urlparse(admin).netloc
        port = free_port()
        open(os.path.join(work, "prometheus.yml"), "w").write(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{"job_name": "tollgate-proxy", "static_configs": [
                {"targets": [target], "labels": {"namespace": "demo", "pod": "demo-0"}}]}],
        }))
        prom = subprocess.Popen([PROMETHEUS, f"--config.file={work}/prometheus.yml", f"--storage.tsdb.path={work}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "prometheus.log"), "wb"))
        api = f"http://127.0.0.1:{port}/api/v1"

        def get(path, **params):
            url = f"{api}/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
            with urllib.request.urlopen(url, timeout=5) as r:
                return json.load(r)

        def query(q):
            if prom.poll() is not None:
                raise AssertionError(f"prometheus exited: {open(os.path.join(work, 'prometheus.log')).read()[-1500:]}")
            try:
                return get("query", query=q)["data"]["result"]
            except urllib.error.HTTPError as e:
                raise AssertionError(f"{q}: {e.read().decode()[:300]}") from e

        check("Prometheus scrapes the proxy (up == 1)",
              lambda: wait_until("up", lambda: query('up{job="tollgate-proxy"} == 1')))

        def requests_match():
            own = 0.0
            with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as r:
                page = r.read().decode().splitlines()
            for line in page:
                m = re.match(r"tollgate_requests_total\{[^}]*\} (\S+)$", line)
                if m:
                    own += float(m.group(1))
            # No traffic after the scenario: both read the same counters.
            got = wait_until("tollgate_requests_total", lambda: query("sum(tollgate_requests_total)"))
            assert float(got[0]["value"][1]) == own > 0, (got, own)
        check("it answers a query over the scraped series (sum of tollgate_requests_total = the proxy's own)", requests_match)

        def recorded():
            r = wait_until("tollgate:budget_usage_ratio:max", lambda: query("tollgate:budget_usage_ratio:max"))
            assert r[0]["metric"] == {"__name__": "tollgate:budget_usage_ratio:max", "namespace": "demo", "limit": "daily"}, r
            assert 0 < float(r[0]["value"][1]) < 1, r
            wait_until("tollgate:requests:rate5m", lambda: query("tollgate:requests:rate5m"))
        check("recording rules produce series over the scraped data", recorded)

        def rules_healthy():
            def evaluated():
                rs = [r for g in get("rules")["data"]["groups"] for r in g["rules"]]
                return len(rs) == sum(len(g["rules"]) for g in groups) and all(r.get("lastEvaluation", "").startswith("20") for r in rs) and rs
            rs = wait_until("every rule evaluated", evaluated)
            bad = [(r["name"], r.get("lastError")) for r in rs if r["health"] != "ok"]
            assert not bad, bad
        check("every alert and recording rule evaluates without error", rules_healthy)

        def dashboard_queries():
            dash = json.load(open(os.path.join(ROOT, "charts", "tollgate", "files", "dashboards", "tollgate.json")))
            exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
            assert len(exprs) > 15, len(exprs)
            for e in exprs:
                query(e.replace("$namespace", ".*"))
            got = query('sum by (status_class) (tollgate:requests:rate5m{namespace=~".*"})')
            assert got, "the traffic panel's query is empty"
        check("every dashboard query runs on the real Prometheus", dashboard_queries)
    finally:
        if prom:
            prom.terminate()
            prom.wait(15)
        proxy.stdin.close()
        proxy.wait(15)
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if all(results) else 1


sys.exit(main())
