//! The admin listener, off the data path: `/metrics`, `/healthz`, `/readyz`,
//! `/config`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use crate::body::ResponseBody;
use crate::state::Shared;

/// Handles one admin request.
pub(crate) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<ResponseBody> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET is supported\n");
    }
    match req.uri().path() {
        "/metrics" => {
            // One page: the proxy's registry plus the budget engine's and
            // the cache's.
            let rt = shared.runtime.load();
            rt.cache.refresh_gauges();
            let mut extra = rt.budget.metrics().gather();
            extra.extend(rt.cache.metrics().gather());
            let text = shared.metrics.encode_with(extra);
            let mut resp = Response::new(ResponseBody::full(Bytes::from(text)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            if shared.draining.load(Ordering::Relaxed) {
                return text(StatusCode::SERVICE_UNAVAILABLE, "draining\n");
            }
            let reasons = shared.runtime.load().unready_reasons();
            if reasons.is_empty() {
                text(StatusCode::OK, "ready\n")
            } else {
                text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &format!("not ready:\n{}\n", reasons.join("\n")),
                )
            }
        }
        "/config" => {
            let rt = shared.runtime.load();
            let mut raw = serde_json::to_value(&rt.config.raw).expect("raw config serializes");
            redact(&mut raw);
            let loaded_at = rt
                .loaded_at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            let body = json!({
                "hash": rt.config.hash,
                "loadedAtUnix": loaded_at,
                "config": raw,
            });
            let mut resp = Response::new(ResponseBody::full(Bytes::from(
                serde_json::to_vec_pretty(&body).expect("json serializes"),
            )));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            resp
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics /healthz /readyz /config\n",
        ),
    }
}

/// Replaces every value that may hold a secret. Credential *references*
/// (an env var name, a file path) stay: they tell an operator where to look.
fn redact(config: &mut serde_json::Value) {
    if let Some(providers) = config.get_mut("providers").and_then(|p| p.as_array_mut()) {
        for p in providers {
            if let Some(headers) = p.get_mut("headers").and_then(|h| h.as_object_mut()) {
                for v in headers.values_mut() {
                    *v = json!("***");
                }
            }
        }
    }
}

fn text(status: StatusCode, body: &str) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_header_values_only() {
        let mut v = json!({"providers": [{"name": "o", "credentials": {"file": "/k"}, "headers": {"x-token": "s3cret"}}]});
        redact(&mut v);
        let text = v.to_string();
        assert!(!text.contains("s3cret"));
        assert!(text.contains("/k"));
    }
}
