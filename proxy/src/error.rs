//! Errors the proxy itself answers with, and their rendering.
//!
//! This is the one place where an error becomes a response: the status code,
//! a provider-shaped body (OpenAI `{"error":{...}}` or Anthropic
//! `{"type":"error","error":{...}}`, chosen by the API the app called), and
//! headers such as `Retry-After` and `x-should-retry` (see
//! [`ProxyError::retry_can_help`]); and, for a stream that fails after it has
//! started, the closing error event ([`stream_error_event`]). Messages never
//! contain request content, credentials or PII.
//!
//! The layers below return their own errors (the request parser's
//! [`ParseError`], translation's [`TranslateError`], routing's
//! [`UnknownModel`], the client's [`UpstreamError`], budget refusals, the
//! PII policy's [`PiiError`]); they arrive here through `From`, and only
//! this module decides their status, code and headers.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::api::request::ParseError;
use crate::api::translate::TranslateError;
use crate::api::Family;
use crate::body::ResponseBody;
use crate::budget::Refusal;
use crate::pii::PiiError;
use crate::routing::UnknownModel;
use crate::upstream::UpstreamError;

/// The header the official SDKs read before deciding to retry.
pub(crate) const SHOULD_RETRY: &str = "x-should-retry";

/// The longest `Retry-After` the official OpenAI and Anthropic SDKs wait
/// for; beyond it they fall back to their own short backoff.
pub(crate) const SDK_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The closing event, in `app`'s API, of a stream that cannot continue, so
/// SDKs raise instead of waiting.
pub(crate) fn stream_error_event(app: Family, message: &str) -> Bytes {
    let text = match app {
        Family::OpenAi => format!(
            "data: {}\n\n",
            json!({"error": {"message": message, "type": "server_error", "param": null, "code": "upstream_stream_error"}})
        ),
        Family::Anthropic => format!(
            "event: error\ndata: {}\n\n",
            json!({"type": "error", "error": {"type": "api_error", "message": message}})
        ),
    };
    Bytes::from(text)
}

/// A request the proxy refuses or cannot complete.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("request body exceeds the {limit}-byte limit")]
    BodyTooLarge { limit: u64 },
    #[error("could not read the request body: {0}")]
    BodyRead(String),
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The request cannot be expressed in the target's API.
    #[error("invalid request: {0}")]
    Translate(#[from] TranslateError),
    #[error("you must provide a model parameter")]
    MissingModel,
    #[error(transparent)]
    UnknownModel(#[from] UnknownModel),
    #[error("the proxy is at its limit of {limit} concurrent requests; retry shortly")]
    Overloaded { limit: usize },
    #[error("every target of route `{route}` is ejected by its circuit breaker; retry shortly")]
    AllTargetsEjected { route: String },
    #[error("no route for {method} {path}")]
    NotFound { method: String, path: String },
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String },
    #[error("{path} is not handled by this proxy and forwarding of other /v1 paths is {why}")]
    PathRejected { path: String, why: &'static str },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Budget admission refused the request; `headers` tell the app where
    /// it stands (`x-tollgate-budget-remaining-*`, `x-ratelimit-*`).
    #[error("{refusal}")]
    Budget {
        refusal: Refusal,
        headers: Vec<(header::HeaderName, HeaderValue)>,
    },
    /// The PII policy or the prompt guard refused the request; the message
    /// names entity types or rules, never values.
    #[error(transparent)]
    Pii(#[from] PiiError),
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyRead(_) | Parse(_) | Translate(_) | MissingModel => StatusCode::BAD_REQUEST,
            UnknownModel(_) | NotFound { .. } | PathRejected { .. } => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Overloaded { .. } | AllTargetsEjected { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Upstream(e) => match e {
                UpstreamError::CredentialsUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
                UpstreamError::Connect { .. } | UpstreamError::Protocol { .. } => {
                    StatusCode::BAD_GATEWAY
                }
                UpstreamError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
                UpstreamError::Uri(_) => StatusCode::BAD_REQUEST,
            },
            Budget { refusal, .. } => refusal.status(),
            Pii(_) => StatusCode::BAD_REQUEST,
        }
    }

    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        use ProxyError::*;
        match self {
            BodyTooLarge { .. } => "body_too_large",
            BodyRead(_) => "body_read",
            Parse(e) => e.metric_label(),
            Translate(_) => "invalid_field",
            MissingModel => "missing_model",
            UnknownModel(_) => "unknown_model",
            Overloaded { .. } => "overloaded",
            AllTargetsEjected { .. } => "all_targets_ejected",
            NotFound { .. } => "not_found",
            MethodNotAllowed { .. } => "method_not_allowed",
            PathRejected { .. } => "path_rejected",
            Upstream(e) => e.metric_label(),
            Budget { refusal, .. } => refusal.metric_label(),
            Pii(e) => e.metric_label(),
        }
    }

    /// OpenAI `error.code`.
    fn openai_code(&self) -> Option<&'static str> {
        use ProxyError::*;
        Some(match self {
            BodyTooLarge { .. } => "request_too_large",
            Parse(ParseError::Malformed(_)) => "invalid_json",
            MissingModel => "missing_model",
            UnknownModel(_) => "model_not_found",
            Overloaded { .. } => "overloaded",
            AllTargetsEjected { .. } => "all_targets_ejected",
            NotFound { .. } | PathRejected { .. } => "unknown_url",
            Upstream(e) => match e {
                UpstreamError::CredentialsUnavailable { .. } => "credentials_unavailable",
                UpstreamError::Connect { .. } => "upstream_unreachable",
                UpstreamError::Timeout { .. } => "upstream_timeout",
                UpstreamError::Protocol { .. } => "upstream_invalid_response",
                UpstreamError::Uri(_) => return None,
            },
            Budget { refusal, .. } => refusal.code(),
            Pii(e) => e.metric_label(),
            BodyRead(_) | Parse(ParseError::Field(_)) | Translate(_) | MethodNotAllowed { .. } => {
                return None
            }
        })
    }

    /// OpenAI `error.type`.
    fn openai_type(&self) -> &'static str {
        match self {
            // What OpenAI answers when an account is out of credit, so apps
            // that tell quota from throttling keep doing so.
            ProxyError::Budget {
                refusal: Refusal::BudgetExceeded { .. },
                ..
            } => return "insufficient_quota",
            ProxyError::Budget {
                refusal: Refusal::RateLimited { .. },
                ..
            } => return "rate_limit_error",
            _ => {}
        }
        match self.status().as_u16() {
            400 | 404 | 405 | 413 => "invalid_request_error",
            503 => "server_error",
            _ => "api_error",
        }
    }

    /// Anthropic `error.type`.
    fn anthropic_type(&self) -> &'static str {
        match self.status().as_u16() {
            400 | 405 => "invalid_request_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            503 => "overloaded_error",
            _ => "api_error",
        }
    }

    /// Whether the app retrying the same request can get another answer.
    /// When it cannot, the response says `x-should-retry: false`, which the
    /// official OpenAI and Anthropic SDKs obey before their own rules (they
    /// would retry a 429 twice by default): an invalid request, a model or
    /// path not served, a PII block, a budget header missing or a price
    /// unknown stay so until the request or the policy changes; an
    /// exhausted budget stays so until its window ends, which is more than
    /// an SDK waits ([`SDK_MAX_WAIT`]) unless the window ends sooner.
    pub fn retry_can_help(&self) -> bool {
        use ProxyError::*;
        match self {
            BodyTooLarge { .. }
            | Parse(_)
            | Translate(_)
            | MissingModel
            | UnknownModel(_)
            | NotFound { .. }
            | MethodNotAllowed { .. }
            | PathRejected { .. }
            | Pii(_)
            | Upstream(UpstreamError::Uri(_)) => false,
            Budget { refusal, .. } => match refusal {
                Refusal::BudgetExceeded { retry_after, .. }
                | Refusal::RateLimited { retry_after, .. } => *retry_after <= SDK_MAX_WAIT,
                Refusal::MissingHeader { .. } | Refusal::UnknownPrice { .. } => false,
                Refusal::StoreUnavailable { .. } => true,
            },
            // The body did not arrive whole: sent again, it may.
            BodyRead(_) => true,
            Overloaded { .. } | AllTargetsEjected { .. } | Upstream(_) => true,
        }
    }

    fn param(&self) -> Option<&'static str> {
        match self {
            ProxyError::MissingModel | ProxyError::UnknownModel(_) => Some("model"),
            _ => None,
        }
    }

    fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::Overloaded { .. } | ProxyError::AllTargetsEjected { .. } => Some(1),
            ProxyError::Upstream(UpstreamError::CredentialsUnavailable { .. }) => Some(5),
            ProxyError::Budget { refusal, .. } => refusal.retry_after_secs(),
            _ => None,
        }
    }

    /// Renders the error in the shape of the API the app called.
    pub fn to_response(&self, family: Family, request_id: &str) -> Response<ResponseBody> {
        let message = self.to_string();
        let body = match family {
            Family::OpenAi => json!({
                "error": {
                    "message": message,
                    "type": self.openai_type(),
                    "param": self.param(),
                    "code": self.openai_code(),
                }
            }),
            Family::Anthropic => json!({
                "type": "error",
                "error": { "type": self.anthropic_type(), "message": message },
                "request_id": request_id,
            }),
        };
        let mut resp = Response::new(ResponseBody::full(Bytes::from(body.to_string())));
        *resp.status_mut() = self.status();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-request-id", v);
        }
        h.insert(
            "x-tollgate-error",
            HeaderValue::from_static(self.metric_label()),
        );
        if let Some(secs) = self.retry_after() {
            h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let ProxyError::Budget { refusal, .. } = self {
            // The SDKs read the exact wait from here before `Retry-After`.
            if let Some(wait) = refusal.retry_after() {
                let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
                h.insert("retry-after-ms", HeaderValue::from(ms));
            }
        }
        if !self.retry_can_help() {
            h.insert(SHOULD_RETRY, HeaderValue::from_static("false"));
        }
        if let ProxyError::Budget { headers, .. } = self {
            for (name, value) in headers {
                h.insert(name.clone(), value.clone());
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests;
