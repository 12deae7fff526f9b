//! A streamed answer, as the app received it, assembled into the whole
//! response its API returns without `stream`. Only a complete stream
//! assembles: one that was cut, ended in an error event, or lacks a finish
//! reason gives `None` and is never stored.
//!
//! The [`Assembler`] takes the events one at a time, as the response
//! pipeline's cache tee sees them, and reads the JSON they already carry
//! (it parses nothing itself).

use serde_json::{json, Map, Value};

use super::replay::openai_shell;
use crate::api::{Event, Family};

/// Assembles framed SSE bytes (a replayed or recorded stream).
#[cfg(test)]
pub(crate) fn assemble(family: Family, sse: &[u8]) -> Option<Value> {
    let mut a = Assembler::new(family);
    for f in crate::api::sse::events(sse) {
        a.push(&Event::new(f.name, bytes::Bytes::copy_from_slice(&f.data)));
    }
    a.finish()
}

/// A stream being assembled, event by event.
pub(crate) struct Assembler {
    state: State,
    /// An event made the stream unstorable (not JSON, an error).
    broken: bool,
}

enum State {
    OpenAi(OpenAiParts),
    Anthropic(AnthropicParts),
}

#[derive(Default)]
struct OpenAiParts {
    head: Option<Value>,
    choices: Vec<(u64, Choice)>,
    usage: Value,
    done: bool,
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

#[derive(Default)]
struct AnthropicParts {
    message: Option<Value>,
    /// By block index: the block, and the partial JSON of a tool_use input.
    blocks: Vec<(u64, Value, String)>,
    stopped: bool,
}

impl Assembler {
    pub(crate) fn new(family: Family) -> Assembler {
        let state = match family {
            Family::OpenAi => State::OpenAi(OpenAiParts::default()),
            Family::Anthropic => State::Anthropic(AnthropicParts::default()),
        };
        Assembler {
            state,
            broken: false,
        }
    }

    /// One event the app received (comment blocks are not events).
    pub(crate) fn push(&mut self, ev: &Event) {
        if self.broken || ev.is_comment() {
            return;
        }
        let ok = match &mut self.state {
            State::OpenAi(p) => p.push(ev),
            State::Anthropic(p) => p.push(ev),
        };
        self.broken = ok.is_none();
    }

    /// The whole response, when the stream was complete.
    pub(crate) fn finish(self) -> Option<Value> {
        if self.broken {
            return None;
        }
        match self.state {
            State::OpenAi(p) => p.finish(),
            State::Anthropic(p) => p.finish(),
        }
    }
}

// === impl OpenAiParts ===

impl OpenAiParts {
    fn push(&mut self, ev: &Event) -> Option<()> {
        if ev.is_done() {
            self.done = true;
            return Some(());
        }
        let v = ev.json()?;
        if v.get("error").is_some_and(|e| !e.is_null()) {
            return None;
        }
        if self.head.is_none() {
            self.head = Some(v.clone());
        }
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = u.clone();
        }
        for c in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let index = c.get("index").and_then(Value::as_u64).unwrap_or(0);
            let pos = match self.choices.iter().position(|(i, _)| *i == index) {
                Some(p) => p,
                None => {
                    self.choices.push((index, Choice::default()));
                    self.choices.len() - 1
                }
            };
            let ch = &mut self.choices[pos].1;
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
        Some(())
    }

    fn finish(self) -> Option<Value> {
        let OpenAiParts {
            head,
            mut choices,
            usage,
            done,
        } = self;
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
        let mut out = openai_shell(&head, "chat.completion", Value::Array(choices));
        if let Some(fp) = head.get("system_fingerprint").filter(|f| !f.is_null()) {
            out["system_fingerprint"] = fp.clone();
        }
        if !usage.is_null() {
            out["usage"] = usage;
        }
        Some(out)
    }
}

// === impl AnthropicParts ===

impl AnthropicParts {
    fn push(&mut self, ev: &Event) -> Option<()> {
        let v = ev.json()?;
        let kind = ev
            .name()
            .or_else(|| v.get("type").and_then(Value::as_str))
            .unwrap_or_default();
        match kind {
            "message_start" => self.message = Some(v.get("message")?.clone()),
            "content_block_start" => {
                let index = v.get("index").and_then(Value::as_u64)?;
                self.blocks
                    .push((index, v.get("content_block")?.clone(), String::new()));
            }
            "content_block_delta" => {
                let index = v.get("index").and_then(Value::as_u64)?;
                let (_, block, json_buf) = self.blocks.iter_mut().find(|(i, ..)| *i == index)?;
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
                let m = self.message.as_mut()?;
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
            "message_stop" => self.stopped = true,
            "error" => return None,
            _ => {}
        }
        Some(())
    }

    fn finish(self) -> Option<Value> {
        let mut m = self.message?;
        if !self.stopped || m.get("stop_reason").is_none_or(Value::is_null) {
            return None;
        }
        let mut blocks = self.blocks;
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
}
