#!/usr/bin/env python3
"""Checks on the rendered rules beyond promtool: every alert has a unit
test where it fires and one where it stays silent, carries severity,
summary, description and runbook_url, and its runbook anchor is a heading
of README.md's Alerts section.

    check_rules.py RULES.yaml TEST.yaml...
"""
import os
import re
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
rules_file, tests = sys.argv[1], sys.argv[2:]
groups = yaml.safe_load(open(rules_file))["groups"]
alerts = {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}
fires, silent = set(), set()
for t in tests:
    for case in yaml.safe_load(open(t))["tests"]:
        for a in case.get("alert_rule_test", []):
            (fires if a.get("exp_alerts") else silent).add(a["alertname"])

readme = open(os.path.join(ROOT, "README.md")).read()
section = readme.split("\n## Alerts\n", 1)
headings = set()
if len(section) == 2:
    body = section[1].split("\n## ", 1)[0]
    headings = {h.strip().lower() for h in re.findall(r"^#### (Tollgate\w+)$", body, re.M)}

problems = []
for name, r in sorted(alerts.items()):
    if name not in fires:
        problems.append(f"{name}: no unit test where it fires")
    if name not in silent:
        problems.append(f"{name}: no unit test where it stays silent")
    if r.get("labels", {}).get("severity") not in ("warning", "critical"):
        problems.append(f"{name}: severity must be warning or critical")
    missing = {"summary", "description", "runbook_url"} - set(r.get("annotations", {}))
    if missing:
        problems.append(f"{name}: missing annotations {sorted(missing)}")
    anchor = r.get("annotations", {}).get("runbook_url", "").rsplit("#", 1)[-1]
    if anchor != name.lower():
        problems.append(f"{name}: runbook_url anchor is #{anchor}, want #{name.lower()}")
    if name.lower() not in headings:
        problems.append(f"{name}: no '#### {name}' runbook under README.md's '## Alerts'")
for h in sorted(headings - {a.lower() for a in alerts}):
    problems.append(f"README.md documents {h}, which is not an alert")
for p in problems:
    print(f"FAIL - {p}")
print(f"{len(alerts)} alerts: every one fires and stays silent in a test, is annotated and has a runbook" if not problems else "")
sys.exit(1 if problems else 0)
