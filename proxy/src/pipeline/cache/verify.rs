//! Online verification of semantic hits: a bound on the damage of false
//! hits nobody thought of.
//!
//! An evenly spaced share of a route's semantic hits (`verify.share`) is
//! also sent upstream, in the background, to the route's first target, as
//! a whole request; the app never waits for it. The fresh answer is
//! compared with the one the cache served: exact match (after
//! normalization) when either is short (at most [`SHORT`] words) or
//! structured (JSON), token-overlap F1 otherwise. The last `window` scores
//! make the route's rolling agreement. Once `minSamples` are in and it falls
//! below `floor`, the route stops serving semantic hits (the exact cache
//! goes on): would-be hits go upstream as misses and are still verified at
//! the same share. The window then starts afresh, and serving resumes once
//! `minSamples` new verifications agree at or above the floor.
//!
//! Verification calls are the proxy's own: they are not counted against
//! budgets; their tokens are counted in
//! `tollgate_cache_semantic_verification_tokens_total`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::Semaphore;
use tollgate_config::Verify;

use crate::api::usage::Usage;
use crate::metrics::Metrics;
use crate::pipeline::settle::access::Sampler;
use crate::shadow::{agreement, response_text, send_whole, whole_body, RequestCopy};

/// Answers of at most this many words are compared exactly.
pub(crate) const SHORT: usize = 12;

/// Per-route verification state, shared by every request; survives reloads.
#[derive(Default)]
pub(crate) struct Verifiers {
    routes: Mutex<HashMap<String, Arc<RouteState>>>,
}

impl Verifiers {
    /// The state of `route` (new routes start serving).
    pub(crate) fn route(
        &self,
        route: &str,
        queue_size: usize,
        metrics: &Metrics,
    ) -> Arc<RouteState> {
        let mut map = self.routes.lock().expect("lock");
        // Asked on every exact miss of the route: no key allocated once known.
        if let Some(s) = map.get(route) {
            return s.clone();
        }
        map.entry(route.to_string())
            .or_insert_with(|| {
                metrics.semantic_serving.with_label_values(&[route]).set(1);
                Arc::new(RouteState {
                    seen: Sampler::default(),
                    window: Mutex::new(Window {
                        scores: VecDeque::new(),
                        serving: true,
                    }),
                    slots: Arc::new(Semaphore::new(queue_size.max(1))),
                })
            })
            .clone()
    }
}

/// One route's rolling agreement and whether it serves semantic hits.
pub(crate) struct RouteState {
    /// Picks the evenly spaced share of hits (and would-be hits) verified.
    seen: Sampler,
    window: Mutex<Window>,
    slots: Arc<Semaphore>,
}

struct Window {
    scores: VecDeque<f64>,
    serving: bool,
}

impl RouteState {
    /// Whether the route serves semantic hits now.
    pub(crate) fn serving(&self) -> bool {
        self.window.lock().expect("lock").serving
    }

    /// Whether this hit is one of the share verified.
    fn sampled(&self, share: f64) -> bool {
        self.seen.take(share)
    }

    /// Adds a score; the rolling agreement, and the new serving state when
    /// it changed.
    fn record(&self, score: f64, v: &Verify) -> (f64, Option<bool>) {
        let mut w = self.window.lock().expect("lock");
        w.scores.push_back(score);
        while w.scores.len() > v.window {
            w.scores.pop_front();
        }
        let mean = w.scores.iter().sum::<f64>() / w.scores.len() as f64;
        if w.scores.len() < v.min_samples {
            return (mean, None);
        }
        match (w.serving, mean < v.floor) {
            (true, true) => {
                w.serving = false;
                // What comes next decides when it serves again.
                w.scores.clear();
                (mean, Some(false))
            }
            (false, false) => {
                w.serving = true;
                (mean, Some(true))
            }
            _ => (mean, None),
        }
    }
}

/// How much a fresh answer agrees with the served one, 0 to 1.
pub(crate) fn score(fresh: &str, served: &str) -> f64 {
    let (exact, f1) = agreement(fresh, served);
    let short = |s: &str| s.split_whitespace().count() <= SHORT;
    let structured = |s: &str| matches!(s.trim_start().as_bytes().first(), Some(b'{' | b'['));
    if short(fresh) || short(served) || structured(fresh) || structured(served) {
        if exact {
            1.0
        } else {
            0.0
        }
    } else {
        f1
    }
}

/// A semantic hit (or would-be hit) to verify.
pub(crate) struct Check {
    pub req: RequestCopy,
    pub verify: Verify,
    /// The route's first target.
    pub provider: usize,
    pub model: String,
    /// The answer the cache holds (in the app's API).
    pub served: Bytes,
}

/// Verifies a match in the background if it is in the route's share and a
/// slot is free (`check` is built only then).
pub(crate) fn maybe_spawn(state: &Arc<RouteState>, v: &Verify, check: impl FnOnce() -> Check) {
    if !state.sampled(v.share) {
        return;
    }
    let check = check();
    let Ok(permit) = state.slots.clone().try_acquire_owned() else {
        count(&check, "busy");
        return;
    };
    let state = state.clone();
    tokio::spawn(async move {
        run(&state, check).await;
        drop(permit);
    });
}

fn count(c: &Check, result: &str) {
    c.req
        .metrics
        .semantic_verifications
        .with_label_values(&[&c.req.route, result])
        .inc();
}

async fn run(state: &RouteState, c: Check) {
    let provider = &c.req.rt.config.providers[c.provider];
    let answer = async {
        let body = whole_body(&c.req, provider, &c.model).map_err(|_| "error")?;
        let (status, bytes) = send_whole(&c.req, c.provider, &c.model, &body, None)
            .await
            .map_err(|_| "error")?;
        if !status.is_success() {
            return Err("error");
        }
        serde_json::from_slice::<Value>(&bytes).map_err(|_| "error")
    }
    .await;
    let answer = match answer {
        Ok(a) => a,
        Err(result) => {
            count(&c, result);
            return;
        }
    };
    let family = provider.kind.family();
    if let Some(u) = Usage::of_response(family, &answer) {
        let m = &c.req.metrics.semantic_verification_tokens;
        m.with_label_values(&[&c.req.route, "input"])
            .inc_by(u.input);
        m.with_label_values(&[&c.req.route, "output"])
            .inc_by(u.output);
    }
    let served: Value = serde_json::from_slice(&c.served).unwrap_or(Value::Null);
    let s = score(
        &response_text(family, &answer),
        &response_text(c.req.app, &served),
    );
    let (mean, changed) = state.record(s, &c.verify);
    count(
        &c,
        if s >= c.verify.floor {
            "agree"
        } else {
            "disagree"
        },
    );
    c.req
        .metrics
        .semantic_agreement
        .with_label_values(&[&c.req.route])
        .set(mean);
    if let Some(serving) = changed {
        c.req
            .metrics
            .semantic_serving
            .with_label_values(&[&c.req.route])
            .set(serving as i64);
        if serving {
            tracing::info!(route = %c.req.route, agreement = mean, "semantic cache serving again: verified answers agree");
        } else {
            tracing::warn!(route = %c.req.route, agreement = mean, floor = c.verify.floor, "semantic cache suspended: verified answers disagree with served ones");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(floor: f64, window: usize, min_samples: usize) -> Verify {
        Verify {
            share: 1.0,
            floor,
            window,
            min_samples,
            queue_size: 1,
        }
    }

    #[test]
    fn short_and_structured_answers_must_match_long_ones_overlap() {
        assert_eq!(score("The answer is 42.", "the answer is 42"), 1.0);
        assert_eq!(score("The answer is 42.", "The answer is 43."), 0.0);
        assert_eq!(score("{\"ok\": true}", "{\"ok\": false}"), 0.0);
        let a = "Toll roads are financed by bonds backed by future toll revenue and by private concessions that build and operate the road";
        let b = "Toll roads are financed by private concessions and by bonds backed by toll revenue collected in the future";
        let s = score(a, b);
        assert!(s > 0.5 && s < 1.0, "{s}");
        let c = "Congestion pricing varies the toll with the time of day so that drivers spread their trips across the day";
        assert!(score(a, c) < 0.3, "{}", score(a, c));
    }

    #[test]
    fn the_share_is_evenly_spaced() {
        let s = Verifiers::default().route("r", 1, &Metrics::new());
        let taken = (0..100).filter(|_| s.sampled(0.05)).count();
        assert_eq!(taken, 5);
        assert!(!s.sampled(0.0));
    }

    #[test]
    fn a_route_stops_below_the_floor_and_resumes_after_fresh_agreement() {
        let s = Verifiers::default().route("r", 1, &Metrics::new());
        let v = v(0.5, 4, 3);
        // Not judged before min_samples.
        assert_eq!(s.record(0.0, &v).1, None);
        assert_eq!(s.record(0.0, &v).1, None);
        assert!(s.serving());
        assert_eq!(s.record(0.9, &v), (0.3, Some(false)));
        assert!(!s.serving());
        // The window started afresh: three new agreeing scores bring it back.
        assert_eq!(s.record(1.0, &v).1, None);
        assert_eq!(s.record(0.8, &v).1, None);
        let (mean, changed) = s.record(0.6, &v);
        assert_eq!(changed, Some(true));
        assert!((mean - 0.8).abs() < 1e-9);
        assert!(s.serving());
        // A good rolling mean keeps it serving through one bad score.
        assert_eq!(s.record(0.0, &v).1, None);
        assert!(s.serving());
    }
}
