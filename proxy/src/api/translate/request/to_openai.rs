//! Anthropic message → OpenAI chat completion: the body, each turn as
//! OpenAI messages (tool results as `tool` messages), images as URLs.

use serde_json::{json, Map, Value};

use super::tools::anthropic_tools;
use super::values::*;
use super::{plain_text, Result, TranslateError};

/// Builds an OpenAI chat completion request from an Anthropic Messages
/// request, for `target_model`. A stream asks for the final usage chunk, so
/// usage reaches the app (and budgets) exactly.
pub fn anthropic_to_openai_request(req: &Value, target_model: &str) -> Result<Value> {
    let obj = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("body", "must be a JSON object"))?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(target_model.into()));

    let mut messages = Vec::new();
    if let Some(system) = obj.get("system").filter(|v| !v.is_null()) {
        let text =
            plain_text(system).ok_or_else(|| TranslateError::invalid("system", "must be text"))?;
        messages.push(json!({"role": "system", "content": text}));
    }
    let input = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::invalid("messages", "must be an array"))?;
    // The Messages API takes consecutive assistant messages as one turn:
    // they become one OpenAI message, and a user turn's tool results may
    // answer any tool call of that turn (and no other).
    let mut turn_calls: Vec<&str> = Vec::new();
    let mut prev_assistant = false;
    for (i, m) in input.iter().enumerate() {
        let last = i + 1 == input.len();
        let assistant = m.get("role").and_then(Value::as_str) == Some("assistant");
        let before = messages.len();
        anthropic_message(
            m,
            &format!("messages[{i}]"),
            last,
            &turn_calls,
            &mut messages,
        )?;
        if !assistant {
            turn_calls.clear();
        } else {
            if !prev_assistant {
                turn_calls.clear();
            }
            turn_calls.extend(tool_use_ids(m));
            if prev_assistant && before > 0 && messages.len() == before + 1 {
                let next = messages.pop().expect("pushed just now");
                merge_assistant(&mut messages[before - 1], next);
            }
        }
        prev_assistant = assistant;
    }
    out.insert("messages".into(), Value::Array(messages));

    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" | "system" | "tool_choice" => {}
            "max_tokens" => {
                let field = if reasoning_model(target_model) {
                    "max_completion_tokens"
                } else {
                    "max_tokens"
                };
                out.insert(field.into(), positive_int(value, "max_tokens")?.into());
            }
            "stream" => {
                out.insert("stream".into(), boolean(value, "stream")?);
                if value.as_bool() == Some(true) {
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            // The Messages API's range, refused as Anthropic would (OpenAI
            // takes temperatures up to 2, which would change the meaning).
            "temperature" | "top_p" => {
                if !value.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)) {
                    return Err(TranslateError::invalid(
                        key.clone(),
                        "must be a number between 0 and 1",
                    ));
                }
                out.insert(key.clone(), value.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), strings(value, "stop_sequences")?);
            }
            "metadata" => {
                let metadata = object(value, "metadata")?;
                if let Some(u) = metadata.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), string(u, "metadata.user_id")?);
                }
            }
            "tools" => {
                out.insert("tools".into(), anthropic_tools(value)?);
            }
            "mcp_servers" | "container" => {
                return Err(TranslateError::unsupported(
                    key.as_str(),
                    "cannot be routed to an OpenAI model",
                ))
            }
            // top_k, thinking, service_tier, cache hints: no counterpart.
            _ => {}
        }
    }
    if let Some(choice) = obj.get("tool_choice").filter(|v| !v.is_null()) {
        object(choice, "tool_choice")?;
        let kind = choice.get("type").and_then(Value::as_str).unwrap_or("auto");
        let mapped = match kind {
            "auto" => json!("auto"),
            "any" => json!("required"),
            "none" => json!("none"),
            "tool" => {
                let name = choice
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or_else(|| TranslateError::invalid("tool_choice.name", "is required"))?;
                json!({"type": "function", "function": {"name": name}})
            }
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice.type",
                    format!("unknown value '{other}'"),
                ))
            }
        };
        out.insert("tool_choice".into(), mapped);
        if choice
            .get("disable_parallel_tool_use")
            .and_then(Value::as_bool)
            == Some(true)
            && out.contains_key("tools")
        {
            out.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    // Required by the Messages API: refused as Anthropic would, not sent
    // on without a bound.
    if obj.get("max_tokens").is_none_or(Value::is_null) {
        return Err(TranslateError::invalid("max_tokens", "is required"));
    }
    Ok(Value::Object(out))
}

/// OpenAI reasoning models take `max_completion_tokens` and refuse
/// `max_tokens`.
fn reasoning_model(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

/// The ids of an Anthropic message's tool calls.
fn tool_use_ids(m: &Value) -> impl Iterator<Item = &str> {
    let blocks = m.get("content").and_then(Value::as_array);
    blocks
        .into_iter()
        .flatten()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_use"))
        .filter_map(|b| b.get("id").and_then(Value::as_str))
}

/// Folds an OpenAI assistant message into the one before it (text joined
/// as the blocks of one turn are, tool calls in order).
fn merge_assistant(into: &mut Value, next: Value) {
    let text = |v: &Value| v["content"].as_str().unwrap_or_default().to_string();
    let joined = text(into) + &text(&next);
    into["content"] = if joined.is_empty() {
        Value::Null
    } else {
        Value::String(joined)
    };
    if let Some(calls) = next.get("tool_calls").and_then(Value::as_array) {
        match into.get_mut("tool_calls").and_then(Value::as_array_mut) {
            Some(list) => list.extend(calls.iter().cloned()),
            None => into["tool_calls"] = Value::Array(calls.clone()),
        }
    }
}

/// Appends the OpenAI messages for one Anthropic message: tool results
/// (which must open a user turn and answer a call of the assistant turn
/// before, `turn_calls`) become `tool` messages ahead of the rest.
fn anthropic_message(
    m: &Value,
    field: &str,
    last: bool,
    turn_calls: &[&str],
    out: &mut Vec<Value>,
) -> Result<()> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::invalid(format!("{field}.role"), "is required"))?;
    // Checked before the content: a string content must not carry a role
    // the Messages API does not have (`system`, `tool`) into the target.
    let assistant = match role {
        "user" => false,
        "assistant" => true,
        other => {
            return Err(TranslateError::invalid(
                format!("{field}.role"),
                format!("must be 'user' or 'assistant', not '{other}'"),
            ))
        }
    };
    let content = m.get("content").unwrap_or(&Value::Null);
    let blocks: Vec<Value> = match content {
        // Empty content is refused, as the Messages API does, except a
        // final assistant turn (an empty prefill), which carries nothing.
        Value::String(s) if s.is_empty() => {
            if assistant && last {
                return Ok(());
            }
            return Err(TranslateError::invalid(
                format!("{field}.content"),
                "must not be empty",
            ));
        }
        Value::String(s) => {
            out.push(json!({"role": role, "content": s}));
            return Ok(());
        }
        Value::Array(b) => b.clone(),
        _ => {
            return Err(TranslateError::invalid(
                format!("{field}.content"),
                "must be a string or an array of content blocks",
            ))
        }
    };
    if !assistant {
        let mut parts = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let f = format!("{field}.content[{j}]");
            match b.get("type").and_then(Value::as_str) {
                Some("text") => parts.push(json!({"type": "text", "text": block_text(b, &f)?})),
                Some("image") => parts.push(image_part(b, &f)?),
                Some("tool_result") => {
                    if !parts.is_empty() {
                        return Err(TranslateError::invalid(
                            f,
                            "a tool result must come before the turn's other content",
                        ));
                    }
                    let id = b
                        .get("tool_use_id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| {
                            TranslateError::invalid(format!("{f}.tool_use_id"), "is required")
                        })?;
                    if !turn_calls.contains(&id) {
                        return Err(TranslateError::invalid(
                            format!("{f}.tool_use_id"),
                            "answers no tool call of the assistant turn before it",
                        ));
                    }
                    let content = b.get("content").unwrap_or(&Value::Null);
                    let mut text = optional_text(content, &format!("{f}.content"))?;
                    if b.get("is_error").and_then(Value::as_bool) == Some(true) {
                        text = format!("Error: {text}");
                    }
                    out.push(json!({"role": "tool", "tool_call_id": id, "content": text}));
                }
                Some(other) => {
                    return Err(TranslateError::unsupported(
                        format!("{f}.type"),
                        format!("content block '{other}' cannot be routed to an OpenAI model"),
                    ))
                }
                None => return Err(TranslateError::invalid(format!("{f}.type"), "is required")),
            }
        }
        if !parts.is_empty() {
            let content = if parts.iter().all(|p| p["type"] == "text") {
                Value::String(
                    parts
                        .iter()
                        .filter_map(|p| p["text"].as_str())
                        .collect::<Vec<_>>()
                        .join("\n\n"),
                )
            } else {
                Value::Array(parts)
            };
            out.push(json!({"role": "user", "content": content}));
        }
    } else {
        let mut text = String::new();
        let mut calls = Vec::new();
        for (j, b) in blocks.iter().enumerate() {
            let f = format!("{field}.content[{j}]");
            match b.get("type").and_then(Value::as_str) {
                Some("text") => text.push_str(block_text(b, &f)?),
                Some("tool_use") => {
                    let id = b
                        .get("id")
                        .and_then(Value::as_str)
                        .ok_or_else(|| TranslateError::invalid(format!("{f}.id"), "is required"))?;
                    let name = b.get("name").and_then(Value::as_str).ok_or_else(|| {
                        TranslateError::invalid(format!("{f}.name"), "is required")
                    })?;
                    let input = match b.get("input").filter(|v| !v.is_null()) {
                        Some(v) => object(v, &format!("{f}.input"))?,
                        None => json!({}),
                    };
                    calls.push(json!({
                        "id": id,
                        "type": "function",
                        "function": {"name": name, "arguments": input.to_string()},
                    }));
                }
                // Reasoning from an earlier turn is the provider's own.
                Some("thinking" | "redacted_thinking") => {}
                Some(other) => {
                    return Err(TranslateError::unsupported(
                        format!("{f}.type"),
                        format!("content block '{other}' cannot be routed to an OpenAI model"),
                    ))
                }
                None => return Err(TranslateError::invalid(format!("{f}.type"), "is required")),
            }
        }
        // A final assistant turn with nothing to carry (thinking only) is an
        // empty prefill, as with string content; elsewhere it would reach
        // the model as an empty message.
        if text.is_empty() && calls.is_empty() {
            if last {
                return Ok(());
            }
            return Err(TranslateError::invalid(
                format!("{field}.content"),
                "must hold text or a tool call for an OpenAI model",
            ));
        }
        let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
        if !calls.is_empty() {
            msg["tool_calls"] = Value::Array(calls);
        }
        out.push(msg);
    }
    Ok(())
}

fn image_part(b: &Value, field: &str) -> Result<Value> {
    let source = b.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = match source.get("media_type").filter(|v| !v.is_null()) {
                Some(Value::String(m)) => m.as_str(),
                Some(_) => {
                    let field = format!("{field}.source.media_type");
                    return Err(TranslateError::invalid(field, "must be a string"));
                }
                None => "image/png",
            };
            let data = source.get("data").and_then(Value::as_str).ok_or_else(|| {
                TranslateError::invalid(format!("{field}.source.data"), "is required")
            })?;
            format!("data:{media};base64,{data}")
        }
        Some("url") => source
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::invalid(format!("{field}.source.url"), "is required"))?
            .to_string(),
        _ => {
            return Err(TranslateError::unsupported(
                format!("{field}.source.type"),
                "only base64 and url images can be routed to an OpenAI model",
            ))
        }
    };
    Ok(json!({"type": "image_url", "image_url": {"url": url}}))
}
