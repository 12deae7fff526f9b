//! Anthropic's error body: `{"type":"error","error":{"type","message"},"request_id"}`.

use http::header::{HeaderValue, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use crate::mock::body::MockBody;
use crate::mock::error::ApiError;
use crate::mock::router::json_response;

#[derive(Serialize)]
struct Envelope<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: Body<'a>,
    request_id: &'a str,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: &'a str,
}

pub(super) fn render(err: &ApiError, request_id: &str) -> Response<MockBody> {
    let (kind, stock_message) = stock(err.status);
    let body = Envelope {
        kind: "error",
        error: Body {
            kind,
            message: err.message.as_deref().unwrap_or(stock_message),
        },
        request_id,
    };
    let json = serde_json::to_vec(&body).expect("error bodies serialize");
    let mut resp = json_response(err.status, json);
    if let Some(secs) = err.retry_after {
        resp.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Error `type` and default message for a status, per Anthropic's error docs.
fn stock(status: StatusCode) -> (&'static str, &'static str) {
    match status.as_u16() {
        400 => ("invalid_request_error", "Invalid request"),
        401 => ("authentication_error", "invalid x-api-key"),
        402 => (
            "billing_error",
            "Your credit balance is too low to access the Anthropic API.",
        ),
        403 => (
            "permission_error",
            "Your API key does not have permission to use the specified resource.",
        ),
        404 => ("not_found_error", "Not Found"),
        413 => (
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes.",
        ),
        429 => (
            "rate_limit_error",
            "Number of request tokens has exceeded your per-minute rate limit",
        ),
        500 => ("api_error", "Internal server error"),
        504 => ("timeout_error", "Request timed out"),
        529 => ("overloaded_error", "Overloaded"),
        s if s >= 500 => ("api_error", "Internal server error"),
        _ => ("invalid_request_error", "Invalid request"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn shape_and_types() {
        for (code, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (413, "request_too_large"),
            (429, "rate_limit_error"),
            (500, "api_error"),
            (503, "api_error"),
            (529, "overloaded_error"),
        ] {
            let err = ApiError::status(StatusCode::from_u16(code).unwrap());
            let resp = render(&err, "req_x");
            assert_eq!(resp.status(), code);
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(v["type"], "error");
            assert_eq!(v["error"]["type"], kind, "{code}");
            assert_eq!(v["request_id"], "req_x");
        }
    }
}
