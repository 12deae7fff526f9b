//! A streamed answer, as the app received it, assembled into the whole
//! response its API returns without `stream`. Only a complete stream
//! assembles: one that was cut, ended in an error event, or lacks a finish
//! reason gives `None` and is never stored.

use serde_json::{json, Map, Value};

use crate::api::sse::events;
use crate::api::Family;

/// Assembles the framed SSE bytes the app received.
pub fn assemble(family: Family, sse: &[u8]) -> Option<Value> {
    match family {
        Family::OpenAi => openai(sse),
        Family::Anthropic => anthropic(sse),
    }
}

#[derive(Default)]
struct Choice {
    role: Option<Value>,
    content: Option<String>,
    refusal: Option<String>,
    /// By tool call index: id, name, arguments.
    tools: Vec<(u64, Value, String, String)>,
    finish: Option<Value>,
}

fn openai(sse: &[u8]) -> Option<Value> {
    let mut head: Option<Value> = None;
    let mut choices: Vec<(u64, Choice)> = Vec::new();
    let mut usage = Value::Null;
    let mut done = false;
    for ev in events(sse) {
        if ev.data.trim_ascii() == b"[DONE]" {
            done = true;
            continue;
        }
        let v: Value = serde_json::from_slice(&ev.data).ok()?;
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return None;
        }
        if head.is_none() {
            head = Some(v.clone());
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            usage = u.clone();
        }
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let pos = match choices.iter().position(|(i, _)| *i == index) {
                Some(p) => p,
                None => {
                    choices.push((index, Choice::default()));
                    choices.len() - 1
                }
            };
            let ch = &mut choices[pos].1;
            let delta = c.get("delta").unwrap_or(&Value::Null);
            if let Some(r) = delta.get("role").filter(|r| !r.is_null()) {
                ch.role = Some(r.clone());
            }
            if let Some(t) = delta.get("content").and_then(Value::as_str) {
                ch.content.get_or_insert_with(String::new).push_str(t);
            }
            if let Some(t) = delta.get("refusal").and_then(Value::as_str) {
                ch.refusal.get_or_insert_with(String::new).push_str(t);
            }
            for t in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let ti = t.get("index").and_then(Value::as_u64).unwrap_or(0);
                let slot = match ch.tools.iter().position(|(i, ..)| *i == ti) {
                    Some(p) => p,
                    None => {
                        ch.tools
                            .push((ti, Value::Null, String::new(), String::new()));
                        ch.tools.len() - 1
                    }
                };
                let entry = &mut ch.tools[slot];
                if let Some(id) = t.get("id").filter(|i| !i.is_null()) {
                    entry.1 = id.clone();
                }
                if let Some(n) = t.pointer("/function/name").and_then(Value::as_str) {
                    entry.2.push_str(n);
                }
                if let Some(a) = t.pointer("/function/arguments").and_then(Value::as_str) {
                    entry.3.push_str(a);
                }
            }
            if let Some(f) = c.get("finish_reason").filter(|f| !f.is_null()) {
                ch.finish = Some(f.clone());
            }
        }
    }
    let head = head?;
    if !done || choices.is_empty() || choices.iter().any(|(_, c)| c.finish.is_none()) {
        return None;
    }
    choices.sort_by_key(|(i, _)| *i);
    let choices: Vec<Value> = choices
        .into_iter()
        .map(|(index, c)| {
            let mut message = Map::new();
            message.insert("role".into(), c.role.unwrap_or_else(|| json!("assistant")));
            message.insert(
                "content".into(),
                c.content.map(Value::String).unwrap_or(Value::Null),
            );
            message.insert(
                "refusal".into(),
                c.refusal.map(Value::String).unwrap_or(Value::Null),
            );
            if !c.tools.is_empty() {
                let calls = c
                    .tools
                    .into_iter()
                    .map(|(_, id, name, args)| {
                        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})
                    })
                    .collect();
                message.insert("tool_calls".into(), Value::Array(calls));
            }
            json!({"index": index, "message": message, "logprobs": null, "finish_reason": c.finish})
        })
        .collect();
    let mut out = json!({
        "id": head.get("id").cloned().unwrap_or_default(),
        "object": "chat.completion",
        "created": head.get("created").cloned().unwrap_or_default(),
        "model": head.get("model").cloned().unwrap_or_default(),
        "choices": choices,
    });
    if let Some(fp) = head.get("system_fingerprint").filter(|f| !f.is_null()) {
        out["system_fingerprint"] = fp.clone();
    }
    if !usage.is_null() {
        out["usage"] = usage;
    }
    Some(out)
}

fn anthropic(sse: &[u8]) -> Option<Value> {
    let mut message: Option<Value> = None;
    // By block index: the block, and the partial JSON of a tool_use input.
    let mut blocks: Vec<(u64, Value, String)> = Vec::new();
    let mut stopped = false;
    for ev in events(sse) {
        let v: Value = serde_json::from_slice(&ev.data).ok()?;
        let kind = ev
            .name
            .map(str::to_string)
            .or_else(|| v.get("type").and_then(Value::as_str).map(str::to_string))
            .unwrap_or_default();
        match kind.as_str() {
            "message_start" => message = Some(v.get("message")?.clone()),
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64)?;
                blocks.push((index, v.get("content_block")?.clone(), String::new()));
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64)?;
                let (_, block, json_buf) = blocks.iter_mut().find(|(i, ..)| *i == index)?;
                let delta = v.get("delta")?;
                let append = |block: &mut Value, field: &str, key: &str| {
                    let add = delta.get(key).and_then(Value::as_str).unwrap_or("");
                    let cur = block
                        .get(field)
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string();
                    block[field] = Value::String(cur + add);
                };
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => append(block, "text", "text"),
                    Some("thinking_delta") => append(block, "thinking", "thinking"),
                    Some("signature_delta") => append(block, "signature", "signature"),
                    Some("citations_delta") => {
                        let c = delta.get("citation").cloned().unwrap_or_default();
                        match block.get_mut("citations").and_then(Value::as_array_mut) {
                            Some(list) => list.push(c),
                            None => block["citations"] = json!([c]),
                        }
                    }
                    Some("input_json_delta") => json_buf.push_str(
                        delta
                            .get("partial_json")
                            .and_then(Value::as_str)
                            .unwrap_or(""),
                    ),
                    _ => {}
                }
            }
            "message_delta" => {
                let m = message.as_mut()?;
                if let Some(d) = v.get("delta").and_then(Value::as_object) {
                    for (k, val) in d {
                        m[k.as_str()] = val.clone();
                    }
                }
                if let Some(Value::Object(u)) = v.get("usage") {
                    for (k, val) in u {
                        if !val.is_null() {
                            m["usage"][k.as_str()] = val.clone();
                        }
                    }
                }
            }
            "message_stop" => stopped = true,
            "error" => return None,
            _ => {}
        }
    }
    let mut m = message?;
    if !stopped || m.get("stop_reason").is_none_or(Value::is_null) {
        return None;
    }
    blocks.sort_by_key(|(i, ..)| *i);
    let content: Option<Vec<Value>> = blocks
        .into_iter()
        .map(|(_, mut block, json_buf)| {
            if matches!(
                block.get("type").and_then(Value::as_str),
                Some("tool_use" | "server_tool_use")
            ) && !json_buf.is_empty()
            {
                block["input"] = serde_json::from_str(&json_buf).ok()?;
            }
            Some(block)
        })
        .collect();
    m["content"] = Value::Array(content?);
    Some(m)
}
