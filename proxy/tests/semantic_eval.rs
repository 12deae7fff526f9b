//! The semantic cache's quality on a labeled set of prompt pairs:
//! paraphrases, and hard negatives (negations, changed numbers, units and
//! entities, swapped roles, opposites, …), with the built-in MiniLM
//! embedder. The set has two parts:
//!
//! - tests/semantic/pairs.jsonl, the tuning part: the pairs the guard's
//!   rules and word lists have been looked at against;
//! - tests/semantic/heldout.jsonl, the held-out part: never used for
//!   tuning. Some kinds appear only here; the kinds both parts share are
//!   split by pair.
//!
//! For each pair, `a` is stored and `b` looked up, as the proxy does: a hit
//! needs cosine ≥ the threshold and, with the guard, every guard check to
//! pass. Prints, for the tuning part, the held-out part and both, the hit
//! rate (on paraphrases) and false-hit rate (on negatives) with and without
//! the guard, per kind at the default threshold, and the held-out false
//! hits by kind. Fails if false hits at the default threshold with the
//! guard exceed 1% on the tuning part; the held-out part is measured, not
//! held to a target. Also fails if the set shrinks (≥ 600 pairs, at least a
//! third held out, ≥ 4 kinds only in the held-out part). Writes the report
//! to `$TOLLGATE_SEMANTIC_REPORT` when set (tests/semantic/REPORT.md is made
//! from it).
//!
//! Needs `--features local-embeddings` and `TOLLGATE_MINILM_DIR` (skipped
//! without it unless `TOLLGATE_REQUIRE_MODEL=1`).
#![cfg(feature = "local-embeddings")]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use tollgate_config::Guard;
use tollgate_proxy::cache::semantic::local::LocalEmbedder;
use tollgate_proxy::cache::semantic::{Check, Profile};

/// The default threshold of a route.
const DEFAULT: f32 = 0.95;
const THRESHOLDS: [f32; 5] = [0.80, 0.85, 0.90, 0.95, 0.97];

#[derive(serde::Deserialize)]
struct Pair {
    a: String,
    b: String,
    same: bool,
    kind: String,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Tuning,
    HeldOut,
}

struct Scored {
    pair: Pair,
    part: Part,
    cosine: f32,
    guard: Result<(), Check>,
}

impl Scored {
    fn hit(&self, threshold: f32, guard: bool) -> bool {
        self.cosine >= threshold && (!guard || self.guard.is_ok())
    }
}

fn load(file: &str) -> Vec<Pair> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/semantic")
        .join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{file}: {e}: {l}")))
        .collect()
}

/// Hits among the paraphrases (`same`) or the negatives of `group`.
fn rate(group: &[&Scored], threshold: f32, guard: bool, same: bool) -> (usize, usize) {
    let of: Vec<&&Scored> = group.iter().filter(|s| s.pair.same == same).collect();
    let hits = of.iter().filter(|s| s.hit(threshold, guard)).count();
    (hits, of.len())
}

fn pct((h, n): (usize, usize)) -> String {
    if n == 0 {
        return "– (0/0)".into();
    }
    format!("{:.1}% ({h}/{n})", 100.0 * h as f64 / n as f64)
}

fn kinds<'a>(group: &[&'a Scored]) -> BTreeMap<&'a str, Vec<&'a Scored>> {
    let mut kinds: BTreeMap<&str, Vec<&Scored>> = BTreeMap::new();
    for s in group {
        kinds.entry(s.pair.kind.as_str()).or_default().push(s);
    }
    kinds
}

/// Rates per threshold, guard off and on.
fn threshold_table(report: &mut String, group: &[&Scored]) {
    let positives = group.iter().filter(|s| s.pair.same).count();
    writeln!(
        report,
        "{} pairs: {positives} paraphrases, {} hard negatives, {} kinds.\n",
        group.len(),
        group.len() - positives,
        kinds(group).len()
    )
    .unwrap();
    writeln!(
        report,
        "| threshold | guard | hit rate (paraphrases) | false-hit rate (negatives) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    for threshold in THRESHOLDS {
        for guard in [false, true] {
            writeln!(
                report,
                "| {threshold:.2} | {} | {} | {} |",
                if guard { "on" } else { "off" },
                pct(rate(group, threshold, guard, true)),
                pct(rate(group, threshold, guard, false)),
            )
            .unwrap();
        }
    }
}

/// Per kind at the default threshold; `only` marks kinds of this part alone.
fn kind_table(report: &mut String, group: &[&Scored], only: &BTreeSet<&str>) {
    writeln!(
        report,
        "\nAt {DEFAULT:.2}, by kind (\"served\" is a hit for a paraphrase kind, a \
         false hit for a negative kind){}:\n",
        if only.is_empty() {
            ""
        } else {
            "; * marks the kinds found only in the held-out part"
        }
    )
    .unwrap();
    writeln!(
        report,
        "| kind | pairs | mean cosine | served, guard off | served, guard on |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|").unwrap();
    for (kind, of) in kinds(group) {
        let mean = of.iter().map(|s| s.cosine).sum::<f32>() / of.len() as f32;
        let off = of.iter().filter(|s| s.hit(DEFAULT, false)).count();
        let on = of.iter().filter(|s| s.hit(DEFAULT, true)).count();
        let mark = if only.contains(kind) { " *" } else { "" };
        let label = if of[0].pair.same {
            format!("{kind}{mark} (paraphrase)")
        } else {
            format!("{kind}{mark}")
        };
        writeln!(
            report,
            "| {label} | {} | {mean:.3} | {off} | {on} |",
            of.len()
        )
        .unwrap();
    }
}

/// The paraphrases the guard refused and the negatives it let through,
/// at ≥ 0.80.
fn guard_lists(report: &mut String, group: &[&Scored]) {
    writeln!(report, "\nParaphrases at ≥ 0.80 that the guard refused:\n").unwrap();
    let mut any = false;
    for s in group
        .iter()
        .filter(|s| s.pair.same && s.cosine >= 0.80 && s.guard.is_err())
    {
        any = true;
        writeln!(
            report,
            "- {:?} / {:?} ({:.3}, {}; {})",
            s.pair.a,
            s.pair.b,
            s.cosine,
            s.pair.kind,
            s.guard.unwrap_err().label()
        )
        .unwrap();
    }
    if !any {
        report.push_str("(none)\n");
    }
    writeln!(
        report,
        "\nNegatives at ≥ 0.80 that the guard let through:\n"
    )
    .unwrap();
    let mut through: Vec<&&Scored> = group
        .iter()
        .filter(|s| !s.pair.same && s.cosine >= 0.80 && s.guard.is_ok())
        .collect();
    through.sort_by(|x, y| y.cosine.total_cmp(&x.cosine));
    for s in &through {
        writeln!(
            report,
            "- {:?} / {:?} ({:.3}, {})",
            s.pair.a, s.pair.b, s.cosine, s.pair.kind
        )
        .unwrap();
    }
    if through.is_empty() {
        report.push_str("(none)\n");
    }
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

    let tuning = load("pairs.jsonl");
    let heldout = load("heldout.jsonl");
    // The set must not shrink silently, and the held-out part must stay a
    // real one: a third of the pairs, kinds of its own, no pair of the
    // tuning part.
    let total = tuning.len() + heldout.len();
    assert!(total >= 600, "{total} pairs (at least 600)");
    assert!(
        3 * heldout.len() >= total,
        "held-out part: {} of {total} pairs (at least a third)",
        heldout.len()
    );
    let tuning_kinds: BTreeSet<&str> = tuning.iter().map(|p| p.kind.as_str()).collect();
    let heldout_kinds: BTreeSet<&str> = heldout.iter().map(|p| p.kind.as_str()).collect();
    let only: BTreeSet<&str> = heldout_kinds.difference(&tuning_kinds).copied().collect();
    assert!(
        only.len() >= 4,
        "kinds only in the held-out part: {only:?} (at least 4)"
    );
    assert!(
        heldout_kinds.len() > only.len(),
        "the held-out part shares no kind with the tuning part"
    );
    let key = |p: &Pair| (p.a.to_lowercase(), p.b.to_lowercase());
    let tuning_keys: BTreeSet<_> = tuning.iter().map(key).collect();
    for p in &heldout {
        assert!(
            !tuning_keys.contains(&key(p)),
            "in both parts: {:?} / {:?}",
            p.a,
            p.b
        );
    }
    // A kind is either paraphrases or negatives, never both.
    let mut same_of: BTreeMap<&str, bool> = BTreeMap::new();
    for p in tuning.iter().chain(&heldout) {
        let same = *same_of.entry(p.kind.as_str()).or_insert(p.same);
        assert_eq!(
            same, p.same,
            "kind {:?} mixes paraphrases and negatives",
            p.kind
        );
    }
    let only: BTreeSet<String> = only.into_iter().map(String::from).collect();

    let model = LocalEmbedder::load(Path::new(&dir), 256).expect("model loads");
    let scored: Vec<Scored> = tuning
        .into_iter()
        .map(|p| (p, Part::Tuning))
        .chain(heldout.into_iter().map(|p| (p, Part::HeldOut)))
        .map(|(pair, part)| {
            let v = model.embed(&[pair.a.clone(), pair.b.clone()]).unwrap();
            let cosine = v[0].iter().zip(&v[1]).map(|(x, y)| x * y).sum();
            let guard = Profile::of([pair.a.as_str()])
                .compare(&Profile::of([pair.b.as_str()]), &Guard::ALL);
            Scored {
                pair,
                part,
                cosine,
                guard,
            }
        })
        .collect();
    let of = |part: Part| -> Vec<&Scored> { scored.iter().filter(|s| s.part == part).collect() };
    let tuning = of(Part::Tuning);
    let heldout = of(Part::HeldOut);
    let all: Vec<&Scored> = scored.iter().collect();
    let only: BTreeSet<&str> = only.iter().map(String::as_str).collect();

    let mut report = String::new();
    writeln!(
        report,
        "{} pairs in all: {} in the tuning part (`pairs.jsonl`), {} held out \
         (`heldout.jsonl`, {:.0}%); {} kinds, {} of them only in the held-out part.\n",
        all.len(),
        tuning.len(),
        heldout.len(),
        100.0 * heldout.len() as f64 / all.len() as f64,
        kinds(&all).len(),
        only.len()
    )
    .unwrap();

    writeln!(report, "### Held-out part (never used for tuning)\n").unwrap();
    threshold_table(&mut report, &heldout);
    writeln!(
        report,
        "\nHeld-out false hits by kind at {DEFAULT:.2} (* only in the held-out part):\n"
    )
    .unwrap();
    writeln!(
        report,
        "| kind | negatives | false hits, guard off | false hits, guard on |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    let mut negatives = (0, 0, 0);
    for (kind, of) in kinds(&heldout)
        .into_iter()
        .filter(|(_, of)| !of[0].pair.same)
    {
        let off = of.iter().filter(|s| s.hit(DEFAULT, false)).count();
        let on = of.iter().filter(|s| s.hit(DEFAULT, true)).count();
        negatives = (negatives.0 + of.len(), negatives.1 + off, negatives.2 + on);
        writeln!(
            report,
            "| {kind}{} | {} | {} | {} |",
            if only.contains(kind) { " *" } else { "" },
            of.len(),
            pct((off, of.len())),
            pct((on, of.len()))
        )
        .unwrap();
    }
    writeln!(
        report,
        "| **all** | {} | {} | {} |",
        negatives.0,
        pct((negatives.1, negatives.0)),
        pct((negatives.2, negatives.0))
    )
    .unwrap();
    kind_table(&mut report, &heldout, &only);
    guard_lists(&mut report, &heldout);

    writeln!(report, "\n### Tuning part\n").unwrap();
    threshold_table(&mut report, &tuning);
    kind_table(&mut report, &tuning, &BTreeSet::new());
    guard_lists(&mut report, &tuning);

    writeln!(report, "\n### Both parts together\n").unwrap();
    threshold_table(&mut report, &all);

    println!("{report}");
    if let Ok(path) = std::env::var("TOLLGATE_SEMANTIC_REPORT") {
        std::fs::write(path, &report).unwrap();
    }

    // The target holds on the tuning part only; the held-out part is a
    // measurement.
    let (false_hits, n) = rate(&tuning, DEFAULT, true, false);
    assert!(
        false_hits as f64 <= 0.01 * n as f64,
        "false hits with the guard at {DEFAULT} on the tuning part: {false_hits}/{n}"
    );
    // The guard must not make the cache useless either.
    let (hits, _) = rate(&tuning, DEFAULT, true, true);
    assert!(hits > 0, "no paraphrase hits at {DEFAULT} with the guard");
}
