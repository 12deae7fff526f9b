//! The semantic lookup of an exact miss: embed, search, guard, fetch.
//!
//! An embedding that fails or times out is a miss (counted), never a failed
//! request. A match whose answer has left the exact cache is dropped from
//! the index and the next one tried; one whose answer Redis could not say
//! (it is down) stays, and the next one is tried.

use std::time::Instant;

use http::HeaderValue;
use serde_json::Value;
use tollgate_config::RouteSemantic;

use crate::cache::semantic::judge::{self, Verdict};
use crate::cache::semantic::{EmbedError, Probe, Prompt, Upstream};
use crate::cache::{Entry, Fetched, Scope};
use crate::state::Runtime;

pub(super) enum Outcome {
    Hit {
        entry: Entry,
        similarity: f32,
    },
    /// A match the route may not serve now (verification suspended it):
    /// a miss that is verified like a hit.
    Suspended {
        entry: Entry,
        probe: Probe,
    },
    /// With the prompt's embedding when there was one.
    Miss(Option<Probe>),
}

/// Embeds the request for the route `name`; when `search`, also looks it
/// up. A match is served only while the route is `serving`.
pub(super) async fn lookup(
    rt: &Runtime,
    (name, route): (&str, &RouteSemantic),
    scope: &Scope<'_>,
    body: &Value,
    request_id: &HeaderValue,
    search: bool,
    serving: bool,
) -> Outcome {
    let started = Instant::now();
    let cache = &rt.cache;
    let Some(prompt) = Prompt::of(scope, body) else {
        cache.semantic_lookup("uncacheable", started);
        return Outcome::Miss(None);
    };
    let up = Upstream {
        providers: &rt.config.providers,
        credentials: &rt.credentials,
        client: &rt.client,
    };
    let semantic = cache.semantic();
    let probe = match semantic
        .probe(
            &up,
            &cache.config().semantic,
            name,
            route,
            &prompt,
            request_id,
        )
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let embedder = &cache.config().semantic.embedders[route.embedder].name;
            tracing::warn!(%embedder, error = %e, "semantic cache: embedding failed; treated as a miss");
            let result = match e {
                EmbedError::Timeout(_) => "timeout",
                _ => "error",
            };
            if search {
                cache.semantic_lookup(result, started);
            }
            return Outcome::Miss(None);
        }
    };
    if !search {
        return Outcome::Miss(Some(probe));
    }
    for m in semantic.find(&probe) {
        if let Some(j) = route.judge {
            // The second stage: only the best candidate is asked about.
            let judge = &cache.config().semantic.judges[j];
            let asked = Instant::now();
            let verdict = match &m.text {
                Some(stored) => judge::ask(&up, judge, stored, prompt.query(), request_id).await,
                // Indexed before the route had a judge: not served unjudged.
                None => Ok(Verdict::Different),
            };
            let metrics = cache.metrics();
            metrics
                .judge_duration
                .observe(asked.elapsed().as_secs_f64());
            let result = match &verdict {
                Ok(Verdict::Same) => "same",
                Ok(Verdict::Different) => "different",
                Err(e) => {
                    tracing::warn!(error = %e, "semantic cache: the judge did not answer; treated as a miss");
                    "error"
                }
            };
            metrics.judgments.with_label_values(&[result]).inc();
            if !matches!(verdict, Ok(Verdict::Same)) {
                cache.semantic_lookup("judged-different", started);
                return Outcome::Miss(Some(probe));
            }
        }
        match cache.fetch(&m.key).await {
            Fetched::Found(entry) if !serving => {
                cache.semantic_lookup("suspended", started);
                return Outcome::Suspended { entry, probe };
            }
            Fetched::Found(entry) => {
                cache.semantic_lookup("semantic-hit", started);
                cache
                    .metrics()
                    .semantic_similarity
                    .observe(f64::from(m.similarity));
                return Outcome::Hit {
                    entry,
                    similarity: m.similarity,
                };
            }
            Fetched::Gone => semantic.forget(m.id),
            // Redis is down: the entry stays for when it is back.
            Fetched::Unknown => {}
        }
    }
    cache.semantic_lookup("miss", started);
    Outcome::Miss(Some(probe))
}
