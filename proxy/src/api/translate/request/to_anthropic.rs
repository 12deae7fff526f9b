//! OpenAI chat completion → Anthropic message: the body, its messages
//! merged into turns, content parts as blocks.

use serde_json::{json, Map, Value};

use super::tools::{openai_tools, tool_choice_to_anthropic};
use super::values::*;
use super::{plain_text, Defaults, Result, TranslateError};

/// OpenAI fields that only tune sampling or bookkeeping and have no
/// Anthropic counterpart: dropped.
const OPENAI_DROPPED: &[&str] = &[
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "logit_bias",
    "service_tier",
    "store",
    "metadata",
    "stream_options",
    "reasoning_effort",
    "verbosity",
    "prediction",
    "modalities",
    "prompt_cache_key",
    "safety_identifier",
    "top_logprobs",
];

/// Builds an Anthropic Messages request from an OpenAI chat completion
/// request, for `target_model`.
pub fn openai_to_anthropic_request(req: &Value, target_model: &str, d: &Defaults) -> Result<Value> {
    let obj = req
        .as_object()
        .ok_or_else(|| TranslateError::invalid("body", "must be a JSON object"))?;
    let mut out = Map::new();
    out.insert("model".into(), Value::String(target_model.into()));

    let messages = obj
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| TranslateError::invalid("messages", "must be an array"))?;
    let (system, messages) = openai_messages(messages)?;
    if let Some(s) = system {
        out.insert("system".into(), Value::String(s));
    }
    out.insert("messages".into(), Value::Array(messages));

    let max = obj
        .get("max_completion_tokens")
        .filter(|v| !v.is_null())
        .or_else(|| obj.get("max_tokens").filter(|v| !v.is_null()));
    let max = match max {
        Some(v) => positive_int(v, "max_tokens")?,
        None => d.max_tokens,
    };
    out.insert("max_tokens".into(), max.into());

    for (key, value) in obj {
        if value.is_null() {
            continue;
        }
        match key.as_str() {
            "model" | "messages" | "max_tokens" | "max_completion_tokens" => {}
            "stream" => {
                out.insert("stream".into(), boolean(value, "stream")?);
            }
            // OpenAI allows 0..2, Anthropic 0..1: the range is clamped;
            // outside OpenAI's own range it is refused, as OpenAI would.
            "temperature" => {
                let t = value
                    .as_f64()
                    .filter(|t| (0.0..=2.0).contains(t))
                    .ok_or_else(|| {
                        TranslateError::invalid("temperature", "must be a number between 0 and 2")
                    })?;
                out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
            }
            "top_p" => {
                if !value.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)) {
                    return Err(TranslateError::invalid(
                        "top_p",
                        "must be a number between 0 and 1",
                    ));
                }
                out.insert("top_p".into(), value.clone());
            }
            "stop" => {
                let seqs = match value {
                    Value::String(s) => Value::Array(vec![Value::String(s.clone())]),
                    _ => strings(value, "stop")?,
                };
                out.insert("stop_sequences".into(), seqs);
            }
            "user" => {
                out.insert(
                    "metadata".into(),
                    json!({ "user_id": string(value, "user")? }),
                );
            }
            "tools" => {
                out.insert("tools".into(), openai_tools(value)?);
            }
            "tool_choice" | "parallel_tool_calls" => {}
            "n" if value.as_u64() != Some(1) => {
                return Err(TranslateError::unsupported(
                    "n",
                    "Anthropic models return one choice; only n=1 can be routed to them",
                ));
            }
            "logprobs" if value.as_bool() == Some(true) => {
                return Err(TranslateError::unsupported(
                    "logprobs",
                    "Anthropic models do not return log probabilities",
                ));
            }
            "response_format" if value.get("type").and_then(Value::as_str) != Some("text") => {
                return Err(TranslateError::unsupported(
                    "response_format",
                    "JSON modes cannot be routed to an Anthropic model; use tools or a route to an OpenAI model",
                ));
            }
            "functions" | "function_call" => {
                return Err(TranslateError::unsupported(
                    key.as_str(),
                    "the deprecated functions API is not translated; use tools",
                ));
            }
            "audio" => {
                return Err(TranslateError::unsupported(
                    "audio",
                    "audio output cannot be routed to an Anthropic model",
                ));
            }
            k if OPENAI_DROPPED.contains(&k) => {}
            _ => {}
        }
    }

    if let Some(choice) = tool_choice_to_anthropic(obj)? {
        out.insert("tool_choice".into(), choice);
    }
    Ok(Value::Object(out))
}

/// Splits OpenAI messages into Anthropic's `system` and `messages`, merging
/// consecutive turns of one role (tool results must share one user turn).
fn openai_messages(messages: &[Value]) -> Result<(Option<String>, Vec<Value>)> {
    let mut system: Vec<String> = Vec::new();
    let mut out: Vec<(String, Vec<Value>)> = Vec::new();
    // The tool calls a `tool` message may answer: those of the assistant
    // message before it (only other tool results in between).
    let mut open_calls: Vec<&str> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let field = format!("messages[{i}]");
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| TranslateError::invalid(format!("{field}.role"), "is required"))?;
        let content = m.get("content").unwrap_or(&Value::Null);
        let (role, blocks) = match role {
            "system" | "developer" => {
                let text = plain_text(content).ok_or_else(|| {
                    TranslateError::invalid(format!("{field}.content"), "must be text")
                })?;
                system.push(text);
                continue;
            }
            "user" => {
                open_calls.clear();
                ("user", user_blocks(content, &field)?)
            }
            "assistant" => {
                open_calls = call_ids(m);
                ("assistant", assistant_blocks(m, &field)?)
            }
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        TranslateError::invalid(format!("{field}.tool_call_id"), "is required")
                    })?;
                if !open_calls.contains(&id) {
                    return Err(TranslateError::invalid(
                        format!("{field}.tool_call_id"),
                        "answers no tool call of the assistant message before it",
                    ));
                }
                let text = optional_text(content, &format!("{field}.content"))?;
                (
                    "user",
                    vec![json!({"type": "tool_result", "tool_use_id": id, "content": text})],
                )
            }
            other => {
                return Err(TranslateError::unsupported(
                    format!("{field}.role"),
                    format!("role '{other}' cannot be routed to an Anthropic model"),
                ))
            }
        };
        if blocks.is_empty() {
            continue;
        }
        // Tool results follow their calls directly, so a merged user turn
        // starts with them, as the Messages API requires.
        match out.last_mut() {
            Some((r, b)) if r == role => extend_turn(b, blocks, role == "assistant"),
            _ => out.push((role.to_string(), blocks)),
        }
    }
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    let messages = out
        .into_iter()
        .map(|(role, blocks)| {
            // A lone text block is sent as a plain string, as apps write it.
            let content = match blocks.as_slice() {
                [b] if b["type"] == "text" && b.as_object().is_some_and(|o| o.len() == 2) => {
                    b["text"].clone()
                }
                _ => Value::Array(blocks),
            };
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, messages))
}

/// Appends a message's blocks to the turn of the message before it (the
/// Messages API takes one turn per role). An assistant turn keeps the
/// shape one OpenAI message gives it, its text first as one block (the
/// texts of consecutive messages joined by a blank line) and then the tool
/// calls in order, so it reads back as the one OpenAI message it becomes
/// (see `anthropic_message`).
fn extend_turn(turn: &mut Vec<Value>, blocks: Vec<Value>, assistant: bool) {
    if !assistant {
        turn.extend(blocks);
        return;
    }
    for b in blocks {
        if b["type"] != "text" {
            turn.push(b);
            continue;
        }
        match turn.first_mut().filter(|t| t["type"] == "text") {
            Some(first) => {
                let joined = format!(
                    "{}\n\n{}",
                    first["text"].as_str().unwrap_or_default(),
                    b["text"].as_str().unwrap_or_default()
                );
                first["text"] = Value::String(joined);
            }
            None => turn.insert(0, b),
        }
    }
}

/// The ids of an OpenAI assistant message's tool calls.
fn call_ids(m: &Value) -> Vec<&str> {
    let calls = m.get("tool_calls").and_then(Value::as_array);
    calls
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("id").and_then(Value::as_str))
        .collect()
}

/// A user message's content as Anthropic blocks. Empty text (which OpenAI
/// takes and the Messages API refuses) carries nothing and is left out.
fn user_blocks(content: &Value, field: &str) -> Result<Vec<Value>> {
    match content {
        Value::String(s) if s.is_empty() => Ok(Vec::new()),
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => {
            let mut blocks = Vec::new();
            for (j, p) in parts.iter().enumerate() {
                blocks.extend(user_part(p, &format!("{field}.content[{j}]"))?);
            }
            Ok(blocks)
        }
        _ => Err(TranslateError::invalid(
            format!("{field}.content"),
            "must be a string or an array of content parts",
        )),
    }
}

fn user_part(p: &Value, field: &str) -> Result<Option<Value>> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => {
            let text = text_of(p, field)?;
            Ok((!text.is_empty()).then(|| json!({"type": "text", "text": text})))
        }
        Some("image_url") => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::invalid(format!("{field}.image_url.url"), "is required")
                })?;
            Ok(Some(image_source(url)))
        }
        Some(other) => Err(TranslateError::unsupported(
            format!("{field}.type"),
            format!("content part '{other}' cannot be routed to an Anthropic model"),
        )),
        None => Err(TranslateError::invalid(
            format!("{field}.type"),
            "is required",
        )),
    }
}

/// An Anthropic image block for an OpenAI image URL (a `data:` URL becomes
/// a base64 source).
fn image_source(url: &str) -> Value {
    if let Some(rest) = url.strip_prefix("data:") {
        if let Some((meta, data)) = rest.split_once(',') {
            if let Some(media_type) = meta.strip_suffix(";base64") {
                return json!({"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}});
            }
        }
    }
    json!({"type": "image", "source": {"type": "url", "url": url}})
}

fn assistant_blocks(m: &Value, field: &str) -> Result<Vec<Value>> {
    let mut blocks = Vec::new();
    if let Some(text) = plain_text(m.get("content").unwrap_or(&Value::Null)) {
        if !text.is_empty() {
            blocks.push(json!({"type": "text", "text": text}));
        }
    }
    if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
        for (j, c) in calls.iter().enumerate() {
            let f = format!("{field}.tool_calls[{j}]");
            let id = c
                .get("id")
                .and_then(Value::as_str)
                .ok_or_else(|| TranslateError::invalid(format!("{f}.id"), "is required"))?;
            let name = c
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::invalid(format!("{f}.function.name"), "is required")
                })?;
            let field = format!("{f}.function.arguments");
            let args = match c.pointer("/function/arguments") {
                None | Some(Value::Null) => "{}",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => return Err(TranslateError::invalid(field, "must be a string")),
            };
            // Anthropic takes a tool call's input as a JSON object only.
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                let v = serde_json::from_str(args).map_err(|e| {
                    TranslateError::invalid(field.as_str(), format!("is not valid JSON: {e}"))
                })?;
                object(&v, &field)?
            };
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}
