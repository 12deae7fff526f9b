//! Calibration: how a route's semantic settings do on a platform team's own
//! labelled pairs, before they serve anyone.
//!
//! `tollgate-proxy calibrate --config FILE --route NAME --pairs PAIRS.jsonl`
//! embeds both prompts of every pair with the route's embedder (the same
//! call, credentials and model the proxy would use), scores them as a
//! one-message lookup does (cosine of the two vectors, then the route's
//! guard checks), and prints per threshold the hit rate on pairs labelled
//! `same: true` and the false-hit rate on the rest, with the guard and
//! without, and the false hits by `kind` at the route's own threshold.
//! Online verification is not modelled: it bounds what this misses.

use std::collections::BTreeMap;
use std::fmt::Write;

use http::HeaderValue;
use tollgate_config::{Guard, RouteSemantic};

use super::{EmbedError, Profile, Upstream};
use crate::state::Runtime;

/// One labelled pair: `b` looked up after `a` was stored.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Pair {
    pub a: String,
    pub b: String,
    /// Whether one answer may serve both.
    pub same: bool,
    /// What kind of pair (`paraphrase`, `negation`, `number`, ...); free text.
    #[serde(default)]
    pub kind: String,
}

/// A pair as the route sees it.
#[derive(Debug, Clone)]
pub struct Scored {
    pub same: bool,
    pub kind: String,
    pub cosine: f32,
    /// The guard check that refused it, if one did.
    pub refused_by: Option<&'static str>,
}

/// Why calibration could not run.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error("route `{0}` has no semantic cache (cache.routes[].semantic)")]
    NoSemantic(String),
    #[error("pairs line {line}: {reason}")]
    Pairs { line: usize, reason: String },
    #[error("no pairs")]
    Empty,
    #[error("embedding failed")]
    Embed(#[source] EmbedError),
}

/// Reads JSON lines of [`Pair`]s (blank lines skipped).
pub fn parse_pairs(text: &str) -> Result<Vec<Pair>, CalibrateError> {
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if l.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(l).map_err(|e| CalibrateError::Pairs {
            line: i + 1,
            reason: e.to_string(),
        })?);
    }
    if out.is_empty() {
        return Err(CalibrateError::Empty);
    }
    Ok(out)
}

/// Pairs embedded per call to the embedder.
const BATCH: usize = 16;

/// Scores `pairs` with `route`'s embedder and guard.
pub async fn score(
    rt: &Runtime,
    route: &str,
    pairs: &[Pair],
) -> Result<(RouteSemantic, Vec<Scored>), CalibrateError> {
    let cfg = rt.cache.config();
    let rs = *cfg
        .semantic_for(Some(route))
        .ok_or_else(|| CalibrateError::NoSemantic(route.to_string()))?;
    let up = Upstream {
        providers: &rt.config.providers,
        credentials: &rt.credentials,
        client: &rt.client,
    };
    let id = HeaderValue::from_static("tollgate-calibrate");
    let embedder = &rt.cache.semantic().embedders[rs.embedder];
    let mut out = Vec::with_capacity(pairs.len());
    for chunk in pairs.chunks(BATCH) {
        let texts: Vec<&str> = chunk
            .iter()
            .flat_map(|p| [p.a.as_str(), p.b.as_str()])
            .collect();
        let vectors = embedder
            .embed(&up, &texts, &id)
            .await
            .map_err(CalibrateError::Embed)?;
        for (p, v) in chunk.iter().zip(vectors.chunks(2)) {
            let cosine = super::vector::similarity(&v[0], &v[1]);
            let refused_by = Profile::of([p.a.as_str()])
                .compare(&Profile::of([p.b.as_str()]), &rs.guard)
                .err()
                .map(|c| c.label());
            out.push(Scored {
                same: p.same,
                kind: p.kind.clone(),
                cosine,
                refused_by,
            });
        }
    }
    Ok((rs, out))
}

/// The table: per threshold, hits on `same` pairs and false hits on the
/// others, with the route's guard and without; then the false hits by kind
/// at the route's threshold.
pub fn report(route: &str, rs: &RouteSemantic, scored: &[Scored], thresholds: &[f32]) -> String {
    let same = scored.iter().filter(|s| s.same).count();
    let other = scored.len() - same;
    let guard_on = rs.guard != Guard::NONE;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "route `{route}`: {} pairs, {same} the same request, {other} not; threshold {:.2}, guard {}\n",
        scored.len(),
        rs.threshold,
        if guard_on { "on" } else { "off" }
    );
    let _ = writeln!(
        out,
        "| threshold | guard | hit rate (same) | false-hit rate (not the same) |\n|---|---|---|---|"
    );
    let rate = |n: usize, of: usize| {
        if of == 0 {
            "–".to_string()
        } else {
            format!("{:.1}% ({n}/{of})", 100.0 * n as f64 / of as f64)
        }
    };
    for &t in thresholds {
        for guard in [false, true] {
            if guard && !guard_on {
                continue;
            }
            let served = |s: &&Scored| s.cosine >= t && (!guard || s.refused_by.is_none());
            let hits = scored.iter().filter(|s| s.same).filter(served).count();
            let false_hits = scored.iter().filter(|s| !s.same).filter(served).count();
            let _ = writeln!(
                out,
                "| {t:.2} | {} | {} | {} |",
                if guard { "on" } else { "off" },
                rate(hits, same),
                rate(false_hits, other)
            );
        }
    }
    let mut by_kind: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for s in scored.iter().filter(|s| !s.same) {
        let e = by_kind.entry(s.kind.as_str()).or_default();
        e.1 += 1;
        if s.cosine >= rs.threshold && s.refused_by.is_none() {
            e.0 += 1;
        }
    }
    if !by_kind.is_empty() {
        let _ = writeln!(
            out,
            "\nFalse hits by kind at {:.2} with the route's guard:\n\n| kind | false hits |\n|---|---|",
            rs.threshold
        );
        for (kind, (n, of)) in by_kind {
            let kind = if kind.is_empty() { "(none)" } else { kind };
            let _ = writeln!(out, "| {kind} | {} |", rate(n, of));
        }
    }
    out
}

/// Thresholds to report: a fixed ladder and the route's own.
pub fn thresholds(rs: &RouteSemantic) -> Vec<f32> {
    let mut t: Vec<f32> = [0.80, 0.85, 0.90, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99].to_vec();
    if !t.iter().any(|x| (x - rs.threshold).abs() < 1e-6) {
        t.push(rs.threshold);
        t.sort_by(|a, b| a.total_cmp(b));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(same: bool, kind: &str, cosine: f32, refused_by: Option<&'static str>) -> Scored {
        Scored {
            same,
            kind: kind.into(),
            cosine,
            refused_by,
        }
    }

    #[test]
    fn rates_per_threshold_with_and_without_the_guard() {
        let rs = RouteSemantic {
            embedder: 0,
            threshold: 0.9,
            guard: Guard::ALL,
            verify: Default::default(),
            judge: None,
            shared: false,
        };
        let scored = [
            s(true, "paraphrase", 0.95, None),
            s(true, "paraphrase", 0.85, None),
            s(false, "number", 0.97, Some("numbers")),
            s(false, "negation", 0.92, None),
        ];
        let r = report("faq", &rs, &scored, &[0.8, 0.9]);
        assert!(
            r.contains("| 0.80 | off | 100.0% (2/2) | 100.0% (2/2) |"),
            "{r}"
        );
        assert!(
            r.contains("| 0.90 | off | 50.0% (1/2) | 100.0% (2/2) |"),
            "{r}"
        );
        assert!(
            r.contains("| 0.90 | on | 50.0% (1/2) | 50.0% (1/2) |"),
            "{r}"
        );
        assert!(r.contains("| negation | 100.0% (1/1) |"), "{r}");
        assert!(r.contains("| number | 0.0% (0/1) |"), "{r}");
    }

    #[test]
    fn pairs_are_json_lines_and_errors_name_the_line() {
        let p = parse_pairs("{\"a\": \"x\", \"b\": \"y\", \"same\": true}\n\n").unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].kind, "");
        let e =
            parse_pairs("{\"a\": \"x\", \"b\": \"y\", \"same\": true}\n{\"a\": 1}\n").unwrap_err();
        assert!(e.to_string().starts_with("pairs line 2:"), "{e}");
        assert!(matches!(parse_pairs("\n"), Err(CalibrateError::Empty)));
    }
}
