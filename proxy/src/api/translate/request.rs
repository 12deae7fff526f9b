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
/// Messages API takes one turn per role). Consecutive assistant messages'
/// texts become one text block, a blank line between: the blocks of one
/// assistant turn are read back as one text (see `anthropic_message`).
fn extend_turn(turn: &mut Vec<Value>, blocks: Vec<Value>, assistant: bool) {
    let mut blocks = blocks.into_iter().peekable();
    if assistant {
        let last_text = turn.last_mut().filter(|b| b["type"] == "text");
        if let (Some(last), Some(first)) = (last_text, blocks.peek()) {
            if first["type"] == "text" {
                let joined = format!(
                    "{}\n\n{}",
                    last["text"].as_str().unwrap_or_default(),
                    first["text"].as_str().unwrap_or_default()
                );
                last["text"] = Value::String(joined);
                blocks.next();
            }
        }
    }
    turn.extend(blocks);
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
                let field = format!("tools[{i}].function.description");
                tool.insert("description".into(), string(d, &field)?);
            }
            let schema = match f.get("parameters").filter(|p| !p.is_null()) {
                Some(p) => object(p, &format!("tools[{i}].function.parameters"))?,
                None => json!({"type": "object", "properties": {}}),
            };
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

/// The `text` of a text part or block: a string, as both APIs require.
fn text_of<'a>(part: &'a Value, field: &str) -> Result<&'a str> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::invalid(format!("{field}.text"), "must be a string"))
}

/// The `text` of a text part or block that becomes (or is) an Anthropic
/// text block: the Messages API refuses an empty one.
fn block_text<'a>(block: &'a Value, field: &str) -> Result<&'a str> {
    non_empty(text_of(block, field)?, &format!("{field}.text"))
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
                f.insert(
                    "description".into(),
                    string(d, &format!("tools[{i}].description"))?,
                );
            }
            let schema = match t.get("input_schema").filter(|s| !s.is_null()) {
                Some(s) => object(s, &format!("tools[{i}].input_schema"))?,
                None => json!({"type": "object", "properties": {}}),
            };
            f.insert("parameters".into(), schema);
            Ok(json!({"type": "function", "function": Value::Object(f)}))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

// Values carried from one API to the other keep the type both give them:
// anything else is refused here, naming the field, rather than passed on
// for the provider to refuse (or to read some other way).

fn positive_int(v: &Value, field: &str) -> Result<u64> {
    v.as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| TranslateError::invalid(field, "must be a positive integer"))
}

fn boolean(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::Bool(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(field, "must be a boolean")),
    }
}

fn string(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::String(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(field, "must be a string")),
    }
}

fn strings(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::Array(a) if a.iter().all(Value::is_string) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(
            field,
            "must be an array of strings",
        )),
    }
}

fn object(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(field, "must be a JSON object")),
    }
}

/// A tool result's text: absent is empty, anything but text is refused.
fn optional_text(content: &Value, field: &str) -> Result<String> {
    match content {
        Value::Null => Ok(String::new()),
        _ => plain_text(content).ok_or_else(|| TranslateError::invalid(field, "must be text")),
    }
}

/// Text the Messages API takes: a text block must not be empty.
fn non_empty<'a>(text: &'a str, field: &str) -> Result<&'a str> {
    if text.is_empty() {
        return Err(TranslateError::invalid(field, "must not be empty"));
    }
    Ok(text)
}
