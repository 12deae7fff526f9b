//! The Anthropic API surface: `x-api-key` and `anthropic-version` checks,
//! routing, response headers and the `{"type":"error",...}` shape.

mod error;
mod messages;
mod stream;

use http::header::HeaderValue;
use http::{Method, Response, StatusCode};
use tokio::time::Instant;

use super::body::MockBody;
use super::error::{ApiError, Fault};
use super::ids;
use super::router::Exchange;

pub(crate) async fn handle(ex: &Exchange<'_>) -> Response<MockBody> {
    let request_id = ids::id("req_01", 22);
    let resp = match route(ex).await {
        Ok(resp) => resp,
        Err(mut err) => {
            err.retry_after = err.retry_after.or(ex.switches.retry_after);
            error::render(&err, &request_id)
        }
    };
    decorate(resp, &request_id)
}

pub(crate) fn error_response(err: &ApiError, _started: Instant) -> Response<MockBody> {
    let request_id = ids::id("req_01", 22);
    decorate(error::render(err, &request_id), &request_id)
}

async fn route(ex: &Exchange<'_>) -> Result<Response<MockBody>, ApiError> {
    authorize(ex)?;
    if ex.header("anthropic-version").is_none() {
        return Err(ApiError::bad_request(
            "anthropic-version: header is required",
        ));
    }
    let fault = ex.fault();
    if let Some(Fault::Status(status)) = fault {
        return Err(ApiError::status(status));
    }
    let context_length = fault == Some(Fault::ContextLength);
    match (&ex.parts.method, ex.parts.uri.path()) {
        (&Method::POST, "/v1/messages") => messages::create(ex, context_length).await,
        (&Method::POST, "/v1/messages/count_tokens") => messages::count_tokens(ex).await,
        _ => Err(ApiError::new(StatusCode::NOT_FOUND, "Not Found")),
    }
}

fn authorize(ex: &Exchange<'_>) -> Result<(), ApiError> {
    let Some(expected) = ex.state.anthropic_key.as_deref() else {
        return Ok(());
    };
    match ex.header("x-api-key") {
        Some(key) if key == expected => Ok(()),
        Some(_) => Err(ApiError::new(StatusCode::UNAUTHORIZED, "invalid x-api-key")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "x-api-key header is required",
        )),
    }
}

/// Rate-limit header triples (limit, remaining, reset) and the limit they announce.
const LIMITS: [(&str, &str, &str, u64); 4] = [
    (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        4_000,
    ),
    (
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-tokens-reset",
        2_000_000,
    ),
    (
        "anthropic-ratelimit-input-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-input-tokens-reset",
        2_000_000,
    ),
    (
        "anthropic-ratelimit-output-tokens-limit",
        "anthropic-ratelimit-output-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
        400_000,
    ),
];

/// The headers Anthropic puts on every answer.
fn decorate(mut resp: Response<MockBody>, request_id: &str) -> Response<MockBody> {
    let reset = HeaderValue::try_from(ids::rfc3339(ids::unix_now() + 1)).ok();
    let h = resp.headers_mut();
    if let Ok(id) = HeaderValue::try_from(request_id) {
        h.insert("request-id", id);
    }
    for (limit_name, remaining_name, reset_name, limit) in LIMITS {
        h.insert(limit_name, HeaderValue::from(limit));
        h.insert(remaining_name, HeaderValue::from(limit - 1));
        if let Some(reset) = &reset {
            h.insert(reset_name, reset.clone());
        }
    }
    resp
}

/// The context window the context-length error claims.
const CONTEXT_WINDOW: u64 = 200_000;

/// Anthropic's 400 for a prompt over the window; always over by the prompt.
fn context_length(input_tokens: u64) -> ApiError {
    ApiError::bad_request(format!(
        "prompt is too long: {} tokens > {CONTEXT_WINDOW} maximum",
        CONTEXT_WINDOW + input_tokens
    ))
}
