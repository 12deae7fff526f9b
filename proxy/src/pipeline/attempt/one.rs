//! One attempt on one target: the target's body (model, shaping,
//! translation), the request with its credentials, the wait for the
//! provider's headers (and, for a stream, its first event), and the answer
//! as it came — whole, streamed, forwarded raw, or an error to classify.

use std::sync::Arc;

use bytes::Bytes;
use http::header;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::{Failure, Last};
use crate::api::{Family, Operation};
use crate::body::{read_up_to, upstream_body, Limits, Read};
use crate::error::ProxyError;
use crate::pipeline::exchange::Exchange;
use crate::pipeline::prepare::{body_for, TargetSpec};
use crate::pipeline::respond::{Answer, Body};
use crate::pipeline::settle::Settle;
use crate::routing::retry::{is_context_length_error, retry_after, retryable_status};
use crate::routing::targets::TargetStats;
use crate::routing::PlanTarget;
use crate::trace::Phase;
use crate::upstream::{build_request, Outgoing, UpstreamError};

/// JSON responses up to this size are buffered (to read usage, translate,
/// and retry a body cut short); larger ones stream through uninspected.
const MAX_BUFFERED_RESPONSE: u64 = 32 << 20;
/// Error bodies are read up to this size to classify them.
const MAX_ERROR_BODY: usize = 1 << 20;

/// Sends the request to `target` once; the answer, or why not.
pub(super) async fn attempt(
    x: &Exchange<'_>,
    target: &PlanTarget<'_>,
    stats: &Arc<TargetStats>,
    deadline: Instant,
    settle: &mut Settle,
    span: &Phase,
) -> Result<Answer, Failure> {
    let (rt, plan, app) = (x.rt, x.plan(), x.endpoint.family);
    let provider = &rt.config.providers[target.provider];
    let api = provider.kind.family();
    settle.set_provider(provider);
    let spec = TargetSpec {
        family: api,
        kind: provider.kind,
        model: &target.model,
        shaping: [plan.shaping, target.shaping],
        stream_usage: x.stream
            && api == Family::OpenAi
            && matches!(
                x.endpoint.operation,
                Operation::ChatCompletions | Operation::Completions
            ),
    };
    let skip = |e: ProxyError| Failure::Skip(Last::Error(e));
    let body = body_for(app, x.endpoint.operation, &x.body, x.model, &spec).map_err(skip)?;
    let injected_usage = spec.injects_usage(app, &x.body);
    let req = build_request(
        Outgoing {
            provider,
            credential: rt.credentials[target.provider].as_deref(),
            operation: x.endpoint.operation,
            method: x.method().clone(),
            path: upstream_path(x, api),
            query: x.query(),
            model: Some(&target.model),
            request_id: x.request_id,
            body,
            trace: span.propagation(),
        },
        x.headers().clone(),
    )
    .map_err(|e| skip(e.into()))?;

    let timeouts = &plan.policy.timeouts;
    let first_byte_by = (Instant::now() + timeouts.first_byte).min(deadline);
    let client = rt.client_for(timeouts.connect);
    let _in_flight = stats.start();
    let sent = Instant::now();
    let timed_out = || Failure::Transient {
        last: Last::Error(
            UpstreamError::Timeout {
                provider: provider.name.clone(),
                timeout: timeouts.first_byte,
            }
            .into(),
        ),
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
            let reason = if matches!(e, UpstreamError::Connect { .. }) {
                "connect_error"
            } else {
                "protocol_error"
            };
            return Err(Failure::Transient {
                last: Last::Error(e.into()),
                wait: None,
                reason,
            });
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    settle.upstream_answered(sent.elapsed(), status.as_u16());
    let (head, mut body) = resp.into_parts();

    if !status.is_success() {
        return match classify(head, body, api, deadline).await {
            // Other client errors are the app's to see; no retry can fix them.
            Failure::Skip(Last::Upstream { head, body, api }) => {
                Ok(error_answer(x, head, body, api))
            }
            f => Err(f),
        };
    }

    let is_sse = head
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("text/event-stream"));
    let cut = |e: String| Failure::Transient {
        last: Last::Error(
            UpstreamError::Protocol {
                provider: provider.name.clone(),
                reason: e,
            }
            .into(),
        ),
        wait: None,
        reason: "reset",
    };
    let observe_latency = || {
        stats.observe_latency(sent.elapsed());
        x.shared
            .metrics
            .target_latency
            .with_label_values(&[&stats.key])
            .observe(sent.elapsed().as_secs_f64());
    };
    let body = if is_sse {
        // Hold the response until the first event: a failure before it can
        // still be retried without the app noticing.
        let first = match tokio::time::timeout_at(first_byte_by, body.frame()).await {
            Err(_) => return Err(timed_out()),
            Ok(None) => return Err(cut("the stream ended before its first event".into())),
            Ok(Some(Err(e))) => return Err(cut(format!("stream: {e}"))),
            Ok(Some(Ok(f))) => f.into_data().ok(),
        };
        observe_latency();
        Body::Stream {
            body: upstream_body(body),
            first,
            limits: Limits {
                idle: timeouts.idle,
                deadline: x.started + timeouts.total,
            },
        }
    } else if http_body::Body::size_hint(&body)
        .upper()
        .is_none_or(|n| n <= MAX_BUFFERED_RESPONSE)
    {
        // A body of unknown length (chunked, or HTTP/2 without
        // content-length) is buffered too, unless it turns out large.
        let read = tokio::time::timeout_at(deadline, read_up_to(&mut body, MAX_BUFFERED_RESPONSE));
        match read.await {
            Err(_) => return Err(timed_out()),
            Ok(Err(e)) => return Err(cut(format!("response body: {e}"))),
            Ok(Ok(Read::Prefix(prefix))) => Body::Raw {
                body: upstream_body(body),
                first: Some(prefix),
            },
            Ok(Ok(Read::Whole(bytes))) => {
                observe_latency();
                Body::Whole(bytes)
            }
        }
    } else {
        Body::Raw {
            body: upstream_body(body),
            first: None,
        }
    };
    Ok(Answer {
        head,
        body,
        api,
        route: Some(plan.label.to_string()),
        target: Some(target.key.clone()),
        include_usage: x.include_usage(),
        injected_usage,
        shadow: None,
    })
}

/// Why a provider's error answer failed the attempt: worth a retry, a
/// context-length refusal, or (`Skip`) the app's to see.
async fn classify(
    head: http::response::Parts,
    body: Incoming,
    api: Family,
    deadline: Instant,
) -> Failure {
    let status = head.status.as_u16();
    let wait = retry_after(&head.headers);
    let read = Limited::new(body, MAX_ERROR_BODY).collect();
    let body = match tokio::time::timeout_at(deadline, read).await {
        Ok(Ok(c)) => c.to_bytes(),
        _ => Bytes::new(),
    };
    let context_length = is_context_length_error(status, &body);
    let last = Last::Upstream { head, body, api };
    if retryable_status(status) {
        let reason = if status == 429 {
            "rate_limited"
        } else {
            "server_error"
        };
        return Failure::Transient { last, wait, reason };
    }
    if context_length {
        return Failure::ContextLength(last);
    }
    Failure::Skip(last)
}

/// A provider's error answer, for the app.
pub(super) fn error_answer(
    x: &Exchange<'_>,
    head: http::response::Parts,
    body: Bytes,
    api: Family,
) -> Answer {
    Answer {
        head,
        body: Body::Error(body),
        api,
        route: Some(x.plan().label.to_string()),
        target: None,
        include_usage: false,
        injected_usage: false,
        shadow: None,
    }
}

/// The path the target sees: the app's, or the other API's chat endpoint.
fn upstream_path(x: &Exchange<'_>, target: Family) -> &'static str {
    match (x.endpoint.family == target, target) {
        (true, _) => match x.path() {
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
