//! The OpenAI API surface: bearer auth, routing, response headers and the
//! `{"error": {...}}` shape.

mod chat;
mod completions;
pub(crate) mod embeddings;
mod error;
mod models;
mod usage;

use http::header::HeaderValue;
use http::{Method, Response, StatusCode};
use tokio::time::Instant;

use super::body::MockBody;
use super::error::{ApiError, Fault};
use super::ids;
use super::router::Exchange;

pub(crate) async fn handle(ex: &Exchange<'_>) -> Response<MockBody> {
    match route(ex).await {
        Ok(resp) => decorate(resp, ex.started),
        Err(mut err) => {
            err.retry_after = err.retry_after.or(ex.switches.retry_after);
            error_response(&err, ex.started)
        }
    }
}

pub(crate) fn error_response(err: &ApiError, started: Instant) -> Response<MockBody> {
    decorate(error::render(err), started)
}

async fn route(ex: &Exchange<'_>) -> Result<Response<MockBody>, ApiError> {
    authorize(ex)?;
    let fault = ex.fault();
    if let Some(Fault::Status(status)) = fault {
        return Err(ApiError::status(status));
    }
    let context_length = fault == Some(Fault::ContextLength);
    let method = &ex.parts.method;
    let path = ex.parts.uri.path();
    match (method, path) {
        (&Method::POST, "/v1/chat/completions") => chat::create(ex, context_length).await,
        (&Method::POST, "/v1/completions") => completions::create(ex, context_length).await,
        (&Method::POST, "/v1/embeddings") => embeddings::create(ex, context_length).await,
        (&Method::GET, "/v1/models") => Ok(models::list(ex).await),
        (&Method::GET, _) if path.starts_with("/v1/models/") => {
            Ok(models::get(ex, &path["/v1/models/".len()..]).await)
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Invalid URL ({method} {path})"),
        )),
    }
}

fn authorize(ex: &Exchange<'_>) -> Result<(), ApiError> {
    let Some(expected) = ex.state.openai_key.as_deref() else {
        return Ok(());
    };
    let given = ex
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(key) if key == expected => Ok(()),
        Some(key) => Err(unauthorized(format!(
            "Incorrect API key provided: {}. You can find your API key at https://platform.openai.com/account/api-keys.",
            mask(key)
        ))),
        None => Err(unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).".into(),
        )),
    }
}

fn unauthorized(message: String) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, message).with_code("invalid_api_key")
}

/// `sk-abc…wxyz` → `sk-a********wxyz`, like OpenAI shows a wrong key.
fn mask(key: &str) -> String {
    let chars: Vec<char> = key.chars().collect();
    if chars.len() < 8 {
        return "*".repeat(chars.len());
    }
    let mut out: String = chars[..4].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - 8));
    out.extend(&chars[chars.len() - 4..]);
    out
}

const REQUEST_LIMIT: u64 = 10_000;
const TOKEN_LIMIT: u64 = 30_000_000;

/// The headers OpenAI puts on every answer.
fn decorate(mut resp: Response<MockBody>, started: Instant) -> Response<MockBody> {
    let h = resp.headers_mut();
    if let Ok(id) = HeaderValue::try_from(ids::hex_id("req_")) {
        h.insert("x-request-id", id);
    }
    let ms = started.elapsed().as_millis() as u64;
    h.insert("openai-processing-ms", HeaderValue::from(ms));
    h.insert("openai-version", HeaderValue::from_static("2020-10-01"));
    h.insert(
        "x-ratelimit-limit-requests",
        HeaderValue::from(REQUEST_LIMIT),
    );
    h.insert(
        "x-ratelimit-remaining-requests",
        HeaderValue::from(REQUEST_LIMIT - 1),
    );
    h.insert("x-ratelimit-limit-tokens", HeaderValue::from(TOKEN_LIMIT));
    h.insert(
        "x-ratelimit-remaining-tokens",
        HeaderValue::from(TOKEN_LIMIT - 1),
    );
    h.insert(
        "x-ratelimit-reset-requests",
        HeaderValue::from_static("6ms"),
    );
    h.insert("x-ratelimit-reset-tokens", HeaderValue::from_static("0s"));
    resp
}

/// The context window the context-length error claims.
const CONTEXT_WINDOW: u64 = 128_000;

/// OpenAI's 400 for a prompt over the context window; the count it reports
/// is the window plus the real prompt, so it is always over.
fn context_length(prompt_tokens: u64, param: &'static str) -> ApiError {
    ApiError::bad_request(format!(
        "This model's maximum context length is {CONTEXT_WINDOW} tokens. However, your messages resulted in {} tokens. Please reduce the length of the messages.",
        CONTEXT_WINDOW + prompt_tokens
    ))
    .with_param(param)
    .with_code("context_length_exceeded")
}

/// OpenAI's 400 for a missing required field.
fn missing(param: &'static str) -> ApiError {
    ApiError::bad_request(format!("Missing required parameter: '{param}'."))
        .with_param(param)
        .with_code("missing_required_parameter")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keys() {
        assert_eq!(mask("sk-test-123456789"), "sk-t*********6789");
        assert_eq!(mask("short"), "*****");
    }
}
