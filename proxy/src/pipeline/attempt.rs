//! Route and send: attempts, retries and fallbacks over a plan's targets.
//!
//! The strategy picks the first target among those the circuit breaker
//! admits; each target gets up to `retry.maxAttempts` attempts with
//! exponential backoff and full jitter (at least the provider's
//! `Retry-After`); then the next target in the route's order. A context-length
//! refusal jumps to a target marked `longContext`. Everything stays within
//! `retry.deadline`. Nothing reaches the app until an attempt succeeds — for
//! streams, until the first event has arrived — so a failure before that is
//! invisible to the app; after it, the stream is never switched (see `body`).

use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response};
use http_body_util::{BodyExt, Limited};
use serde_json::Value;
use tokio::time::Instant;

use super::budget::OutputText;
use super::convert;
use super::prepare::{app_wants_stream_usage, body_for, TargetSpec};
use super::settle::Settle;
use crate::api::usage::Usage;
use crate::api::{Endpoint, Family, Operation};
use crate::body::{read_up_to, Read, ResponseBody, StreamSpec};
use crate::error::ProxyError;
use crate::routing::balance::{select, Choice};
use crate::routing::breaker::{Admit, State};
use crate::routing::retry::{backoff, is_context_length_error, retry_after, retryable_status};
use crate::routing::targets::TargetStats;
use crate::routing::{Plan, PlanTarget};
use crate::state::{Runtime, Shared};
use crate::upstream::{build_request, strip_hop_by_hop, Outgoing};

/// JSON responses up to this size are buffered (to read usage, translate,
/// and retry a body cut short); larger ones stream through uninspected.
const MAX_BUFFERED_RESPONSE: u64 = 32 << 20;
/// Error bodies are read up to this size to classify them.
const MAX_ERROR_BODY: usize = 1 << 20;

/// One app request, as every attempt sees it.
pub struct Exchange<'a> {
    pub rt: &'a std::sync::Arc<Runtime>,
    pub shared: &'a Shared,
    pub endpoint: Endpoint,
    pub method: &'a Method,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
    pub request_id: &'a HeaderValue,
    pub raw: &'a Bytes,
    pub parsed: Option<Value>,
    pub requested_model: &'a str,
    pub stream: bool,
    /// When the request arrived.
    pub started: Instant,
    /// PII work on the answer (restore pseudonyms, scan), if any.
    pub pii: Option<crate::pii::Answers>,
}

/// Why an attempt did not produce the answer.
enum Failure {
    /// Worth retrying or falling back; `last` is what the app gets if
    /// nothing better comes.
    Transient {
        last: Last,
        wait: Option<Duration>,
        reason: &'static str,
    },
    /// The prompt is too long for this target.
    ContextLength(Last),
    /// This target cannot serve the request at all (e.g. no credentials).
    Skip(Last),
}

/// The best answer so far when every attempt fails.
enum Last {
    Upstream {
        status: http::StatusCode,
        headers: HeaderMap,
        body: Bytes,
        family: Family,
    },
    Error(ProxyError),
}

/// A successful attempt: the response, and where the primary's text will
/// come from when a shadow comparison wants it.
type Attempt = Result<(Response<ResponseBody>, Option<crate::shadow::PrimaryText>), Failure>;

/// Runs the plan; returns the response for the app.
pub async fn run(
    x: &mut Exchange<'_>,
    plan: &Plan<'_>,
    settle: &mut Settle,
) -> Result<Response<ResponseBody>, ProxyError> {
    let policy = plan.policy;
    let deadline = x.started + policy.retry.deadline.min(policy.timeouts.total);
    let m = &x.shared.metrics;
    let stats: Vec<_> = plan
        .targets
        .iter()
        .map(|t| x.shared.targets.get(&t.key))
        .collect();
    let mut tried = vec![false; plan.targets.len()];
    let mut last: Option<Last> = None;
    let mut attempted_any = false;

    let mirror = plan.shadow.filter(|s| crate::shadow::sampled(s));
    let mut next = first_target(plan, &stats, x);
    if let Some(i) = next {
        m.selections
            .with_label_values(&[plan.label, &plan.targets[i].key])
            .inc();
    }
    while let Some(i) = next {
        tried[i] = true;
        let target = &plan.targets[i];
        let mut jump_long_context = false;
        for n in 1..=policy.retry.max_attempts {
            let admitted = {
                let now = std::time::Instant::now();
                let mut b = stats[i].breaker.lock().expect("lock");
                let a = b.admit(&policy.breaker, now);
                if a == Admit::Probe {
                    transition(x.shared, &stats[i], State::HalfOpen);
                }
                a
            };
            if admitted == Admit::No {
                break;
            }
            if Instant::now() >= deadline {
                break;
            }
            attempted_any = true;
            match attempt(
                x,
                plan,
                target,
                &stats[i],
                deadline,
                settle,
                mirror.is_some(),
            )
            .await
            {
                Ok((resp, primary)) => {
                    record(x.shared, &stats[i], policy, false);
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, "success"])
                        .inc();
                    if let (Some(shadow), Some(primary)) = (mirror, primary) {
                        crate::shadow::spawn(
                            &x.shared.mirrors,
                            crate::shadow::Mirror {
                                rt: x.rt.clone(),
                                metrics: x.shared.metrics.clone(),
                                route: plan.label.to_string(),
                                shadow: shadow.clone(),
                                app: x.endpoint.family,
                                operation: x.endpoint.operation,
                                raw: x.raw.clone(),
                                requested_model: x.requested_model.to_string(),
                                headers: x.headers.clone(),
                                request_id: x.request_id.clone(),
                                primary,
                            },
                        );
                    }
                    return Ok(resp);
                }
                Err(Failure::Transient {
                    last: l,
                    wait,
                    reason,
                }) => {
                    record(x.shared, &stats[i], policy, true);
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, reason])
                        .inc();
                    last = Some(l);
                    // No wait for an attempt that will not be made: the
                    // last one, or a target this failure just ejected.
                    if n == policy.retry.max_attempts || ejected(&stats[i], plan) {
                        break;
                    }
                    let pause = backoff(&policy.retry, n, wait);
                    if Instant::now() + pause >= deadline {
                        break;
                    }
                    m.retries
                        .with_label_values(&[plan.label, &target.key, reason])
                        .inc();
                    tokio::time::sleep(pause).await;
                }
                Err(Failure::ContextLength(l)) => {
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, "context_length"])
                        .inc();
                    last = Some(l);
                    jump_long_context = true;
                    break;
                }
                Err(Failure::Skip(l)) => {
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, "skipped"])
                        .inc();
                    last = Some(l);
                    break;
                }
            }
        }
        next = if jump_long_context {
            let j = (0..plan.targets.len()).find(|&j| !tried[j] && plan.targets[j].long_context);
            if j.is_some() {
                m.fallbacks
                    .with_label_values(&[plan.label, "context_length"])
                    .inc();
            }
            j
        } else {
            let j = (0..plan.targets.len()).find(|&j| !tried[j] && !ejected(&stats[j], plan));
            if j.is_some() && Instant::now() < deadline {
                m.fallbacks
                    .with_label_values(&[plan.label, "target_failed"])
                    .inc();
                j
            } else {
                None
            }
        };
    }

    match last {
        Some(Last::Upstream {
            status,
            mut headers,
            body,
            family,
        }) => {
            let body = convert::error(x.endpoint.family, family, status.as_u16(), body);
            strip_hop_by_hop(&mut headers);
            headers.remove(header::CONTENT_LENGTH);
            if family != x.endpoint.family {
                headers.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
            }
            let mut resp = Response::new(ResponseBody::full(body));
            *resp.status_mut() = status;
            *resp.headers_mut() = headers;
            finish_headers(&mut resp, x, plan, None);
            Ok(resp)
        }
        Some(Last::Error(e)) => Err(e),
        None if !attempted_any => Err(ProxyError::AllTargetsEjected {
            route: plan.label.to_string(),
        }),
        None => Err(ProxyError::UpstreamTimeout {
            provider: plan.label.to_string(),
            timeout: policy.retry.deadline,
        }),
    }
}

/// The strategy's pick among targets the breaker does not hold out.
fn first_target(
    plan: &Plan<'_>,
    stats: &[std::sync::Arc<TargetStats>],
    x: &Exchange<'_>,
) -> Option<usize> {
    let open: Vec<usize> = (0..plan.targets.len())
        .filter(|&i| !ejected(&stats[i], plan))
        .collect();
    if open.is_empty() {
        return None;
    }
    let choices: Vec<Choice<'_>> = open
        .iter()
        .map(|&i| Choice {
            weight: plan.targets[i].weight,
            stats: &stats[i],
        })
        .collect();
    Some(open[select(plan.strategy, plan.label, &choices, &x.shared.targets)])
}

fn ejected(stats: &TargetStats, plan: &Plan<'_>) -> bool {
    stats
        .breaker
        .lock()
        .expect("lock")
        .is_ejected(&plan.policy.breaker, std::time::Instant::now())
}

fn record(
    shared: &Shared,
    stats: &TargetStats,
    policy: &tollgate_config::RoutePolicy,
    failed: bool,
) {
    let changed = stats.breaker.lock().expect("lock").record(
        &policy.breaker,
        std::time::Instant::now(),
        failed,
    );
    if let Some(state) = changed {
        transition(shared, stats, state);
    }
}

fn transition(shared: &Shared, stats: &TargetStats, state: State) {
    let m = &shared.metrics;
    m.circuit_transitions
        .with_label_values(&[&stats.key, state.as_str()])
        .inc();
    m.target_ejected
        .with_label_values(&[&stats.key])
        .set((state != State::Closed) as i64);
    match state {
        State::Open => tracing::warn!(target = %stats.key, "circuit opened: target ejected"),
        State::HalfOpen => tracing::info!(target = %stats.key, "circuit half-open: probing"),
        State::Closed => tracing::info!(target = %stats.key, "circuit closed: target restored"),
    }
}

/// One attempt on one target.
async fn attempt(
    x: &mut Exchange<'_>,
    plan: &Plan<'_>,
    target: &PlanTarget<'_>,
    stats: &std::sync::Arc<TargetStats>,
    deadline: Instant,
    settle: &mut Settle,
    want_text: bool,
) -> Attempt {
    let rt = x.rt;
    let provider = &rt.config.providers[target.provider];
    let family = provider.kind.family();
    settle.set_provider(provider);
    let spec = TargetSpec {
        family,
        kind: provider.kind,
        model: &target.model,
        shaping: [plan.shaping, target.shaping],
        stream_usage: x.stream
            && family == Family::OpenAi
            && matches!(
                x.endpoint.operation,
                Operation::ChatCompletions | Operation::Completions
            ),
    };
    let drop_usage_chunk = spec.stream_usage
        && x.endpoint.family == family
        && !app_wants_stream_usage(x.raw, &mut x.parsed);
    let body = body_for(
        x.endpoint.family,
        x.endpoint.operation,
        x.raw,
        &mut x.parsed,
        x.requested_model,
        &spec,
    )
    .map_err(|e| Failure::Skip(Last::Error(e)))?;
    let req = build_request(
        Outgoing {
            provider,
            credential: rt.credentials[target.provider].as_deref(),
            operation: x.endpoint.operation,
            method: x.method.clone(),
            path: upstream_path(x, family),
            query: x.query,
            model: Some(&target.model),
            request_id: x.request_id,
            body,
        },
        x.headers.clone(),
    )
    .map_err(|e| Failure::Skip(Last::Error(e)))?;

    let timeouts = &plan.policy.timeouts;
    let first_byte_by = (Instant::now() + timeouts.first_byte).min(deadline);
    let client = rt.client_for(timeouts.connect);
    let _in_flight = stats.start();
    let sent = Instant::now();
    let timed_out = || Failure::Transient {
        last: Last::Error(ProxyError::UpstreamTimeout {
            provider: provider.name.clone(),
            timeout: timeouts.first_byte,
        }),
        wait: None,
        reason: "timeout",
    };
    settle.attempt_sent(&target.model);
    let sent_result =
        tokio::time::timeout_at(first_byte_by, client.send(&provider.name, req)).await;
    settle.attempt_done();
    let resp = match sent_result {
        Err(_) => return Err(timed_out()),
        Ok(Err(e)) => {
            let reason = if matches!(e, ProxyError::UpstreamConnect { .. }) {
                "connect_error"
            } else {
                "protocol_error"
            };
            return Err(Failure::Transient {
                last: Last::Error(e),
                wait: None,
                reason,
            });
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    settle.upstream_answered(sent.elapsed(), status.as_u16());
    let (mut parts, mut body) = resp.into_parts();

    if !status.is_success() {
        let wait = retry_after(&parts.headers);
        let bytes =
            match tokio::time::timeout_at(deadline, Limited::new(body, MAX_ERROR_BODY).collect())
                .await
            {
                Ok(Ok(c)) => c.to_bytes(),
                _ => Bytes::new(),
            };
        let last = Last::Upstream {
            status,
            headers: parts.headers,
            body: bytes,
            family,
        };
        let Last::Upstream { body: ref b, .. } = last else {
            unreachable!()
        };
        if retryable_status(status.as_u16()) {
            let reason = if status.as_u16() == 429 {
                "rate_limited"
            } else {
                "server_error"
            };
            return Err(Failure::Transient { last, wait, reason });
        }
        if is_context_length_error(status.as_u16(), b) {
            return Err(Failure::ContextLength(last));
        }
        // Other client errors are the app's to see; no retry can fix them.
        let Last::Upstream {
            status,
            headers,
            body,
            family,
        } = last
        else {
            unreachable!()
        };
        return Ok((error_response(x, plan, status, headers, body, family), None));
    }

    let is_sse = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let cut = |e: String| Failure::Transient {
        last: Last::Error(ProxyError::UpstreamProtocol {
            provider: provider.name.clone(),
            reason: e,
        }),
        wait: None,
        reason: "reset",
    };
    let mut primary = None;
    let resp_body = if is_sse {
        // Hold the response until the first event: a failure before it can
        // still be retried without the app noticing.
        let first = match tokio::time::timeout_at(first_byte_by, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => return Err(cut("the stream ended before its first event".into())),
            Ok(Some(Err(e))) => return Err(cut(format!("stream: {e}"))),
            Ok(Some(Ok(f))) => f.into_data().ok(),
        };
        stats.observe_latency(sent.elapsed());
        x.shared
            .metrics
            .target_latency
            .with_label_values(&[&stats.key])
            .observe(sent.elapsed().as_secs_f64());
        let include_usage = x
            .parsed
            .as_ref()
            .and_then(|v| v.pointer("/stream_options/include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if family != x.endpoint.family {
            parts.headers.remove("content-length");
        }
        let capture = want_text.then(|| {
            let (tx, rx) = tokio::sync::oneshot::channel();
            primary = Some(crate::shadow::PrimaryText::Later(rx));
            tx
        });
        ResponseBody::upstream(
            body,
            first,
            Some(StreamSpec {
                upstream: family,
                app: x.endpoint.family,
                transform: crate::pii::Answers::stream(
                    x.pii.as_ref(),
                    &x.shared.metrics,
                    x.endpoint.family,
                    convert::stream(x.endpoint.family, family, x.requested_model, include_usage),
                ),
                idle: timeouts.idle,
                deadline: x.started + timeouts.total,
                capture,
                drop_usage_chunk,
                keep_output: settle.wants_output_text(),
            }),
        )
    } else if http_body::Body::size_hint(&body)
        .upper()
        .is_none_or(|n| n <= MAX_BUFFERED_RESPONSE)
    {
        // A body of unknown length (chunked, or HTTP/2 without
        // content-length) is buffered too, unless it turns out large.
        let bytes =
            match tokio::time::timeout_at(deadline, read_up_to(&mut body, MAX_BUFFERED_RESPONSE))
                .await
            {
                Err(_) => return Err(timed_out()),
                Ok(Err(e)) => return Err(cut(format!("response body: {e}"))),
                Ok(Ok(Read::Prefix(prefix))) => {
                    return Ok((
                        committed(
                            x,
                            plan,
                            target,
                            parts,
                            ResponseBody::upstream(body, Some(prefix), None),
                        ),
                        None,
                    ))
                }
                Ok(Ok(Read::Whole(bytes))) => bytes,
            };
        stats.observe_latency(sent.elapsed());
        x.shared
            .metrics
            .target_latency
            .with_label_values(&[&stats.key])
            .observe(sent.elapsed().as_secs_f64());
        let usage = Usage::from_response_body(family, &bytes);
        if usage.is_none() && settle.wants_output_text() {
            settle.set_output_text(OutputText::of_response(family, &bytes));
        }
        settle.set_usage(usage, true);
        if want_text {
            primary = Some(crate::shadow::PrimaryText::Ready(
                crate::shadow::response_text(family, &bytes),
            ));
        }
        ResponseBody::full(crate::pii::Answers::whole(
            x.pii.as_ref(),
            &x.shared.metrics,
            x.endpoint.family,
            convert::response(x.endpoint.family, family, bytes, x.requested_model),
        ))
    } else {
        ResponseBody::upstream(body, None, None)
    };
    Ok((committed(x, plan, target, parts, resp_body), primary))
}

/// The response for the app from a successful attempt.
fn committed(
    x: &Exchange<'_>,
    plan: &Plan<'_>,
    target: &PlanTarget<'_>,
    mut parts: http::response::Parts,
    body: ResponseBody,
) -> Response<ResponseBody> {
    strip_hop_by_hop(&mut parts.headers);
    parts.headers.remove(header::CONTENT_LENGTH);
    let mut resp = Response::from_parts(parts, body);
    finish_headers(&mut resp, x, plan, Some(target));
    resp
}

/// The path the target sees: the app's, or the other API's chat endpoint.
fn upstream_path(x: &Exchange<'_>, target: Family) -> &'static str {
    match (x.endpoint.family == target, target) {
        (true, _) => match x.path {
            "/v1/chat/completions" => "/v1/chat/completions",
            "/v1/completions" => "/v1/completions",
            "/v1/embeddings" => "/v1/embeddings",
            "/v1/messages" => "/v1/messages",
            "/v1/messages/count_tokens" => "/v1/messages/count_tokens",
            _ => "/v1/chat/completions",
        },
        (false, Family::Anthropic) => "/v1/messages",
        (false, Family::OpenAi) => "/v1/chat/completions",
    }
}

fn error_response(
    x: &Exchange<'_>,
    plan: &Plan<'_>,
    status: http::StatusCode,
    mut headers: HeaderMap,
    body: Bytes,
    family: Family,
) -> Response<ResponseBody> {
    let body = convert::error(x.endpoint.family, family, status.as_u16(), body);
    strip_hop_by_hop(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    if family != x.endpoint.family {
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let mut resp = Response::new(ResponseBody::full(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    finish_headers(&mut resp, x, plan, None);
    resp
}

/// Request id and routing headers on every upstream-derived response.
fn finish_headers(
    resp: &mut Response<ResponseBody>,
    x: &Exchange<'_>,
    plan: &Plan<'_>,
    target: Option<&PlanTarget<'_>>,
) {
    let h = resp.headers_mut();
    if let Some(theirs) = h.insert("x-request-id", x.request_id.clone()) {
        if theirs != x.request_id {
            h.insert("x-upstream-request-id", theirs);
        }
    }
    if let Ok(v) = HeaderValue::from_str(plan.label) {
        h.insert("x-tollgate-route", v);
    }
    if let Some(t) = target {
        if let Ok(v) = HeaderValue::from_str(&t.key) {
            h.insert("x-tollgate-target", v);
        }
    }
}
