"""Compares Tollgate's recognizers with Microsoft Presidio's analyzer on the
labeled corpus, per entity type both support, and writes a Markdown report.

Presidio runs offline: its spaCy NLP engine loads a blank English pipeline
saved to disk (no NER model, so only its pattern recognizers with their
validators and context words count, as in Tollgate). Its default score
threshold (0) is used; Tollgate runs with its defaults (minScore 0.5).

A prediction counts when its type matches a labeled span that it overlaps by
at least half of the label (the same rule as proxy/src/pii/corpus.rs).

    python tests/pii/compare.py --corpus C --tollgate PRED.jsonl --out REPORT.md [--heldout C2 --tollgate-heldout P2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

# Presidio type -> Tollgate type, for the types both recognize.
SHARED = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "credit_card",
    "US_SSN": "us_ssn",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip_address",
    "MAC_ADDRESS": "mac_address",
}


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def score(gold: list[tuple], pred: list[tuple], counts: dict) -> None:
    used = [False] * len(gold)
    for ps, pe, pt in pred:
        hit = None
        for i, (gs, ge, gt) in enumerate(gold):
            ov = min(pe, ge) - max(ps, gs)
            if not used[i] and gt == pt and ov > 0 and 2 * ov >= ge - gs:
                hit = i
                break
        c = counts[pt]
        if hit is None:
            c["fp"] += 1
        else:
            used[hit] = True
            c["tp"] += 1
    for i, (_, _, gt) in enumerate(gold):
        if not used[i]:
            counts[gt]["fn"] += 1


def metrics(c: dict) -> tuple[float, float]:
    p = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
    r = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
    return p, r


def build_analyzer(model_dir: Path):
    import spacy
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    # Presidio's email validator asks tldextract for the public suffix list;
    # use the snapshot tldextract ships instead of fetching it.
    import tldextract

    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())
    if not (model_dir / "config.cfg").exists():
        spacy.blank("en").to_disk(model_dir)
    provider = NlpEngineProvider(
        nlp_configuration={"nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": str(model_dir)}]}
    )
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=["en"])


def byte_offset(text: str, i: int) -> int:
    return len(text[:i].encode())


def evaluate(corpus: list[dict], tollgate: dict[int, list], analyzer) -> tuple[dict, dict, float]:
    tg = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    pr = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0})
    shared = set(SHARED.values())
    spent = 0.0
    for row in corpus:
        text = row["text"]
        gold = [(s["start"], s["end"], s["type"]) for s in row["spans"] if s["type"] in shared]
        mine = [(s["start"], s["end"], s["type"]) for s in tollgate[row["id"]] if s["type"] in shared]
        t0 = time.perf_counter()
        results = analyzer.analyze(text=text, language="en")
        spent += time.perf_counter() - t0
        theirs = [
            (byte_offset(text, r.start), byte_offset(text, r.end), SHARED[r.entity_type])
            for r in results
            if r.entity_type in SHARED
        ]
        score(gold, mine, tg)
        score(gold, theirs, pr)
    return tg, pr, spent


def table(tg: dict, pr: dict) -> tuple[list[str], list[str]]:
    lines = [
        "| type | labels | Tollgate precision | Tollgate recall | Presidio precision | Presidio recall | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    worse = []
    for ty in sorted(set(SHARED.values())):
        a, b = tg[ty], pr[ty]
        labels = a["tp"] + a["fn"]
        tp_, tr = metrics(a)
        pp, prr = metrics(b)
        ok = tr >= prr and tp_ >= pp
        if not ok:
            worse.append(ty)
        lines.append(
            f"| {ty} | {labels} | {tp_:.4f} | {tr:.4f} | {pp:.4f} | {prr:.4f} | {'match or beat' if ok else 'WORSE'} |"
        )
    return lines, worse


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--tollgate", type=Path, required=True)
    ap.add_argument("--heldout", type=Path)
    ap.add_argument("--tollgate-heldout", type=Path)
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    analyzer = build_analyzer(a.model_dir)
    from importlib.metadata import version

    out = [
        "# PII recognizers: Tollgate vs Presidio",
        "",
        f"Generated by `tests/pii/run.sh`: presidio-analyzer {version('presidio-analyzer')} "
        "with a blank spaCy `en` pipeline from disk (pattern recognizers, validators and context words; no NER model), "
        "default score threshold; Tollgate with its default policy. A prediction counts when its type matches a label "
        "it overlaps by at least half. Only the types both recognize are compared.",
        "",
    ]
    worse_all = []
    runs = [("Tuning corpus (tests/pii/corpus.jsonl, committed; the recognizers were tuned on it)", a.corpus, a.tollgate)]
    if a.heldout and a.tollgate_heldout:
        runs.append(("Held-out corpus (another seed, never used for tuning)", a.heldout, a.tollgate_heldout))
    for title, corpus_path, pred_path in runs:
        corpus = load(corpus_path)
        preds = {row["id"]: row["spans"] for row in load(pred_path)}
        tg, pr, spent = evaluate(corpus, preds, analyzer)
        lines, worse = table(tg, pr)
        worse_all += [f"{w} ({title.split(' (')[0]})" for w in worse]
        out += [f"## {title}", "", f"{len(corpus)} samples; Presidio analysis took {spent:.1f} s ({len(corpus) / spent:.0f} texts/s).", ""]
        out += lines + [""]
    out += ["## Verdict", "", "Tollgate matches or beats Presidio on every shared type." if not worse_all else "Worse than Presidio on: " + ", ".join(worse_all), ""]
    a.out.write_text("\n".join(out))
    print("\n".join(out))
    if worse_all:
        sys.exit(1)


if __name__ == "__main__":
    main()
