//! The one path every request takes, top to bottom.
//!
//! 1. **Classify**: which API and operation (`api::endpoint`), the request id.
//! 2. **Admit**: the concurrency limit (503 with `Retry-After` beyond it).
//! 3. **Read**: the body, within `server.maxRequestBody`.
//! 4. **Parse**: `model` and `stream` (`api::request`); bad JSON is a 400.
//!    Then the **PII filter and prompt guard** (`pii`) scan every text the
//!    app sent, once, and rewrite or refuse the request.
//! 5. **Route**: alias rules, then a plan of targets (`routing`). Then the
//!    **cache** (`cache`): a hit is answered at once, whole or replayed as a
//!    stream; a miss carries a tap that stores a complete 200 answer.
//! 6. **Budget**: admission reserves the request's worst case on every
//!    budget and rate limit that applies, or refuses it (429, 503 when a
//!    fail-closed store is down); a `downgrade` action swaps the plan for
//!    a cheaper route (`budget`).
//! 7. **Send**: attempts with retries and fallbacks (`attempt`), each with
//!    the target's model, shaping and API translation (`prepare`) and the
//!    provider's credentials (`upstream`).
//! 8. **Respond**: stream events through as they arrive (translated when the
//!    target speaks the other API), or buffer a JSON body, reading usage on
//!    the way (`body`, `convert`); the budget headers are added.
//! 9. **Settle**: when the last byte is out or the app left, record metrics
//!    and the access log, and settle the budget reservation to the usage
//!    (`settle`, `budget`).
//!
//! Errors at any step become a provider-shaped response in `error`.

pub mod attempt;
pub mod budget;
pub mod cache;
pub mod convert;
pub mod local;
pub mod prepare;
pub mod settle;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use crate::api::endpoint::Unmatched;
use crate::api::request::parse_head;
use crate::api::{Endpoint, Family, Operation};
use crate::body::ResponseBody;
use crate::error::ProxyError;
use crate::pii;
use crate::routing::rules::{self, Features};
use crate::routing::{Lookup, Table};
use crate::state::{Runtime, Shared};
use crate::upstream::{build_request, strip_hop_by_hop, Outgoing};
use attempt::Exchange;
use settle::Settle;

/// Handles one request from an app.
pub async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = request_id(&req);
    let anthropic_hint =
        req.headers().contains_key("anthropic-version") || req.headers().contains_key("x-api-key");
    let path = req.uri().path().to_string();
    let mut settle = Settle::begin(
        &shared,
        started,
        request_id.clone(),
        req.method().clone(),
        path,
    );

    // 1. Classify.
    let endpoint = match Endpoint::classify(req.method(), req.uri().path(), anthropic_hint) {
        Ok(e) => e,
        Err(unmatched) => {
            let family = if anthropic_hint {
                Family::Anthropic
            } else {
                Family::OpenAi
            };
            let (method, path) = (req.method().to_string(), req.uri().path().to_string());
            let err = match unmatched {
                Unmatched::NotFound => ProxyError::NotFound { method, path },
                Unmatched::MethodNotAllowed => ProxyError::MethodNotAllowed { method, path },
            };
            return settle.fail(family, err);
        }
    };
    settle.set_endpoint(endpoint);

    // 2. Admit. The runtime is pinned here for the rest of the request.
    let rt = shared.runtime.load_full();
    let limit = rt.config.server.max_concurrent_requests;
    if !settle.admit(limit) {
        return settle.fail(endpoint.family, ProxyError::Overloaded { limit });
    }

    let mut cached = CacheOutcome::default();
    match forward(
        &shared,
        &rt,
        endpoint,
        req,
        &request_id,
        &mut settle,
        &mut cached,
    )
    .await
    {
        Ok(mut resp) => {
            settle.responded(resp.status().as_u16());
            settle.decorate(resp.headers_mut());
            let tee = cached.attach(&mut resp);
            resp.map(|b| {
                let b = b.with_settle(settle);
                match tee {
                    Some(t) => b.with_cache(t),
                    None => b,
                }
            })
        }
        Err(e) => settle.fail(endpoint.family, e),
    }
}

/// The cache's part in a response: its header, and the store of a miss.
#[derive(Default)]
struct CacheOutcome {
    header: Option<&'static str>,
    store: Option<cache::Pending>,
}

impl CacheOutcome {
    /// Sets `x-tollgate-cache`; returns the tap when a 200 may be stored.
    fn attach(self, resp: &mut Response<ResponseBody>) -> Option<cache::Tee> {
        if let Some(h) = self.header {
            resp.headers_mut()
                .insert(cache::HEADER, HeaderValue::from_static(h));
        }
        let store = self.store?;
        if resp.status() != http::StatusCode::OK {
            store.discard();
            return None;
        }
        let target = resp
            .headers()
            .get("x-tollgate-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Some(store.tee(target))
    }
}

async fn forward(
    shared: &Shared,
    rt: &Arc<Runtime>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    request_id: &HeaderValue,
    settle: &mut Settle,
    cached: &mut CacheOutcome,
) -> Result<Response<ResponseBody>, ProxyError> {
    if matches!(
        endpoint.operation,
        Operation::ListModels | Operation::GetModel
    ) {
        return local::models(rt, endpoint.family, req.uri().path(), request_id);
    }
    let started = tokio::time::Instant::now();

    // 3. Read.
    let (parts, body) = req.into_parts();
    let mut bytes = read_body(&parts.headers, body, rt.config.server.max_request_body).await?;
    if !endpoint.operation.routes_on_model() {
        if let Some(engine) = &rt.pii {
            if let Some(b) = pii::filter_other(engine, &parts.headers, &bytes, &shared.metrics.pii)?
            {
                bytes = b;
            }
        }
        return forward_other(rt, endpoint, parts, bytes, request_id, settle).await;
    }

    // 4. Parse.
    let head = parse_head(&bytes)?;
    let model = head.model.ok_or(ProxyError::MissingModel)?;

    // 4b. Filter: PII and prompt guard, once, on the request as the app sent it.
    let mut parsed = None;
    let filtered = match &rt.pii {
        Some(engine) => {
            let f = pii::filter_request(
                engine,
                endpoint.family,
                endpoint.operation,
                &bytes,
                &mut parsed,
                &shared.metrics.pii,
            )?;
            if let Some(b) = &f.body {
                bytes = b.clone();
            }
            Some(f)
        }
        None => None,
    };

    // 5. Route: alias (with its rules) or a provider's allow-listed model.
    let mut plan = match rt.routes.lookup(&rt.config, endpoint.family, &model)? {
        Lookup::Direct { provider, label } => {
            Table::plan_direct(&rt.config, provider, label, &model)
        }
        Lookup::Alias(i) => {
            let route = &rt.config.routing.routes[i];
            let needs_body = route.rules.iter().any(|r| r.when.needs_body());
            let features = if needs_body {
                Some(Features::of(
                    endpoint.family,
                    prepare::parsed_value(&bytes, &mut parsed)?,
                ))
            } else {
                None
            };
            match rules::first_match(&route.rules, &parts.headers, features.as_ref()) {
                Some(rule) => {
                    shared
                        .metrics
                        .rule_matches
                        .with_label_values(&[&route.name, &rule.name])
                        .inc();
                    Table::plan_route(
                        &rt.config,
                        &rt.config.routing.routes[rule.route],
                        Some(&rule.name),
                    )
                }
                None => Table::plan_route(&rt.config, route, None),
            }
        }
    };
    settle.set_route(plan.label, plan.label, head.stream);

    // 5b. Cache: a hit is answered here, at no cost; a miss may be stored.
    let route_name = rt
        .config
        .routing
        .routes
        .iter()
        .any(|r| r.name == plan.label)
        .then_some(plan.label);
    // Pseudonyms make requests with different values look alike, and the
    // answer holds this request's values once restored: never cached.
    let pseudonymized = filtered.as_ref().is_some_and(|f| f.pseudonyms.is_some());
    let step = if pseudonymized {
        cache::Step::Off
    } else {
        cache::lookup(
            rt,
            endpoint,
            &parts.headers,
            &bytes,
            &mut parsed,
            &plan,
            route_name,
            head.stream,
            request_id,
        )
        .await?
    };
    match step {
        cache::Step::Off => {}
        cache::Step::Hit(resp) => return Ok(*resp),
        cache::Step::Miss { header, store } => {
            cached.header = Some(header);
            cached.store = store;
        }
    }

    // 6. Budget: reserve, or refuse; a downgrade swaps the route.
    if let Some(hold) = budget::admit(
        &rt.budget,
        &shared.settlements,
        endpoint,
        &parts.headers,
        &bytes,
        &mut parsed,
        &model,
        &plan,
    )
    .await?
    {
        settle.hold_budget(hold);
    }
    if let Some(route) = settle.downgrade_to() {
        // Another route's answer is not this request's to cache.
        cached.store = None;
        if let Some(r) = rt.config.routing.routes.iter().find(|r| r.name == route) {
            plan = Table::plan_route(&rt.config, r, None);
            settle.set_route(plan.label, plan.label, head.stream);
        }
    }

    // 7. Send: attempts, retries, fallbacks.
    let mut x = Exchange {
        rt,
        shared,
        endpoint,
        method: &parts.method,
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        request_id,
        raw: &bytes,
        parsed,
        requested_model: &model,
        stream: head.stream,
        started,
        pii: rt
            .pii
            .as_ref()
            .zip(filtered.as_ref())
            .and_then(|(e, f)| pii::Answers::of(e, f)),
    };
    let mut resp = attempt::run(&mut x, &plan, settle).await?;
    pii::decorate(filtered.as_ref(), resp.headers_mut());
    Ok(resp)
}

/// Other `/v1/*` paths: one attempt at the default provider, bytes as-is.
async fn forward_other(
    rt: &Runtime,
    endpoint: Endpoint,
    parts: http::request::Parts,
    bytes: Bytes,
    request_id: &HeaderValue,
    settle: &mut Settle,
) -> Result<Response<ResponseBody>, ProxyError> {
    let idx = match (rt.config.unknown_paths, rt.config.default_provider) {
        (tollgate_config::UnknownPaths::Forward, Some(i)) => i,
        (policy, _) => {
            return Err(ProxyError::PathRejected {
                path: parts.uri.path().to_string(),
                why: match policy {
                    tollgate_config::UnknownPaths::Reject => {
                        "disabled by config (unknownPaths: reject)"
                    }
                    tollgate_config::UnknownPaths::Forward => "not configured (no defaultProvider)",
                },
            })
        }
    };
    let provider = &rt.config.providers[idx];
    settle.set_route("other", "unknown", false);
    settle.set_provider(provider);
    let upstream_req = build_request(
        Outgoing {
            provider,
            credential: rt.credentials[idx].as_deref(),
            operation: endpoint.operation,
            method: parts.method,
            path: parts.uri.path(),
            query: parts.uri.query(),
            model: None,
            request_id,
            body: bytes,
        },
        parts.headers,
    )?;
    let timeout = rt.config.routing.defaults.timeouts.first_byte;
    let sent = std::time::Instant::now();
    let resp =
        match tokio::time::timeout(timeout, rt.client.send(&provider.name, upstream_req)).await {
            Err(_) => {
                return Err(ProxyError::UpstreamTimeout {
                    provider: provider.name.clone(),
                    timeout,
                })
            }
            Ok(r) => r?,
        };
    settle.upstream_answered(sent.elapsed(), resp.status().as_u16());
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    if let Some(theirs) = parts.headers.insert("x-request-id", request_id.clone()) {
        if theirs != request_id {
            parts.headers.insert("x-upstream-request-id", theirs);
        }
    }
    Ok(Response::from_parts(
        parts,
        ResponseBody::upstream(body, None, None),
    ))
}

/// Reads the request body within `limit` bytes.
async fn read_body(
    headers: &http::HeaderMap,
    body: Incoming,
    limit: u64,
) -> Result<Bytes, ProxyError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ProxyError::BodyTooLarge { limit });
    }
    match Limited::new(body, limit as usize).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ProxyError::BodyTooLarge { limit })
        }
        Err(e) => Err(ProxyError::BodyRead(e.to_string())),
    }
}

/// The app's `x-request-id` if usable, else a new UUID.
fn request_id(req: &Request<Incoming>) -> HeaderValue {
    if let Some(v) = req.headers().get("x-request-id") {
        let ok =
            !v.is_empty() && v.len() <= 200 && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
        if ok {
            return v.clone();
        }
    }
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    let id = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buf);
    HeaderValue::from_str(id).expect("a UUID is a valid header value")
}
