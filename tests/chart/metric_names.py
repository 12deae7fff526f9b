#!/usr/bin/env python3
"""Every metric an alert, recording rule or dashboard panel reads must be
one the proxy or operator really exports, with the labels it matches on;
so a renamed metric or label fails CI instead of silencing an alert.

    metric_names.py --scope proxy|operator RULES.yaml DASHBOARD.json EXPOSITION...

EXPOSITION files are /metrics pages scraped from running processes. The
proxy scope checks every name except tollgate_operator_*; the operator
scope checks those. Recording rules (names with ':') must be recorded by
RULES; `up` is Prometheus' own.
"""
import json
import re
import sys

import yaml

KEYWORDS = {"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
            "count_values", "group", "by", "without", "on", "ignoring", "group_left", "group_right",
            "and", "or", "unless", "bool", "offset", "inf", "nan"}
TARGET_LABELS = {"namespace", "pod", "job", "instance", "le"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")


def selectors(expr):
    """(metric name, [matched label names]) for each selector in a PromQL expression."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", e)
    out = []
    for m in re.finditer(r"(?<![0-9.$A-Za-z_:])([A-Za-z_:][A-Za-z0-9_:]*)\s*(\{[^}]*\})?", e):
        name, matchers = m.group(1), m.group(2) or ""
        if e[m.end():].lstrip().startswith("(") and not matchers:
            continue  # a function or an aggregation
        if name.lower() in KEYWORDS:
            continue
        out.append((name, re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers)))
    return out


def exposition(paths):
    """family → set of label names seen, from `# TYPE` and sample lines."""
    families, types = {}, {}
    for p in paths:
        for line in open(p):
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split()
                types[name] = kind
                families.setdefault(name, set())
            elif line and not line.startswith("#"):
                m = re.match(r"([A-Za-z_:][A-Za-z0-9_:]*)(\{([^}]*)\})?", line)
                if not m:
                    continue
                name = m.group(1)
                for suf in HIST_SUFFIXES:
                    if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
                        name = name[: -len(suf)]
                labels = set(re.findall(r'([A-Za-z_][A-Za-z0-9_]*)="', m.group(3) or ""))
                families.setdefault(name, set()).update(labels)
    return families, types


def main():
    args = sys.argv[1:]
    scope = args[args.index("--scope") + 1]
    rest = [a for i, a in enumerate(args) if a != "--scope" and (i == 0 or args[i - 1] != "--scope")]
    rules_file, dashboard_file, expositions = rest[0], rest[1], rest[2:]
    groups = yaml.safe_load(open(rules_file))["groups"]
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    used = []  # (where, expr)
    for g in groups:
        for r in g["rules"]:
            used.append((r.get("alert") or r.get("record"), r["expr"]))

    def panel_exprs(panels):
        for p in panels:
            yield from panel_exprs(p.get("panels", []))
            for t in p.get("targets", []):
                yield f"dashboard: {p['title']}", t["expr"]
    dash = json.load(open(dashboard_file))
    used += list(panel_exprs(dash["panels"]))
    for v in dash.get("templating", {}).get("list", []):
        q = v.get("query")
        if isinstance(q, dict):
            m = re.match(r"label_values\((.*),\s*\w+\)$", q["query"])
            if m:
                used.append((f"dashboard variable {v['name']}", m.group(1)))

    families, types = exposition(expositions)
    problems, checked = [], set()
    for where, expr in used:
        sels = selectors(expr)
        raw = {n for n, _ in sels if ":" not in n and n != "up"}
        grouped = set()
        for clause in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            grouped |= {x.strip() for x in clause.split(",") if x.strip()}
        for name, labels in sels:
            if ":" in name:
                if name not in recorded:
                    problems.append(f"{where}: {name} is not a recording rule of the chart")
                continue
            if name == "up":
                continue
            is_operator = name.startswith("tollgate_operator_")
            if (scope == "operator") != is_operator:
                continue
            base = name
            for suf in HIST_SUFFIXES:
                if name.endswith(suf) and types.get(name[: -len(suf)]) == "histogram":
                    base = name[: -len(suf)]
            if base not in families:
                problems.append(f"{where}: {name} is not exported by the running {scope}")
                continue
            if base != name and types.get(base) != "histogram":
                problems.append(f"{where}: {name}: {base} is not a histogram")
            # Grouping labels of a one-metric expression (every recording rule).
            if len(raw) == 1:
                labels = labels + sorted(grouped)
            for label in labels:
                if label not in TARGET_LABELS and label not in families[base]:
                    problems.append(f"{where}: {name} has no label {label!r} (has {sorted(families[base])})")
            checked.add(name)
    for p in problems:
        print(f"FAIL - {p}")
    if not checked:
        problems.append("no metric checked")
        print(f"FAIL - no {scope} metric used by the rules or dashboard was checked")
    if not problems:
        print(f"ok   - {len(checked)} {scope} metric names used by the rules and dashboard are exported: {' '.join(sorted(checked))}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
