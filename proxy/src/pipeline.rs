//! The one path every request takes, top to bottom.
//!
//! The request half, here:
//!
//! 1. **Classify**: which API and operation (`api::endpoint`), the request id.
//! 2. **Admit**: the concurrency limit (503 with `Retry-After` beyond it).
//! 3. **Read**: the body, within `server.maxRequestBody`.
//! 4. **Parse**: `model` and `stream` (`api::request`); bad JSON is a 400.
//!    From here on the request is one [`exchange::Exchange`]: its body's
//!    JSON is parsed at most once and shared by every step. Then the **PII
//!    filter and prompt guard** (`pii`) scan every text the app sent, once,
//!    editing that JSON in place, and rewrite or refuse the request.
//! 5. **Route**: alias rules, then a plan of targets (`routing`). Then the
//!    **cache** (`cache`): a hit is answered at once, whole or replayed as a
//!    stream; a miss carries the store of the answer to the response half.
//! 6. **Budget**: admission reserves the request's worst case on every
//!    budget and rate limit that applies, or refuses it (429, 503 when a
//!    fail-closed store is down); a `downgrade` action swaps the plan for
//!    a cheaper route (`budget`).
//! 7. **Send**: attempts with retries and fallbacks (`attempt`), each with
//!    the target's model, shaping and API translation (`prepare`) and the
//!    provider's credentials (`upstream`). An attempt returns the answer as
//!    it came.
//!
//! The response half, in [`respond`]: the answer (or the proxy's own
//! answer, or an error) becomes the app's response through phases in one
//! order — response header filter; per event (or once for a whole body)
//! usage capture → output text → shadow capture → usage-chunk strip →
//! translation → PII → cache tee; at the end, **settle**: metrics, the
//! access log and the budget reservation, when the last byte is out or the
//! app left (`settle`, `budget`).
//!
//! With tracing on, the request is a server span (`trace`, continuing the
//! app's `traceparent`), and the PII filter, the cache lookup, budget
//! admission, each attempt (the provider's parent span) and the budget
//! settlement are its children; the span's attributes are set when the
//! request settles.
//!
//! Errors at any step become a provider-shaped response in `error`.

pub(crate) mod attempt;
pub(crate) mod budget;
pub(crate) mod cache;
pub(crate) mod exchange;
pub(crate) mod local;
mod other;
pub mod prepare;
pub(crate) mod respond;
pub(crate) mod settle;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use opentelemetry::KeyValue;
use tracing::Instrument;

use crate::api::endpoint::Unmatched;
use crate::api::request::{parse_head, Payload};
use crate::api::{Endpoint, Family, Operation};
use crate::body::ResponseBody;
use crate::error::ProxyError;
use crate::pii;
use crate::routing::rules::{self, Features};
use crate::routing::{Lookup, Plan, Table};
use crate::state::{Runtime, Shared};
use exchange::Exchange;
use respond::{respond, CacheOutcome, Context, Reply};
use settle::Settle;

/// Handles one request from an app.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
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
        req.headers(),
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
            let cx = Context::new(family, request_id, shared.metrics.clone());
            return respond(Err(err), cx, settle);
        }
    };
    settle.set_endpoint(endpoint);
    let mut cx = Context::new(endpoint.family, request_id, shared.metrics.clone());

    // 2. Admit. The runtime is pinned here for the rest of the request.
    let rt = shared.runtime.load_full();
    settle.set_runtime(&rt);
    let limit = rt.config.server.max_concurrent_requests;
    if !settle.admit(limit) {
        return respond(Err(ProxyError::Overloaded { limit }), cx, settle);
    }

    // Log lines of a traced request name its trace (the ids are written
    // only when some line is).
    let log_span = match settle.trace().filter(|t| t.recording()) {
        Some(t) => {
            let (trace_id, span_id) = t.id_values();
            tracing::info_span!("request", %trace_id, %span_id)
        }
        None => tracing::Span::none(),
    };
    let reply = forward(&shared, &rt, endpoint, req, &mut settle, &mut cx)
        .instrument(log_span)
        .await;
    respond(reply, cx, settle)
}

/// Steps 3 to 7: the request, until an answer (or a refusal).
async fn forward(
    shared: &Shared,
    rt: &Arc<Runtime>,
    endpoint: Endpoint,
    req: Request<Incoming>,
    settle: &mut Settle,
    cx: &mut Context,
) -> Result<Reply, ProxyError> {
    let request_id = cx.request_id.clone();
    if matches!(
        endpoint.operation,
        Operation::ListModels | Operation::GetModel
    ) {
        let listed = local::models(rt, endpoint.family, req.uri().path(), &request_id)?;
        return Ok(Reply::Own(listed));
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
        let answer = other::forward(rt, endpoint, parts, bytes, &request_id, settle).await?;
        return Ok(Reply::Upstream(Box::new(answer)));
    }

    // 4. Parse.
    let head = parse_head(&bytes)?;
    let model = head.model.ok_or(ProxyError::MissingModel)?;
    let mut x = Exchange {
        rt,
        shared,
        endpoint,
        request_id: &request_id,
        parts,
        body: Payload::new(bytes),
        model: &model,
        stream: head.stream,
        started,
        filtered: None,
        plan: None,
    };

    if settle.tracing() {
        let max_tokens = head.max_tokens.and_then(|n| i64::try_from(n).ok());
        settle.set_request_facts(&model, max_tokens);
    }

    // 4b. Filter: PII and prompt guard, once, on the request as the app sent it.
    if let Some(engine) = &rt.pii {
        let (family, op) = (endpoint.family, endpoint.operation);
        let mut phase = settle.phase("pii.filter");
        let f = pii::filter_request(engine, family, op, x.body.json_mut()?, &shared.metrics.pii)
            .inspect_err(|e| phase.fail(e.metric_label()))?;
        if phase.recording() {
            for (ty, n) in &f.found {
                phase.set(KeyValue::new(format!("tollgate.pii.{ty}"), *n as i64));
            }
        }
        drop(phase);
        settle.set_pii_facts(f.found.clone(), &f.guard_rules);
        if let Some(b) = &f.body {
            x.body.rewritten(b.clone());
        }
        x.filtered = Some(f);
    }

    // 5. Route: alias (with its rules) or a provider's allow-listed model.
    let plan = route(&x)?;
    settle.set_route(plan.label, plan.label, x.stream);
    x.plan = Some(plan);

    // 5b. Cache: a hit is answered here, at no cost; a miss may be stored.
    // Pseudonyms make requests with different values look alike, and the
    // answer holds this request's values once restored: never cached.
    let pseudonymized = x.filtered.as_ref().is_some_and(|f| f.pseudonyms.is_some());
    if !pseudonymized {
        let mut phase = settle.phase("cache.lookup");
        let step = cache::lookup(&x).await;
        match &step {
            Ok(cache::Step::Hit { header, .. } | cache::Step::Miss { header, .. }) => {
                phase.set(KeyValue::new("tollgate.cache.result", *header));
            }
            Ok(cache::Step::Off) => phase.set(KeyValue::new("tollgate.cache.result", "off")),
            Err(e) => phase.fail(e.metric_label()),
        }
        drop(phase);
        match step? {
            cache::Step::Off => {}
            cache::Step::Hit { resp, header } => {
                settle.set_cache(header);
                return Ok(Reply::Own(*resp));
            }
            cache::Step::Miss { header, store } => {
                settle.set_cache(header);
                cx.cache = CacheOutcome {
                    header: Some(header),
                    store,
                };
            }
        }
    }

    // 6. Budget: reserve, or refuse; a downgrade swaps the route.
    let mut phase = settle.phase("budget.admit");
    match budget::admit(&mut x).await {
        Ok(Some(hold)) => {
            let decision = match hold.downgrade_to() {
                Some(_) => "downgraded",
                None => "admitted",
            };
            phase.set(KeyValue::new("tollgate.budget.decision", decision));
            settle.set_budget_decision(decision);
            settle.hold_budget(hold);
        }
        Ok(None) => {}
        Err(e) => {
            phase.fail(e.metric_label());
            settle.set_budget_decision("refused");
            return Err(e);
        }
    }
    drop(phase);
    if let Some(route) = settle.downgrade_to() {
        // Another route's answer is not this request's to cache.
        cx.cache.store = None;
        if let Some(r) = rt.config.routing.routes.iter().find(|r| r.name == route) {
            let plan = Table::plan_route(&rt.config, r, None);
            settle.set_route(plan.label, plan.label, x.stream);
            x.plan = Some(plan);
        }
    }

    // 7. Send: attempts, retries, fallbacks.
    let answer = attempt::run(&x, settle).await?;
    cx.pii = x.pii_answers();
    cx.guard = x.filtered.take().map(|f| f.guard_rules).unwrap_or_default();
    cx.model = model;
    Ok(Reply::Upstream(Box::new(answer)))
}

/// The plan for the request: its alias's route (or the route a rule picks),
/// or the provider that lists the model.
fn route<'a>(x: &Exchange<'a>) -> Result<Plan<'a>, ProxyError> {
    let (rt, family) = (x.rt, x.endpoint.family);
    Ok(match rt.routes.lookup(&rt.config, family, x.model)? {
        Lookup::Direct { provider, label } => {
            Table::plan_direct(&rt.config, provider, label, x.model)
        }
        Lookup::Alias(i) => {
            let route = &rt.config.routing.routes[i];
            let needs_body = route.rules.iter().any(|r| r.when.needs_body());
            let features = if needs_body {
                Some(Features::of(family, x.body.json()?))
            } else {
                None
            };
            match rules::first_match(&route.rules, x.headers(), features.as_ref()) {
                Some(rule) => {
                    x.shared
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
    })
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
