#!/usr/bin/env python3
"""The chart README's "All values" table, generated from values.yaml.

Every value in charts/tollgate/values.yaml carries a `# --` comment in
helm-docs' format: a comment block whose first line starts with `# --`,
directly above the key it documents (continuation lines are plain `#`
lines). This script reads those comments, takes each documented key's
default from the parsed YAML, infers its type as helm-docs does, and writes
one table between the `<!-- values:start -->` and `<!-- values:end -->`
markers of charts/tollgate/README.md.

    python3 tests/chart/values_doc.py           # check: fails with a diff when the README drifted
    python3 tests/chart/values_doc.py --write   # rewrite the table

check_chart.py runs the check, so CI fails when a value or its comment
changes without the README.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(ROOT, "charts", "tollgate")
START, END = "<!-- values:start -->", "<!-- values:end -->"


def documented(text: str) -> list[tuple[str, str]]:
    """(dotted key, description) for every key under a `# --` block, in file order."""
    out, stack, block = [], [], None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("# --"):
            block = [s[4:].strip()]
            continue
        if s.startswith("#"):
            if block is not None:
                block.append(s[1:].strip())
            continue
        m = re.match(r"^( *)([A-Za-z0-9_]+):", line)
        if not m:
            block = None
            continue
        indent = len(m.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m.group(2)))
        if block is not None:
            out.append((".".join(k for _, k in stack), " ".join(p for p in block if p)))
        block = None
    return out


def lookup(values: dict, path: str):
    node = values
    for k in path.split("."):
        node = node[k]
    return node


def type_of(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "object"
    return "null" if v is None else type(v).__name__


def cell(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def table() -> str:
    text = open(os.path.join(CHART, "values.yaml")).read()
    values = yaml.safe_load(text)
    rows = ["| Key | Type | Default | Description |", "|---|---|---|---|"]
    for path, desc in documented(text):
        v = lookup(values, path)
        default = json.dumps(v, separators=(", ", ": "))
        rows.append(f"| `{path}` | {type_of(v)} | `{cell(default)}` | {cell(desc)} |")
    return "\n".join(rows) + "\n"


def rendered(readme: str) -> str:
    if START not in readme or END not in readme:
        raise SystemExit(f"charts/tollgate/README.md lacks the {START} / {END} markers")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table()}{END}{tail}"


def main() -> int:
    path = os.path.join(CHART, "README.md")
    readme = open(path).read()
    want = rendered(readme)
    if "--write" in sys.argv[1:]:
        if want != readme:
            open(path, "w").write(want)
            print("charts/tollgate/README.md: values table rewritten")
        return 0
    if want != readme:
        diff = difflib.unified_diff(readme.splitlines(), want.splitlines(), "README.md", "generated", lineterm="")
        print("\n".join(diff))
        print("charts/tollgate/README.md is out of date: run python3 tests/chart/values_doc.py --write",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
