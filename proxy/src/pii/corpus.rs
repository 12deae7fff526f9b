//! Precision and recall on the labeled corpus (`tests/pii/corpus.jsonl`,
//! made by `tests/pii/generate.py`), against the targets: recall ≥ 0.99
//! for validator-backed types (cards, IBANs, SSNs), ≥ 0.95 for the rest,
//! precision ≥ 0.98 for every type, hard negatives included.
//!
//! A prediction counts when its type matches a labeled span that it
//! overlaps by at least half of the label. With `TOLLGATE_PII_PREDICTIONS`
//! set, predictions are written there (JSONL) for the Presidio comparison
//! (`tests/pii/run.sh`).

use std::collections::BTreeMap;
use std::io::Write;

use serde_json::Value;

use super::fixtures::default_engine;

#[derive(Default, Debug, Clone, Copy)]
pub(super) struct Counts {
    pub tp: u32,
    pub fp: u32,
    pub fn_: u32,
}

impl Counts {
    pub(super) fn precision(&self) -> f64 {
        let d = self.tp + self.fp;
        if d == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(d)
        }
    }

    pub(super) fn recall(&self) -> f64 {
        let d = self.tp + self.fn_;
        if d == 0 {
            1.0
        } else {
            f64::from(self.tp) / f64::from(d)
        }
    }
}

/// (start, end, type) spans.
type Spans = Vec<(usize, usize, String)>;

/// Adds one sample's outcome to `counts`.
pub(super) fn score(gold: &Spans, predicted: &Spans, counts: &mut BTreeMap<String, Counts>) {
    let mut used = vec![false; gold.len()];
    for (ps, pe, pt) in predicted {
        let hit = gold.iter().enumerate().position(|(i, (gs, ge, gt))| {
            !used[i]
                && gt == pt
                && ps.max(gs) < pe.min(ge)
                && 2 * (pe.min(ge) - ps.max(gs)) >= ge - gs
        });
        let c = counts.entry(pt.clone()).or_default();
        match hit {
            Some(i) => {
                used[i] = true;
                c.tp += 1;
            }
            None => c.fp += 1,
        }
    }
    for (i, (_, _, gt)) in gold.iter().enumerate() {
        if !used[i] {
            counts.entry(gt.clone()).or_default().fn_ += 1;
        }
    }
}

#[test]
fn corpus_meets_the_targets() {
    // `TOLLGATE_PII_CORPUS` evaluates another corpus (a held-out seed) and
    // only reports.
    let other = std::env::var("TOLLGATE_PII_CORPUS").ok();
    let path = other.clone().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/pii/corpus.jsonl").into()
    });
    let text =
        std::fs::read_to_string(&path).expect("tests/pii/corpus.jsonl (run tests/pii/generate.py)");
    let e = default_engine();
    let mut counts: BTreeMap<String, Counts> = BTreeMap::new();
    let mut out = std::env::var_os("TOLLGATE_PII_PREDICTIONS")
        .map(|p| std::fs::File::create(p).expect("predictions file"));
    let mut misses: Vec<String> = Vec::new();
    for line in text.lines() {
        let row: Value = serde_json::from_str(line).expect("corpus line is JSON");
        let t = row["text"].as_str().expect("text");
        let gold: Spans = row["spans"]
            .as_array()
            .expect("spans")
            .iter()
            .map(|s| {
                (
                    s["start"].as_u64().unwrap() as usize,
                    s["end"].as_u64().unwrap() as usize,
                    s["type"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let predicted: Spans = e
            .scanner
            .scan(t)
            .iter()
            .map(|f| (f.start, f.end, e.name(f.entity).to_string()))
            .collect();
        let mut one = BTreeMap::new();
        score(&gold, &predicted, &mut one);
        if one.values().any(|c| c.fp > 0 || c.fn_ > 0) && misses.len() < 400 {
            misses.push(format!("{t:?}\n    gold {gold:?}\n    got  {predicted:?}"));
        }
        for (k, c) in one {
            let all = counts.entry(k).or_default();
            all.tp += c.tp;
            all.fp += c.fp;
            all.fn_ += c.fn_;
        }
        if let Some(f) = out.as_mut() {
            let spans: Vec<Value> = predicted
                .iter()
                .map(|(s, e, t)| serde_json::json!({"start": s, "end": e, "type": t}))
                .collect();
            writeln!(
                f,
                "{}",
                serde_json::json!({"id": row["id"], "spans": spans})
            )
            .expect("write");
        }
    }
    let mut failures = Vec::new();
    println!(
        "{:<16} {:>6} {:>5} {:>5} {:>9} {:>7}",
        "type", "tp", "fp", "fn", "precision", "recall"
    );
    for (ty, c) in &counts {
        println!(
            "{ty:<16} {:>6} {:>5} {:>5} {:>9.4} {:>7.4}",
            c.tp,
            c.fp,
            c.fn_,
            c.precision(),
            c.recall()
        );
        let want_recall = if matches!(ty.as_str(), "credit_card" | "iban" | "us_ssn") {
            0.99
        } else {
            0.95
        };
        if c.recall() < want_recall || c.precision() < 0.98 {
            failures.push(format!(
                "{ty}: precision {:.4}, recall {:.4}",
                c.precision(),
                c.recall()
            ));
        }
    }
    if other.is_some() {
        return;
    }
    if !failures.is_empty() {
        for m in &misses {
            println!("{m}");
        }
    }
    assert!(failures.is_empty(), "below target: {failures:#?}");
}
