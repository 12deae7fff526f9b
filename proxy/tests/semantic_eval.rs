//! The semantic cache's quality on a labeled set (tests/semantic/pairs.jsonl:
//! paraphrases, and hard negatives — negations, changed numbers, changed
//! entities, swapped roles, opposites), with the built-in MiniLM embedder.
//!
//! For each pair, `a` is stored and `b` looked up, as the proxy does: a hit
//! needs cosine ≥ the threshold and, with the guard, every guard check to
//! pass. Prints the hit rate (on paraphrases) and false-hit rate (on
//! negatives) with and without the guard; fails if false hits at the
//! default threshold with the guard exceed 1%. Writes the table to
//! `$TOLLGATE_SEMANTIC_REPORT` when set (tests/semantic/REPORT.md is made
//! that way).
//!
//! Needs `--features local-embeddings` and `TOLLGATE_MINILM_DIR` (skipped
//! without it unless `TOLLGATE_REQUIRE_MODEL=1`).
#![cfg(feature = "local-embeddings")]

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use tollgate_config::Guard;
use tollgate_proxy::cache::semantic::local::LocalEmbedder;
use tollgate_proxy::cache::semantic::Profile;

#[derive(serde::Deserialize)]
struct Pair {
    a: String,
    b: String,
    same: bool,
    kind: String,
}

struct Scored {
    pair: Pair,
    cosine: f32,
    guard: Result<(), tollgate_proxy::cache::semantic::Check>,
}

#[test]
fn false_hits_stay_under_one_percent() {
    let Ok(dir) = std::env::var("TOLLGATE_MINILM_DIR") else {
        assert!(
            std::env::var("TOLLGATE_REQUIRE_MODEL").is_err(),
            "TOLLGATE_REQUIRE_MODEL is set but TOLLGATE_MINILM_DIR is not"
        );
        eprintln!("TOLLGATE_MINILM_DIR not set: skipped");
        return;
    };
    let model = LocalEmbedder::load(Path::new(&dir), 256).expect("model loads");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/semantic/pairs.jsonl"),
    )
    .unwrap();
    let pairs: Vec<Pair> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(pairs.len() >= 200, "{} pairs", pairs.len());
    let scored: Vec<Scored> = pairs
        .into_iter()
        .map(|pair| {
            let v = model.embed(&[pair.a.clone(), pair.b.clone()]).unwrap();
            let cosine = v[0].iter().zip(&v[1]).map(|(x, y)| x * y).sum();
            let guard = Profile::of([pair.a.as_str()])
                .compare(&Profile::of([pair.b.as_str()]), &Guard::ALL);
            Scored {
                pair,
                cosine,
                guard,
            }
        })
        .collect();

    let mut report = String::new();
    let positives = scored.iter().filter(|s| s.pair.same).count();
    let negatives = scored.len() - positives;
    writeln!(
        report,
        "{} pairs: {positives} paraphrases, {negatives} hard negatives.\n",
        scored.len()
    )
    .unwrap();
    writeln!(
        report,
        "| threshold | guard | hit rate (paraphrases) | false-hit rate (negatives) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    let rate = |threshold: f32, guard: bool, same: bool| -> (usize, usize) {
        let group: Vec<&Scored> = scored.iter().filter(|s| s.pair.same == same).collect();
        let hits = group
            .iter()
            .filter(|s| s.cosine >= threshold && (!guard || s.guard.is_ok()))
            .count();
        (hits, group.len())
    };
    let pct = |(h, n): (usize, usize)| format!("{:.1}% ({h}/{n})", 100.0 * h as f64 / n as f64);
    for threshold in [0.80f32, 0.85, 0.90, 0.95] {
        for guard in [false, true] {
            writeln!(
                report,
                "| {threshold:.2} | {} | {} | {} |",
                if guard { "on" } else { "off" },
                pct(rate(threshold, guard, true)),
                pct(rate(threshold, guard, false)),
            )
            .unwrap();
        }
    }
    // Per kind at the default threshold.
    let mut kinds: BTreeMap<&str, Vec<&Scored>> = BTreeMap::new();
    for s in &scored {
        kinds.entry(s.pair.kind.as_str()).or_default().push(s);
    }
    writeln!(
        report,
        "\nAt 0.95, by kind (hits without guard → with guard):\n"
    )
    .unwrap();
    writeln!(
        report,
        "| kind | pairs | mean cosine | hits, guard off | hits, guard on |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|").unwrap();
    for (kind, group) in &kinds {
        let mean = group.iter().map(|s| s.cosine).sum::<f32>() / group.len() as f32;
        let off = group.iter().filter(|s| s.cosine >= 0.95).count();
        let on = group
            .iter()
            .filter(|s| s.cosine >= 0.95 && s.guard.is_ok())
            .count();
        writeln!(
            report,
            "| {kind} | {} | {mean:.3} | {off} | {on} |",
            group.len()
        )
        .unwrap();
    }
    // What the guard refused among the paraphrases it cost.
    writeln!(report, "\nParaphrases at ≥ 0.80 that the guard refused:\n").unwrap();
    for s in scored
        .iter()
        .filter(|s| s.pair.same && s.cosine >= 0.80 && s.guard.is_err())
    {
        writeln!(
            report,
            "- {:?} / {:?} ({:.3}, {})",
            s.pair.a,
            s.pair.b,
            s.cosine,
            s.guard.unwrap_err().label()
        )
        .unwrap();
    }
    writeln!(
        report,
        "\nNegatives at ≥ 0.80 that the guard let through:\n"
    )
    .unwrap();
    for s in scored
        .iter()
        .filter(|s| !s.pair.same && s.cosine >= 0.80 && s.guard.is_ok())
    {
        writeln!(
            report,
            "- {:?} / {:?} ({:.3}, {})",
            s.pair.a, s.pair.b, s.cosine, s.pair.kind
        )
        .unwrap();
    }
    if report.ends_with("let through:\n\n") {
        report.push_str("(none)\n");
    }
    println!("{report}");
    if let Ok(path) = std::env::var("TOLLGATE_SEMANTIC_REPORT") {
        std::fs::write(path, &report).unwrap();
    }

    let (false_hits, n) = rate(0.95, true, false);
    assert!(
        false_hits as f64 <= 0.01 * n as f64,
        "false hits with the guard at 0.95: {false_hits}/{n}"
    );
    // The guard must not make the cache useless either.
    let (hits, _) = rate(0.95, true, true);
    assert!(hits > 0, "no paraphrase hits at 0.95 with the guard");
}
