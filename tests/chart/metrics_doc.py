#!/usr/bin/env python3
"""The metrics reference in README.md against what the binaries really
export, so a metric cannot be renamed, added or dropped without the docs.

    metrics_doc.py --scope proxy|operator README.md EXPOSITION...

The reference is every README table whose header is
`| Metric | Type | Labels | Meaning |`; a first cell may name several
metrics. The proxy scope covers every name but tollgate_operator_*, the
operator scope those. Both ways: each documented metric is in the scraped
/metrics pages (EXPOSITION files) with the documented type, and each
scraped family is documented. Labels: the names in backticks in the Labels
cell, outside parentheses (those list values), must be exactly the
scraped ones; a cell starting with `…` lists only some of them.
"""
import re
import sys

from metric_names import exposition

HEADER = re.compile(r"^\|\s*Metric\s*\|\s*Type\s*\|\s*Labels\s*\|\s*Meaning\s*\|\s*$")
IGNORED_LABELS = {"le", "quantile"}


def cells(line):
    """A table row's cells; `|` inside backticks does not split."""
    out, cur, code = [], "", False
    for ch in line.strip().strip("|"):
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    out.append(cur.strip())
    return out


def documented(readme):
    """name → (type, label names or None, partial labels?, line number)."""
    out, in_table = {}, False
    for n, line in enumerate(open(readme), 1):
        if HEADER.match(line):
            in_table = True
            continue
        if not in_table or re.match(r"^\|[-| ]+\|$", line.strip()):
            continue
        if not line.startswith("|"):
            in_table = False
            continue
        name_cell, kind, labels = cells(line)[:3]
        names = re.findall(r"`([A-Za-z_:][A-Za-z0-9_:]*)`", name_cell)
        assert names, f"README.md:{n}: no metric name in {name_cell!r}"
        outside = re.sub(r"\([^)]*\)", "", labels)
        label_names = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", outside))
        partial = labels.lstrip().startswith("…")
        for name in names:
            assert name not in out, f"README.md:{n}: {name} documented twice"
            out[name] = (kind.strip(), label_names, partial, n)
    return out


def main():
    args = sys.argv[1:]
    scope = args[args.index("--scope") + 1]
    rest = [a for i, a in enumerate(args) if a != "--scope" and (i == 0 or args[i - 1] != "--scope")]
    readme, expositions = rest[0], rest[1:]
    in_scope = (lambda n: n.startswith("tollgate_operator_")) if scope == "operator" \
        else (lambda n: not n.startswith("tollgate_operator_"))
    docs = {n: d for n, d in documented(readme).items() if in_scope(n)}
    families, types = exposition(expositions)
    # Only our own families: not the process_* ones a client library may add.
    scraped = {n for n in families if in_scope(n) and n.startswith(("tollgate_", "gen_ai_"))}
    problems = []
    for name, (kind, labels, partial, line) in sorted(docs.items()):
        if name not in families:
            problems.append(f"README.md:{line}: {name} is documented but not in the scraped {scope} metrics")
            continue
        if types.get(name) != kind:
            problems.append(f"README.md:{line}: {name} is documented as {kind!r}, exported as {types.get(name)!r}")
        got = families[name] - IGNORED_LABELS
        if partial:
            if not labels <= got:
                problems.append(f"README.md:{line}: {name} has no label(s) {sorted(labels - got)} (has {sorted(got)})")
        elif labels != got:
            problems.append(f"README.md:{line}: {name} labels documented {sorted(labels)}, exported {sorted(got)}")
    for name in sorted(scraped - set(docs)):
        problems.append(f"{name} ({types.get(name)}, labels {sorted(families[name] - IGNORED_LABELS)}) "
                        f"is exported by the {scope} but missing from the README metrics tables")
    for p in problems:
        print(f"FAIL - {p}")
    if not docs:
        problems.append("no metric documented")
        print(f"FAIL - no {scope} metric found in the README tables")
    if not problems:
        print(f"ok   - the README documents exactly the {len(docs)} {scope} metrics exported, with their types and labels")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
