//! Error bodies in the app's API for errors from a provider of the other.

use serde_json::{json, Value};

/// How much of an unparseable upstream error body is quoted.
const MAX_QUOTED: usize = 512;

fn message_of(body: &[u8], parsed: Option<&Value>, pointer: &str, status: u16) -> String {
    if let Some(m) = parsed
        .and_then(|v| v.pointer(pointer))
        .and_then(Value::as_str)
    {
        return m.to_string();
    }
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX_QUOTED)]);
    let text = text.trim();
    if text.is_empty() {
        format!("upstream returned HTTP {status}")
    } else {
        format!("upstream returned HTTP {status}: {text}")
    }
}

/// An OpenAI `{"error":{...}}` body for an Anthropic error.
pub(crate) fn anthropic_error_to_openai(status: u16, body: &[u8]) -> Value {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    anthropic_error_value(status, body, parsed.as_ref())
}

/// [`anthropic_error_to_openai`] for a body already parsed (`parsed`:
/// its JSON, if it is JSON).
pub(crate) fn anthropic_error_value(status: u16, body: &[u8], parsed: Option<&Value>) -> Value {
    let message = message_of(body, parsed, "/error/message", status);
    let kind = parsed
        .and_then(|v| v.pointer("/error/type"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let lower = message.to_ascii_lowercase();
    let (typ, code) = match kind {
        _ if lower.contains("prompt is too long") || lower.contains("context window") => {
            ("invalid_request_error", Some("context_length_exceeded"))
        }
        "authentication_error" => ("invalid_request_error", Some("invalid_api_key")),
        "permission_error" => ("invalid_request_error", Some("permission_denied")),
        "not_found_error" => ("invalid_request_error", Some("not_found")),
        "request_too_large" => ("invalid_request_error", Some("request_too_large")),
        "rate_limit_error" => ("rate_limit_error", Some("rate_limit_exceeded")),
        "overloaded_error" => ("server_error", Some("overloaded")),
        "api_error" => ("server_error", None),
        "invalid_request_error" => ("invalid_request_error", None),
        _ if status >= 500 => ("server_error", None),
        _ if status == 429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        _ => ("invalid_request_error", None),
    };
    json!({"error": {"message": message, "type": typ, "param": null, "code": code}})
}

/// An Anthropic `{"type":"error",...}` body for an OpenAI error.
pub(crate) fn openai_error_to_anthropic(status: u16, body: &[u8]) -> Value {
    let parsed = serde_json::from_slice::<Value>(body).ok();
    openai_error_value(status, body, parsed.as_ref())
}

/// [`openai_error_to_anthropic`] for a body already parsed.
pub(crate) fn openai_error_value(status: u16, body: &[u8], parsed: Option<&Value>) -> Value {
    let message = message_of(body, parsed, "/error/message", status);
    let code = parsed
        .and_then(|v| v.pointer("/error/code"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let typ = match status {
        _ if code == "context_length_exceeded" => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        s if s >= 500 => "api_error",
        _ => "invalid_request_error",
    };
    let message = if code == "context_length_exceeded" && !message.contains("prompt is too long") {
        // Anthropic SDK users match on this phrase for context overflow.
        format!("prompt is too long: {message}")
    } else {
        message
    };
    json!({"type": "error", "error": {"type": typ, "message": message}})
}
