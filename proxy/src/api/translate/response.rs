//! Whole (non-stream) responses: Anthropic message ⇄ OpenAI chat completion.

use serde_json::{json, Value};

use super::{finish_reason, now_secs, stop_reason, tool_input};

/// An OpenAI chat completion for an Anthropic message. `model` is the name
/// the app asked for.
pub fn anthropic_to_openai_response(resp: &Value, model: &str) -> Value {
    let mut text = String::new();
    let mut calls = Vec::new();
    for b in resp
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match b.get("type").and_then(Value::as_str) {
            Some("text") => text.push_str(b.get("text").and_then(Value::as_str).unwrap_or("")),
            Some("tool_use") => calls.push(json!({
                "id": b.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": {
                    "name": b.get("name").cloned().unwrap_or_default(),
                    "arguments": b.get("input").cloned().unwrap_or_else(|| json!({})).to_string(),
                },
            })),
            _ => {}
        }
    }
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if !calls.is_empty() {
        message["tool_calls"] = Value::Array(calls);
    }
    let finish = resp
        .get("stop_reason")
        .and_then(Value::as_str)
        .map(finish_reason)
        .unwrap_or("stop");
    let id = resp.get("id").and_then(Value::as_str).unwrap_or("");
    json!({
        "id": format!("chatcmpl-{}", id.strip_prefix("msg_").unwrap_or(id)),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
        "usage": openai_usage(resp.get("usage").unwrap_or(&Value::Null)),
    })
}

/// OpenAI `usage` for Anthropic `usage`: prompt tokens include the cached
/// and cache-written parts, which Anthropic counts apart.
pub(super) fn openai_usage(u: &Value) -> Value {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    let cached = n("cache_read_input_tokens");
    let prompt = n("input_tokens") + cached + n("cache_creation_input_tokens");
    let completion = n("output_tokens");
    json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
    })
}

/// An Anthropic message for an OpenAI chat completion (its first choice).
/// `model` is the name the app asked for.
pub fn openai_to_anthropic_response(resp: &Value, model: &str) -> Value {
    let choice = resp.pointer("/choices/0").unwrap_or(&Value::Null);
    let msg = choice.get("message").unwrap_or(&Value::Null);
    let mut content = Vec::new();
    let text = msg
        .get("content")
        .and_then(Value::as_str)
        .or_else(|| msg.get("refusal").and_then(Value::as_str))
        .unwrap_or("");
    if !text.is_empty() {
        content.push(json!({"type": "text", "text": text}));
    }
    for c in msg
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        content.push(json!({
            "type": "tool_use",
            "id": c.get("id").cloned().unwrap_or_default(),
            "name": c.pointer("/function/name").cloned().unwrap_or_default(),
            "input": tool_input(c.pointer("/function/arguments").and_then(Value::as_str).unwrap_or("")),
        }));
    }
    let stop = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(stop_reason)
        .unwrap_or("end_turn");
    let id = resp.get("id").and_then(Value::as_str).unwrap_or("");
    json!({
        "id": format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id)),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop,
        "stop_sequence": null,
        "usage": anthropic_usage(resp.get("usage").unwrap_or(&Value::Null)),
    })
}

/// Anthropic `usage` for OpenAI `usage`: cached prompt tokens move from
/// `input_tokens` to `cache_read_input_tokens`.
pub(super) fn anthropic_usage(u: &Value) -> Value {
    let prompt = u.get("prompt_tokens").and_then(Value::as_u64).unwrap_or(0);
    let cached = u
        .pointer("/prompt_tokens_details/cached_tokens")
        .and_then(Value::as_u64)
        .unwrap_or(0)
        .min(prompt);
    json!({
        "input_tokens": prompt - cached,
        "output_tokens": u.get("completion_tokens").and_then(Value::as_u64).unwrap_or(0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    })
}
