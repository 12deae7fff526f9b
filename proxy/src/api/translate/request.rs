//! Request bodies: OpenAI chat completion ⇄ Anthropic message.

use serde_json::{json, Map, Value};

use super::{plain_text, Defaults, TranslateError};

type Result<T> = std::result::Result<T, TranslateError>;

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
        Some(v) => v
            .as_u64()
            .ok_or_else(|| TranslateError::invalid("max_tokens", "must be a positive integer"))?,
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
                out.insert("stream".into(), value.clone());
            }
            // OpenAI allows 0..2, Anthropic 0..1: the range is clamped.
            "temperature" => {
                let t = value
                    .as_f64()
                    .ok_or_else(|| TranslateError::invalid("temperature", "must be a number"))?;
                out.insert("temperature".into(), json!(t.clamp(0.0, 1.0)));
            }
            "top_p" => {
                out.insert("top_p".into(), value.clone());
            }
            "stop" => {
                let seqs = match value {
                    Value::String(s) => vec![Value::String(s.clone())],
                    Value::Array(a) => a.clone(),
                    _ => {
                        return Err(TranslateError::invalid(
                            "stop",
                            "must be a string or an array of strings",
                        ))
                    }
                };
                out.insert("stop_sequences".into(), Value::Array(seqs));
            }
            "user" => {
                out.insert("metadata".into(), json!({ "user_id": value }));
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
            "user" => ("user", user_blocks(content, &field)?),
            "assistant" => ("assistant", assistant_blocks(m, &field)?),
            "tool" => {
                let id = m
                    .get("tool_call_id")
                    .and_then(Value::as_str)
                    .ok_or_else(|| {
                        TranslateError::invalid(format!("{field}.tool_call_id"), "is required")
                    })?;
                let text = plain_text(content).unwrap_or_default();
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
        match out.last_mut() {
            Some((r, b)) if r == role => b.extend(blocks),
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

fn user_blocks(content: &Value, field: &str) -> Result<Vec<Value>> {
    match content {
        Value::String(s) => Ok(vec![json!({"type": "text", "text": s})]),
        Value::Array(parts) => parts
            .iter()
            .enumerate()
            .map(|(j, p)| user_part(p, &format!("{field}.content[{j}]")))
            .collect(),
        _ => Err(TranslateError::invalid(
            format!("{field}.content"),
            "must be a string or an array of content parts",
        )),
    }
}

fn user_part(p: &Value, field: &str) -> Result<Value> {
    match p.get("type").and_then(Value::as_str) {
        Some("text") => {
            Ok(json!({"type": "text", "text": p.get("text").cloned().unwrap_or_default()}))
        }
        Some("image_url") => {
            let url = p
                .pointer("/image_url/url")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::invalid(format!("{field}.image_url.url"), "is required")
                })?;
            Ok(image_source(url))
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
            let args = c
                .pointer("/function/arguments")
                .and_then(Value::as_str)
                .unwrap_or("{}");
            let input: Value = if args.trim().is_empty() {
                json!({})
            } else {
                serde_json::from_str(args).map_err(|e| {
                    TranslateError::invalid(
                        format!("{f}.function.arguments"),
                        format!("is not valid JSON: {e}"),
                    )
                })?
            };
            blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
        }
    }
    Ok(blocks)
}

fn openai_tools(tools: &Value) -> Result<Value> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::invalid("tools", "must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(TranslateError::unsupported(
                    format!("tools[{i}].type"),
                    "only function tools can be routed to an Anthropic model",
                ));
            }
            let f = t.get("function").unwrap_or(&Value::Null);
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                TranslateError::invalid(format!("tools[{i}].function.name"), "is required")
            })?;
            let mut tool = Map::new();
            tool.insert("name".into(), name.into());
            if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
                tool.insert("description".into(), d.clone());
            }
            let schema = f
                .get("parameters")
                .filter(|p| !p.is_null())
                .cloned()
                .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
            tool.insert("input_schema".into(), schema);
            Ok(Value::Object(tool))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

fn tool_choice_to_anthropic(obj: &Map<String, Value>) -> Result<Option<Value>> {
    let choice = obj.get("tool_choice").filter(|v| !v.is_null());
    let serial = obj.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false);
    let has_tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let mut out = match choice {
        None if serial && has_tools => json!({"type": "auto"}),
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!("unknown value '{other}'"),
                ))
            }
        },
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::invalid("tool_choice.function.name", "is required")
                })?;
            json!({"type": "tool", "name": name})
        }
    };
    if serial && out["type"] != "none" {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(out))
}

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
    for (i, m) in input.iter().enumerate() {
        anthropic_message(m, &format!("messages[{i}]"), &mut messages)?;
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
                out.insert(field.into(), value.clone());
            }
            "stream" => {
                out.insert("stream".into(), value.clone());
                if value.as_bool() == Some(true) {
                    out.insert("stream_options".into(), json!({"include_usage": true}));
                }
            }
            "temperature" | "top_p" => {
                out.insert(key.clone(), value.clone());
            }
            "stop_sequences" => {
                out.insert("stop".into(), value.clone());
            }
            "metadata" => {
                if let Some(u) = value.get("user_id").filter(|u| !u.is_null()) {
                    out.insert("user".into(), u.clone());
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
    Ok(Value::Object(out))
}

/// OpenAI reasoning models take `max_completion_tokens` and refuse
/// `max_tokens`.
fn reasoning_model(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    ["o1", "o3", "o4", "gpt-5"].iter().any(|p| m.starts_with(p))
}

/// Appends the OpenAI messages for one Anthropic message: tool results
/// become `tool` messages ahead of the rest of a user turn.
fn anthropic_message(m: &Value, field: &str, out: &mut Vec<Value>) -> Result<()> {
    let role = m
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::invalid(format!("{field}.role"), "is required"))?;
    let content = m.get("content").unwrap_or(&Value::Null);
    let blocks: Vec<Value> = match content {
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
    match role {
        "user" => {
            let mut parts = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let f = format!("{field}.content[{j}]");
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => parts.push(
                        json!({"type": "text", "text": b.get("text").cloned().unwrap_or_default()}),
                    ),
                    Some("image") => parts.push(image_part(b, &f)?),
                    Some("tool_result") => {
                        let id = b
                            .get("tool_use_id")
                            .and_then(Value::as_str)
                            .ok_or_else(|| {
                                TranslateError::invalid(format!("{f}.tool_use_id"), "is required")
                            })?;
                        let mut text = b.get("content").and_then(plain_text).unwrap_or_default();
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
                    None => {
                        return Err(TranslateError::invalid(format!("{f}.type"), "is required"))
                    }
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
        }
        "assistant" => {
            let mut text = String::new();
            let mut calls = Vec::new();
            for (j, b) in blocks.iter().enumerate() {
                let f = format!("{field}.content[{j}]");
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        text.push_str(b.get("text").and_then(Value::as_str).unwrap_or(""))
                    }
                    Some("tool_use") => {
                        let id = b.get("id").and_then(Value::as_str).ok_or_else(|| {
                            TranslateError::invalid(format!("{f}.id"), "is required")
                        })?;
                        let name = b.get("name").and_then(Value::as_str).ok_or_else(|| {
                            TranslateError::invalid(format!("{f}.name"), "is required")
                        })?;
                        let input = b.get("input").cloned().unwrap_or_else(|| json!({}));
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
                    None => {
                        return Err(TranslateError::invalid(format!("{f}.type"), "is required"))
                    }
                }
            }
            let mut msg = json!({"role": "assistant", "content": if text.is_empty() && !calls.is_empty() { Value::Null } else { Value::String(text) }});
            if !calls.is_empty() {
                msg["tool_calls"] = Value::Array(calls);
            }
            out.push(msg);
        }
        other => {
            return Err(TranslateError::invalid(
                format!("{field}.role"),
                format!("must be 'user' or 'assistant', not '{other}'"),
            ))
        }
    }
    Ok(())
}

fn image_part(b: &Value, field: &str) -> Result<Value> {
    let source = b.get("source").unwrap_or(&Value::Null);
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media = source
                .get("media_type")
                .and_then(Value::as_str)
                .unwrap_or("image/png");
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

fn anthropic_tools(tools: &Value) -> Result<Value> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::invalid("tools", "must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // Client tools have no type (or "custom"); server tools are typed
            // (web_search_…, bash_…) and run at Anthropic.
            match t.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(TranslateError::unsupported(
                        format!("tools[{i}].type"),
                        format!(
                            "Anthropic server tool '{other}' cannot be routed to an OpenAI model"
                        ),
                    ))
                }
            }
            let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
                TranslateError::invalid(format!("tools[{i}].name"), "is required")
            })?;
            let mut f = Map::new();
            f.insert("name".into(), name.into());
            if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
                f.insert("description".into(), d.clone());
            }
            f.insert(
                "parameters".into(),
                t.get("input_schema")
                    .cloned()
                    .unwrap_or_else(|| json!({"type": "object", "properties": {}})),
            );
            Ok(json!({"type": "function", "function": Value::Object(f)}))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}
