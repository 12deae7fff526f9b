//! Other `/v1/*` paths (the Responses API, files, batches...): forwarded
//! to the default provider as they are, one attempt, no routing.

use bytes::Bytes;
use http::header::HeaderValue;
use opentelemetry::KeyValue;

use super::respond::{Answer, Body};
use super::settle::{self, Settle};
use crate::api::Endpoint;
use crate::body::upstream_body;
use crate::error::ProxyError;
use crate::state::Runtime;
use crate::upstream::{build_request, Outgoing, UpstreamError};

/// Other `/v1/*` paths: one attempt at the default provider, bytes as-is.
pub(super) async fn forward(
    rt: &Runtime,
    endpoint: Endpoint,
    parts: http::request::Parts,
    bytes: Bytes,
    request_id: &HeaderValue,
    settle: &mut Settle,
) -> Result<Answer, ProxyError> {
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
    let mut span = settle.attempt_phase("");
    let (host, port) = settle::split_authority(&provider.base_url.authority);
    span.set(KeyValue::new("server.address", host.to_string()));
    if let Some(p) = port {
        span.set(KeyValue::new("server.port", p as i64));
    }
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
            trace: span.propagation(),
        },
        parts.headers,
    )?;
    let timeout = rt.config.routing.defaults.timeouts.first_byte;
    let sent = std::time::Instant::now();
    let resp =
        match tokio::time::timeout(timeout, rt.client.send(&provider.name, upstream_req)).await {
            Err(_) => {
                return Err(UpstreamError::Timeout {
                    provider: provider.name.clone(),
                    timeout,
                }
                .into())
            }
            Ok(r) => r?,
        };
    settle.upstream_answered(sent.elapsed(), resp.status().as_u16());
    span.set(KeyValue::new(
        "http.response.status_code",
        resp.status().as_u16() as i64,
    ));
    drop(span);
    let (head, body) = resp.into_parts();
    Ok(Answer {
        head,
        body: Body::Raw {
            body: upstream_body(body),
            first: None,
        },
        api: provider.kind.family(),
        route: None,
        target: None,
        include_usage: false,
        injected_usage: false,
        shadow: None,
    })
}
