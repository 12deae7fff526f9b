//! The response cache on the request path.
//!
//! After routing, a cacheable request (chat completions, messages,
//! completions, embeddings; by default only deterministic ones) is looked
//! up. A hit is answered from the cache — whole, or replayed as a stream —
//! without budget admission or an upstream call: it costs nothing. A miss
//! carries a [`Pending`] store; the response pipeline's cache tee ([`Tee`])
//! records the answer the app receives, and only a 200 that ended normally
//! is stored (a stream is assembled into the whole response first).
//! Responses say what happened in `x-tollgate-cache`: `hit`,
//! `semantic-hit`, `miss` or `bypass`.
//!
//! On a route that opted into the semantic cache, an exact miss of a chat
//! completion or message is looked up by meaning ([`semantic`]); its
//! embedding rides along with the store so the answer gets indexed.

mod semantic;
mod tee;
mod verify;

pub(crate) use tee::{Shape, Tee};
pub(crate) use verify::Verifiers;

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use serde_json::Value;

use super::exchange::Exchange;
use crate::api::{Family, Operation};
use crate::body::ResponseBody;
use crate::cache::replay::replay;
use crate::cache::semantic::Probe;
use crate::cache::{now_ms, Directive, Entry, Key, ResponseCache, Scope};
use crate::error::ProxyError;

pub(crate) const HEADER: &str = "x-tollgate-cache";

/// What the cache did for one request.
pub(crate) enum Step {
    /// The cache does not apply (off for this route, or an operation it
    /// does not keep): no header.
    Off,
    /// Answered from the cache; `header` is `hit` or `semantic-hit`.
    Hit {
        resp: Box<Response<ResponseBody>>,
        header: &'static str,
    },
    /// Go upstream; `store` is set when the answer may be stored.
    Miss {
        header: &'static str,
        store: Option<Pending>,
    },
}

/// A miss whose answer may be stored.
pub(crate) struct Pending {
    cache: Arc<ResponseCache>,
    key: Key,
    ttl: Duration,
    family: Family,
    stream: bool,
    /// The prompt's embedding, to index the answer by meaning.
    semantic: Option<Box<Probe>>,
}

#[cfg(test)]
impl Pending {
    /// A store under a fixed key, for tests of the response pipeline.
    pub(crate) fn for_test(cache: Arc<ResponseCache>, family: Family, stream: bool) -> Pending {
        Pending {
            cache,
            key: Key([7; 32]),
            ttl: Duration::from_secs(60),
            family,
            stream,
            semantic: None,
        }
    }
}

fn cacheable(op: Operation, stream: bool) -> bool {
    match op {
        Operation::ChatCompletions | Operation::Messages => true,
        // Legacy completions stream in another shape; embeddings never stream.
        Operation::Completions | Operation::Embeddings => !stream,
        _ => false,
    }
}

/// Looks the request up.
pub(crate) async fn lookup(x: &Exchange<'_>) -> Result<Step, ProxyError> {
    let (rt, endpoint, headers, plan) = (x.rt, x.endpoint, x.headers(), x.plan());
    let cache = &rt.cache;
    let policy = rt.config.name.as_deref().unwrap_or("");
    let cfg = cache.config();
    // An alias has cache settings; an allow-listed model has the defaults.
    let route = rt
        .config
        .routing
        .routes
        .iter()
        .any(|r| r.name == plan.label)
        .then_some(plan.label);
    let Some(ttl) = cfg.ttl_for(route) else {
        return Ok(Step::Off);
    };
    if !cacheable(endpoint.operation, x.stream) {
        return Ok(Step::Off);
    }
    let directive = Directive::from_headers(headers);
    if directive == Directive::Bypass {
        cache.skipped("bypass");
        return Ok(Step::Miss {
            header: "bypass",
            store: None,
        });
    }
    let body = x.body.json()?;
    let tenant = cfg
        .tenant_header
        .as_deref()
        .and_then(|h| headers.get(h))
        .and_then(|v| v.to_str().ok());
    // The route and every target it may use: a config change of the
    // targets starts a fresh set of entries.
    let mut route_scope = String::with_capacity(64);
    route_scope.push_str(plan.label);
    for t in &plan.targets {
        route_scope.push(';');
        route_scope.push_str(&t.key);
        route_scope.push('=');
        route_scope.push_str(&t.model);
    }
    let scope = Scope {
        policy,
        family: endpoint.family,
        operation: endpoint.operation,
        route: &route_scope,
        tenant,
    };
    let keyed = match x.body.written() {
        Some(written) => {
            crate::cache::key::key_written(&scope, body, written, cfg.deterministic_only)
        }
        None => crate::cache::key::key(&scope, body, cfg.deterministic_only),
    };
    let key = match keyed {
        Ok(k) => k,
        Err(_) => {
            cache.skipped("uncacheable");
            return Ok(Step::Miss {
                header: "bypass",
                store: None,
            });
        }
    };
    let mut pending = Pending {
        cache: cache.clone(),
        key,
        ttl,
        family: endpoint.family,
        stream: x.stream,
        semantic: None,
    };
    let by_meaning = cfg.semantic_for(route).filter(|_| {
        matches!(
            endpoint.operation,
            Operation::ChatCompletions | Operation::Messages
        )
    });
    if directive == Directive::Refresh {
        cache.skipped("refresh");
        if let Some(rs) = by_meaning {
            // Not looked up, but the fresh answer is indexed.
            if let semantic::Outcome::Miss(probe) = semantic::lookup(
                rt,
                (plan.label, rs),
                &scope,
                body,
                x.request_id,
                false,
                true,
            )
            .await
            {
                pending.semantic = probe.map(Box::new);
            }
        }
        return Ok(Step::Miss {
            header: "miss",
            store: Some(pending),
        });
    }
    let (entry, header, similarity) = match cache.get(&key).await {
        Some(entry) => (entry, "hit", None),
        None => {
            let Some(rs) = by_meaning else {
                return Ok(Step::Miss {
                    header: "miss",
                    store: Some(pending),
                });
            };
            let state =
                x.shared
                    .verifiers
                    .route(plan.label, rs.verify.queue_size, &x.shared.metrics);
            match semantic::lookup(
                rt,
                (plan.label, rs),
                &scope,
                body,
                x.request_id,
                true,
                state.serving(),
            )
            .await
            {
                semantic::Outcome::Hit { entry, similarity } => {
                    verify::maybe_spawn(&state, &rs.verify, || check(x, rs, &entry));
                    (entry, "semantic-hit", Some(similarity))
                }
                semantic::Outcome::Suspended { entry, probe } => {
                    verify::maybe_spawn(&state, &rs.verify, || check(x, rs, &entry));
                    pending.semantic = Some(Box::new(probe));
                    return Ok(Step::Miss {
                        header: "miss",
                        store: Some(pending),
                    });
                }
                semantic::Outcome::Miss(probe) => {
                    pending.semantic = probe.map(Box::new);
                    return Ok(Step::Miss {
                        header: "miss",
                        store: Some(pending),
                    });
                }
            }
        }
    };
    let m = cache.metrics();
    m.saved_tokens
        .with_label_values(&["input"])
        .inc_by(entry.usage.input);
    m.saved_tokens
        .with_label_values(&["output"])
        .inc_by(entry.usage.output);
    // `target` is `provider/model`; the model is priced as a settlement would.
    let model = entry.target.split_once('/').map_or("", |(_, m)| m);
    if let Some(nano) = rt.budget.cost_of(model, &entry.usage) {
        m.saved_usd.inc_by(nano as f64 / 1e9);
    }
    let mut resp = hit_response(endpoint.family, &entry, x.stream, body, header);
    if let Some(s) = similarity {
        if let Ok(v) = HeaderValue::from_str(&format!("{s:.4}")) {
            resp.headers_mut().insert(SIMILARITY_HEADER, v);
        }
    }
    Ok(Step::Hit {
        resp: Box::new(resp),
        header,
    })
}

/// The verification of a semantic match of this request (see [`verify`]).
fn check(x: &Exchange<'_>, rs: &tollgate_config::RouteSemantic, entry: &Entry) -> verify::Check {
    let plan = x.plan();
    let first = &plan.targets[0];
    verify::Check {
        req: crate::shadow::RequestCopy::of(x),
        verify: rs.verify,
        provider: first.provider,
        model: first.model.to_string(),
        served: entry.body.clone(),
    }
}

/// On a semantic hit: the cosine similarity of the two prompts.
pub(crate) const SIMILARITY_HEADER: &str = "x-tollgate-cache-similarity";

fn hit_response(
    family: Family,
    entry: &Entry,
    stream: bool,
    req: &Value,
    header: &'static str,
) -> Response<ResponseBody> {
    let (body, content_type) = if stream {
        let whole: Value = serde_json::from_slice(&entry.body).unwrap_or(Value::Null);
        let include_usage = req
            .get("stream_options")
            .and_then(|o| o.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        (
            replay(family, &whole, &entry.usage, include_usage),
            "text/event-stream",
        )
    } else {
        (entry.body.clone(), "application/json")
    };
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = StatusCode::OK;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if stream {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    h.insert(HEADER, HeaderValue::from_static(header));
    if let Ok(v) = HeaderValue::from_str(&entry.target) {
        h.insert("x-tollgate-target", v);
    }
    if let Ok(v) =
        HeaderValue::from_str(&(now_ms().saturating_sub(entry.stored_at_ms) / 1000).to_string())
    {
        h.insert(header::AGE, v);
    }
    resp
}
