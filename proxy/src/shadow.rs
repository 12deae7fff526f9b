//! Shadow traffic: mirror a share of a route's requests to another model,
//! off the request path, and record how it compares.
//!
//! The mirror is sent after the primary has answered, as a non-streaming
//! request, from a bounded set of background tasks (a full set drops the
//! mirror and counts it). It never changes or delays what the app gets. Its
//! answer is compared with the primary's text: exact match after
//! normalization (case, punctuation, whitespace) and token-overlap F1.

use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use rand::Rng;
use serde_json::Value;
use tokio::sync::{oneshot, Semaphore};
use tollgate_config::Shadow;

use crate::api::request::{ParseError, Payload};
use crate::api::usage::Usage;
use crate::api::{Family, Operation};
use crate::budget::{AdmitRequest, BudgetEngine};
use crate::error::ProxyError;
use crate::metrics::Metrics;
use crate::pipeline::prepare::{body_for, TargetSpec};
use crate::state::Runtime;
use crate::upstream::{build_request, Outgoing, UpstreamError};

/// Bounds concurrent mirrors per route; survives reloads.
#[derive(Default)]
pub struct Mirrors {
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl Mirrors {
    fn slots(&self, route: &str, size: usize) -> Arc<Semaphore> {
        let mut map = self.slots.lock().expect("lock");
        map.entry(format!("{route}/{size}"))
            .or_insert_with(|| Arc::new(Semaphore::new(size)))
            .clone()
    }
}

/// Why a mirror was not completed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ShadowSkip {
    /// The shadow target's body could not be built.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// `countAgainstBudget` and the budget had no room.
    #[error("budget exhausted")]
    Budget,
}

impl ShadowSkip {
    pub(crate) fn metric_label(&self) -> &'static str {
        match self {
            ShadowSkip::Proxy(e) => e.metric_label(),
            ShadowSkip::Upstream(e) => e.metric_label(),
            ShadowSkip::Budget => "budget_refused",
        }
    }
}

/// A request as the app sent it, owned, for work that outlives it: a
/// mirror, or the verification of a semantic hit.
pub(crate) struct RequestCopy {
    pub rt: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    /// The route's label.
    pub route: String,
    pub app: Family,
    pub operation: Operation,
    pub raw: Bytes,
    pub requested_model: String,
    pub headers: HeaderMap,
    pub request_id: HeaderValue,
}

impl RequestCopy {
    pub(crate) fn of(x: &crate::pipeline::exchange::Exchange<'_>) -> RequestCopy {
        RequestCopy {
            rt: x.rt.clone(),
            metrics: x.shared.metrics.clone(),
            route: x.plan().label.to_string(),
            app: x.endpoint.family,
            operation: x.endpoint.operation,
            raw: x.body.raw().clone(),
            requested_model: x.model.to_string(),
            headers: x.headers().clone(),
            request_id: x.request_id.clone(),
        }
    }
}

/// Everything a mirror needs, owned (it outlives the request).
pub(crate) struct Mirror {
    pub req: RequestCopy,
    pub shadow: Shadow,
    /// The primary's text: at once for a whole answer, at its end for a
    /// stream (the response pipeline's shadow capture sends it).
    pub primary: oneshot::Receiver<String>,
    /// The shadow request's span: a trace of its own, linked to the
    /// request's span (the app never waits for it); ended with the mirror.
    pub span: crate::trace::Phase,
}

/// True for the share of requests that should be mirrored.
pub(crate) fn sampled(shadow: &Shadow) -> bool {
    shadow.share >= 1.0 || rand::rng().random_bool(shadow.share)
}

/// Starts a mirror in the background, or drops it if the route's mirrors
/// are all busy.
pub(crate) fn spawn(mirrors: &Mirrors, m: Mirror) {
    let slots = mirrors.slots(&m.req.route, m.shadow.queue_size);
    let Ok(permit) = slots.try_acquire_owned() else {
        m.req
            .metrics
            .shadow_dropped
            .with_label_values(&[&m.req.route])
            .inc();
        return;
    };
    tokio::spawn(async move {
        run(m).await;
        drop(permit);
    });
}

async fn run(mut m: Mirror) {
    let mut span = std::mem::take(&mut m.span);
    let provider = &m.req.rt.config.providers[m.shadow.provider];
    let family = provider.kind.family();
    let started = Instant::now();
    let result = async {
        let body = whole_body(&m.req, provider, &m.shadow.model)?;
        // Counted against budgets only when configured; then it must also
        // fit them, like any request, or it is not sent.
        let admission = if m.shadow.count_against_budget && !m.req.rt.budget.is_empty() {
            let max_output = ["max_tokens", "max_completion_tokens"]
                .iter()
                .find_map(|k| body.get(*k).and_then(Value::as_u64));
            let prompt_tokens = BudgetEngine::estimate_prompt_tokens(family, &body);
            let req = AdmitRequest {
                headers: &m.req.headers,
                requested_model: &m.req.requested_model,
                models: &[m.shadow.model.as_str()],
                prompt_tokens,
                max_output_tokens: max_output,
            };
            match m.req.rt.budget.admit(&req).await {
                Ok(a) => Some((a, prompt_tokens)),
                Err(_) => return Err(ShadowSkip::Budget),
            }
        } else {
            None
        };
        let (status, bytes) = send_whole(
            &m.req,
            m.shadow.provider,
            &m.shadow.model,
            &body,
            span.propagation(),
        )
        .await?;
        Ok::<_, ShadowSkip>((status, bytes, admission))
    }
    .await;
    let took = started.elapsed();
    let met = &m.req.metrics;
    let route = m.req.route.as_str();
    met.shadow_duration
        .with_label_values(&[route])
        .observe(took.as_secs_f64());
    let (bytes, admission) = match result {
        Ok((s, b, a)) if s.is_success() => (b, a),
        Ok((s, _, a)) => {
            span.set(KeyValue::new(
                "http.response.status_code",
                s.as_u16() as i64,
            ));
            span.fail("upstream_error");
            if let Some((a, _)) = a {
                a.release().await;
            }
            met.shadow_requests
                .with_label_values(&[route, "upstream_error"])
                .inc();
            tracing::info!(route, status = s.as_u16(), "shadow request failed");
            return;
        }
        Err(e) => {
            span.fail(e.metric_label());
            met.shadow_requests
                .with_label_values(&[route, e.metric_label()])
                .inc();
            return;
        }
    };
    met.shadow_requests.with_label_values(&[route, "ok"]).inc();
    let answer = serde_json::from_slice::<Value>(&bytes).unwrap_or(Value::Null);
    let shadow_text = response_text(family, &answer);
    let usage = Usage::of_response(family, &answer);
    if let Some((a, prompt_tokens)) = admission {
        match &usage {
            Some(u) => a.settle(&m.shadow.model, u, false).await,
            // No usage reported: estimated from the prompt and the answer.
            None => {
                let estimate = Usage {
                    input: prompt_tokens,
                    output: BudgetEngine::count_tokens(&m.shadow.model, &shadow_text),
                    ..Usage::default()
                };
                a.settle(&m.shadow.model, &estimate, true).await
            }
        }
    }
    if let Some(u) = usage {
        met.shadow_tokens
            .with_label_values(&[route, "input"])
            .inc_by(u.input);
        met.shadow_tokens
            .with_label_values(&[route, "output"])
            .inc_by(u.output);
    }
    let primary = tokio::time::timeout(Duration::from_secs(600), m.primary)
        .await
        .ok()
        .and_then(Result::ok);
    let Some(primary) = primary else { return };
    let (exact, f1) = agreement(&primary, &shadow_text);
    span.set(KeyValue::new("tollgate.shadow.agreement_f1", f1));
    span.set(KeyValue::new("tollgate.shadow.exact", exact));
    met.shadow_agreement
        .with_label_values(&[route, "token_f1"])
        .observe(f1);
    met.shadow_agreement
        .with_label_values(&[route, "exact"])
        .observe(if exact { 1.0 } else { 0.0 });
}

/// The request `raw` (in the app's API) as a whole, non-streaming request
/// for `model` of `provider` (in that provider's API).
pub(crate) fn whole_body(
    req: &RequestCopy,
    provider: &tollgate_config::Provider,
    model: &str,
) -> Result<Value, ProxyError> {
    let spec = TargetSpec {
        family: provider.kind.family(),
        kind: provider.kind,
        model,
        shaping: [None, None],
        stream_usage: false,
    };
    let request = Payload::new(req.raw.clone());
    let mut body: Value = serde_json::from_slice(&body_for(
        req.app,
        req.operation,
        &request,
        &req.requested_model,
        &spec,
    )?)
    .map_err(|e| ProxyError::from(ParseError::Malformed(e.to_string())))?;
    // Always a whole answer: simpler to compare, no stream to hold open.
    if let Some(o) = body.as_object_mut() {
        o.insert("stream".into(), Value::Bool(false));
        o.remove("stream_options");
    }
    Ok(body)
}

/// Sends `body` (from [`whole_body`]) to `model` of `providers[provider]`
/// with its credentials, within the default total timeout; the status and
/// the whole answer.
pub(crate) async fn send_whole(
    req: &RequestCopy,
    provider: usize,
    model: &str,
    body: &Value,
    trace: Option<crate::trace::Propagation>,
) -> Result<(http::StatusCode, Bytes), ShadowSkip> {
    let rt = &req.rt;
    let p = &rt.config.providers[provider];
    let family = p.kind.family();
    let (path, operation) = match family {
        Family::OpenAi => ("/v1/chat/completions", Operation::ChatCompletions),
        Family::Anthropic => ("/v1/messages", Operation::Messages),
    };
    let req = build_request(
        Outgoing {
            provider: p,
            credential: rt.credentials[provider].as_deref(),
            operation,
            method: Method::POST,
            path,
            query: None,
            model: Some(model),
            request_id: &req.request_id,
            body: Bytes::from(serde_json::to_vec(body).expect("serializes")),
            trace,
        },
        req.headers.clone(),
    )?;
    let timeout = rt.config.routing.defaults.timeouts.total;
    let resp = tokio::time::timeout(timeout, rt.client.send(&p.name, req))
        .await
        .map_err(|_| UpstreamError::Timeout {
            provider: p.name.clone(),
            timeout,
        })??;
    let status = resp.status();
    let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
        .await
        .ok()
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Ok((status, bytes))
}

/// The assistant text of a complete response in either API.
pub(crate) fn response_text(family: Family, v: &Value) -> String {
    match family {
        Family::OpenAi => v
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str)
            .or_else(|| v.pointer("/choices/0/text").and_then(Value::as_str))
            .unwrap_or("")
            .to_string(),
        Family::Anthropic => v
            .get("content")
            .and_then(Value::as_array)
            .map(|blocks| {
                blocks
                    .iter()
                    .filter_map(|b| b.get("text").and_then(Value::as_str))
                    .collect::<String>()
            })
            .unwrap_or_default(),
    }
}

/// The text in one stream event of either API (a content delta), if any.
pub(crate) fn event_text(family: Family, v: &Value) -> Option<&str> {
    let t = match family {
        Family::OpenAi => v.pointer("/choices/0/delta/content"),
        Family::Anthropic => v.pointer("/delta/text"),
    };
    t.and_then(Value::as_str)
}

fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// (normalized exact match, token-overlap F1 in [0, 1]).
pub(crate) fn agreement(a: &str, b: &str) -> (bool, f64) {
    let (ta, tb) = (tokens(a), tokens(b));
    if ta.is_empty() && tb.is_empty() {
        return (true, 1.0);
    }
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &ta {
        *counts.entry(t).or_default() += 1;
    }
    let mut common = 0i64;
    for t in &tb {
        if let Some(c) = counts.get_mut(t.as_str()) {
            if *c > 0 {
                *c -= 1;
                common += 1;
            }
        }
    }
    let f1 = if common == 0 {
        0.0
    } else {
        let p = common as f64 / tb.len() as f64;
        let r = common as f64 / ta.len() as f64;
        2.0 * p * r / (p + r)
    };
    (ta == tb, f1)
}

#[cfg(test)]
mod tests;
