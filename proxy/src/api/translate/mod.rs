//! OpenAI Chat Completions ⇄ Anthropic Messages translation.
//!
//! A route may send an app's request to a provider of the other API. This
//! module rewrites the request into the target's API, and the answer —
//! whole responses, SSE streams (text and tool calls), usage and errors —
//! back into the app's API, so the app's SDK sees its own provider.
//!
//! What has no counterpart is refused with a 400 naming the field (for
//! example `n > 1`, `logprobs`, `response_format` to Anthropic; server
//! tools or documents to OpenAI) rather than silently changing what the
//! app asked for. Sampling knobs the target lacks (`seed`, penalties,
//! `top_k`) are dropped: they tune, they do not change the shape of the
//! answer. Tool call ids pass through unchanged, so a conversation can
//! move between providers and still match results to calls.

use bytes::Bytes;
use serde_json::Value;

use crate::api::Family;

mod errors;
mod request;
mod response;
mod stream;
#[cfg(test)]
mod tests;

pub(crate) use errors::{anthropic_error_to_openai, openai_error_to_anthropic};
pub use request::{anthropic_to_openai_request, openai_to_anthropic_request};
pub use response::{anthropic_to_openai_response, openai_to_anthropic_response};
pub use stream::{AnthropicToOpenAiStream, OpenAiToAnthropicStream, StreamTranslator};

/// The translator of a stream from `upstream`'s API into `app`'s; `None`
/// when they are the same API. `model` is the name the app asked for;
/// `include_usage` whether it asked for OpenAI's final usage chunk.
pub(crate) fn stream_translator(
    app: Family,
    upstream: Family,
    model: &str,
    include_usage: bool,
) -> Option<Box<dyn StreamTranslator>> {
    match (app, upstream) {
        (Family::OpenAi, Family::Anthropic) => {
            Some(Box::new(AnthropicToOpenAiStream::new(model, include_usage)))
        }
        (Family::Anthropic, Family::OpenAi) => Some(Box::new(OpenAiToAnthropicStream::new(model))),
        _ => None,
    }
}

/// A whole successful answer of the other API, in `app`'s.
pub(crate) fn response(app: Family, answer: &Value, model: &str) -> Value {
    match app {
        Family::OpenAi => anthropic_to_openai_response(answer, model),
        Family::Anthropic => openai_to_anthropic_response(answer, model),
    }
}

/// An error body from `upstream`, in `app`'s API.
pub(crate) fn error_body(app: Family, upstream: Family, status: u16, body: Bytes) -> Bytes {
    if app == upstream {
        return body;
    }
    let out = match app {
        Family::OpenAi => anthropic_error_to_openai(status, &body),
        Family::Anthropic => openai_error_to_anthropic(status, &body),
    };
    Bytes::from(serde_json::to_vec(&out).expect("a JSON value serializes"))
}

/// A request that cannot be expressed in the target's API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    #[error("{field}: {reason}")]
    Unsupported { field: String, reason: String },
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    /// Only chat completions and messages have a counterpart in the other
    /// API.
    #[error("{operation} requests cannot be sent to a provider of the other API; only chat completions and messages are translated")]
    Operation { operation: &'static str },
}

impl TranslateError {
    fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
        TranslateError::Unsupported {
            field: field.into(),
            reason: reason.into(),
        }
    }

    fn invalid(field: impl Into<String>, reason: impl Into<String>) -> TranslateError {
        TranslateError::Invalid {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// Values the target API requires that the app's API leaves optional.
#[derive(Debug, Clone, Copy)]
pub struct Defaults {
    /// Anthropic requires `max_tokens`; used when the OpenAI request has
    /// neither `max_tokens` nor `max_completion_tokens`.
    pub max_tokens: u64,
}

/// Seconds since the Unix epoch, for OpenAI's `created`.
fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The text of an OpenAI `content` (a string or an array of parts) or an
/// Anthropic `system` (a string or an array of text blocks).
fn plain_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Array(parts) => {
            let mut out = String::new();
            for p in parts {
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    if !out.is_empty() {
                        out.push_str("\n\n");
                    }
                    out.push_str(t);
                }
            }
            Some(out)
        }
        Value::Null => None,
        _ => None,
    }
}

/// OpenAI `finish_reason` for an Anthropic `stop_reason`.
fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Anthropic `stop_reason` for an OpenAI `finish_reason`.
fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// Parses tool-call arguments (a JSON string in OpenAI) into the object
/// Anthropic wants; a model's malformed arguments are kept as a string
/// under `_raw` rather than failing the whole response.
fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Default::default());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        Ok(other) => serde_json::json!({ "_raw": other }),
        Err(_) => serde_json::json!({ "_raw": arguments }),
    }
}
