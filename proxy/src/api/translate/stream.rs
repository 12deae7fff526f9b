//! SSE streams: Anthropic message events ⇄ OpenAI chat completion chunks.
//!
//! Each translator takes the upstream's events one at a time (as
//! [`Event`]s, whose JSON the pipeline parses once for every phase) and
//! builds the events for the app, holding only the little state the other
//! API needs (the block or tool call in progress, the stop reason, usage).
//! The events it builds carry their JSON: the phases after it read that
//! value, and it is serialised once, on the way out.

use serde_json::{json, Value};

use super::errors::{anthropic_error_value, openai_error_value};
use super::response::{anthropic_usage, openai_usage};
use super::{finish_reason, now_secs, stop_reason};
use crate::api::Event;

/// A stream translator: upstream events in, the app's events out.
pub trait StreamTranslator: Send {
    /// One upstream event; the events for the app go to `out`.
    fn push(&mut self, ev: &Event, out: &mut Vec<Event>);
    /// The upstream ended.
    fn finish(&mut self, out: &mut Vec<Event>);
}

fn data_event(v: Value) -> Event {
    Event::built(None, v)
}

fn named_event(name: &'static str, v: Value) -> Event {
    Event::built(Some(name), v)
}

/// Anthropic stream → OpenAI chunks.
pub struct AnthropicToOpenAiStream {
    model: String,
    include_usage: bool,
    id: String,
    created: u64,
    /// Anthropic content block index → OpenAI tool call index.
    tool_blocks: Vec<(u64, usize)>,
    usage: Value,
    done: bool,
}

impl AnthropicToOpenAiStream {
    /// `model` is the name the app asked for; `include_usage` whether it
    /// asked for the final usage chunk.
    pub fn new(model: &str, include_usage: bool) -> Self {
        AnthropicToOpenAiStream {
            model: model.to_string(),
            include_usage,
            id: String::from("chatcmpl-tollgate"),
            created: now_secs(),
            tool_blocks: Vec::new(),
            usage: json!({}),
            done: false,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> Event {
        data_event(json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}],
        }))
    }

    fn merge_usage(&mut self, u: Option<&Value>) {
        let (Some(Value::Object(u)), Value::Object(acc)) = (u, &mut self.usage) else {
            return;
        };
        for (k, v) in u {
            if !v.is_null() {
                acc.insert(k.clone(), v.clone());
            }
        }
    }

    pub fn push(&mut self, ev: &Event, out: &mut Vec<Event>) {
        if self.done {
            return;
        }
        let Some(v) = ev.json() else {
            return;
        };
        let kind = ev
            .name()
            .or_else(|| v.get("type").and_then(Value::as_str))
            .unwrap_or("");
        match kind {
            "message_start" => {
                if let Some(id) = v.pointer("/message/id").and_then(Value::as_str) {
                    self.id = format!("chatcmpl-{}", id.strip_prefix("msg_").unwrap_or(id));
                }
                self.merge_usage(v.pointer("/message/usage"));
                out.push(self.chunk(json!({"role": "assistant", "content": ""}), None));
            }
            "content_block_start" => {
                let block = v.get("content_block").unwrap_or(&Value::Null);
                if block.get("type").and_then(Value::as_str) != Some("tool_use") {
                    return;
                }
                let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let call = self.tool_blocks.len();
                self.tool_blocks.push((index, call));
                out.push(self.chunk(
                    json!({"tool_calls": [{
                        "index": call,
                        "id": block.get("id").cloned().unwrap_or_default(),
                        "type": "function",
                        "function": {"name": block.get("name").cloned().unwrap_or_default(), "arguments": ""},
                    }]}),
                    None,
                ));
            }
            "content_block_delta" => {
                let delta = v.get("delta").unwrap_or(&Value::Null);
                match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => {
                        let text = delta.get("text").cloned().unwrap_or_default();
                        out.push(self.chunk(json!({"content": text}), None));
                    }
                    Some("input_json_delta") => {
                        let index = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                        let Some(&(_, call)) = self.tool_blocks.iter().find(|(b, _)| *b == index)
                        else {
                            return;
                        };
                        let part = delta.get("partial_json").cloned().unwrap_or_default();
                        out.push(self.chunk(
                            json!({"tool_calls": [{"index": call, "function": {"arguments": part}}]}),
                            None,
                        ));
                    }
                    // Thinking and signatures have no place in a chat chunk.
                    _ => {}
                }
            }
            "message_delta" => {
                self.merge_usage(v.get("usage"));
                if let Some(r) = v.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    out.push(self.chunk(json!({}), Some(finish_reason(r))));
                }
            }
            "message_stop" => {
                self.done = true;
                if self.include_usage {
                    out.push(data_event(json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": openai_usage(&self.usage),
                    })));
                }
                out.push(Event::done());
            }
            "error" => {
                self.done = true;
                let status = match v.pointer("/error/type").and_then(Value::as_str) {
                    Some("overloaded_error") => 529,
                    Some("rate_limit_error") => 429,
                    Some("invalid_request_error") => 400,
                    _ => 500,
                };
                out.push(data_event(anthropic_error_value(
                    status,
                    ev.data(),
                    Some(v),
                )));
            }
            // ping, content_block_stop
            _ => {}
        }
    }

    /// Nothing is held: the app's events went out with the upstream's.
    pub fn finish(&mut self, _out: &mut Vec<Event>) {}
}

impl StreamTranslator for AnthropicToOpenAiStream {
    fn push(&mut self, ev: &Event, out: &mut Vec<Event>) {
        AnthropicToOpenAiStream::push(self, ev, out)
    }
    fn finish(&mut self, out: &mut Vec<Event>) {
        AnthropicToOpenAiStream::finish(self, out)
    }
}

/// What the Anthropic stream has open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    None,
    Text,
    /// A tool_use block for this OpenAI tool call index.
    Tool(u64),
}

/// OpenAI chunks → Anthropic stream.
pub struct OpenAiToAnthropicStream {
    model: String,
    started: bool,
    block: Block,
    /// Index of the next Anthropic content block.
    next_index: u64,
    stop: Option<&'static str>,
    usage: Value,
    done: bool,
}

impl OpenAiToAnthropicStream {
    /// `model` is the name the app asked for.
    pub fn new(model: &str) -> Self {
        OpenAiToAnthropicStream {
            model: model.to_string(),
            started: false,
            block: Block::None,
            next_index: 0,
            stop: None,
            usage: Value::Null,
            done: false,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<Event>) {
        if self.started {
            return;
        }
        self.started = true;
        let id = format!("msg_{}", id.strip_prefix("chatcmpl-").unwrap_or(id));
        out.push(named_event(
            "message_start",
            json!({"type": "message_start", "message": {
                "id": id, "type": "message", "role": "assistant", "model": self.model,
                "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": {"input_tokens": 0, "output_tokens": 0},
            }}),
        ));
        out.push(named_event("ping", json!({"type": "ping"})));
    }

    fn close_block(&mut self, out: &mut Vec<Event>) {
        if self.block != Block::None {
            out.push(named_event(
                "content_block_stop",
                json!({"type": "content_block_stop", "index": self.next_index - 1}),
            ));
            self.block = Block::None;
        }
    }

    fn open_block(&mut self, block: Block, content_block: Value, out: &mut Vec<Event>) {
        self.close_block(out);
        out.push(named_event(
            "content_block_start",
            json!({"type": "content_block_start", "index": self.next_index, "content_block": content_block}),
        ));
        self.next_index += 1;
        self.block = block;
    }

    fn delta(&self, delta: Value) -> Event {
        named_event(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": self.next_index - 1, "delta": delta}),
        )
    }

    /// Closes the message: the open block, the stop reason with usage, and
    /// `message_stop`.
    fn end(&mut self, out: &mut Vec<Event>) {
        if self.done {
            return;
        }
        self.done = true;
        self.start("tollgate", out);
        self.close_block(out);
        let usage = anthropic_usage(&self.usage);
        out.push(named_event(
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": self.stop.unwrap_or("end_turn"), "stop_sequence": null},
                "usage": usage}),
        ));
        out.push(named_event("message_stop", json!({"type": "message_stop"})));
    }

    pub fn push(&mut self, ev: &Event, out: &mut Vec<Event>) {
        if self.done {
            return;
        }
        if ev.is_done() {
            self.end(out);
            return;
        }
        let Some(v) = ev.json() else {
            return;
        };
        if v.get("error").is_some_and(|e| !e.is_null()) {
            self.done = true;
            out.push(named_event(
                "error",
                openai_error_value(500, ev.data(), Some(v)),
            ));
            return;
        }
        self.start(v.get("id").and_then(Value::as_str).unwrap_or(""), out);
        if let Some(u) = v.get("usage").filter(|u| !u.is_null()) {
            self.usage = u.clone();
        }
        for choice in v
            .get("choices")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            let delta = choice.get("delta").unwrap_or(&Value::Null);
            for key in ["content", "refusal"] {
                if let Some(text) = delta.get(key).and_then(Value::as_str) {
                    if text.is_empty() {
                        continue;
                    }
                    if self.block != Block::Text {
                        self.open_block(Block::Text, json!({"type": "text", "text": ""}), out);
                    }
                    out.push(self.delta(json!({"type": "text_delta", "text": text})));
                }
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let index = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let id = call.get("id").and_then(Value::as_str);
                if self.block != Block::Tool(index) || id.is_some() {
                    let name = call.pointer("/function/name").cloned().unwrap_or_default();
                    self.open_block(
                        Block::Tool(index),
                        json!({"type": "tool_use", "id": id.unwrap_or_default(), "name": name, "input": {}}),
                        out,
                    );
                }
                if let Some(args) = call.pointer("/function/arguments").and_then(Value::as_str) {
                    if !args.is_empty() {
                        out.push(
                            self.delta(json!({"type": "input_json_delta", "partial_json": args})),
                        );
                    }
                }
            }
            if let Some(r) = choice.get("finish_reason").and_then(Value::as_str) {
                self.stop = Some(stop_reason(r));
            }
        }
    }

    /// A stream that ended without `[DONE]` but with a finish reason is
    /// closed properly; one cut short is left for the caller's error event.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        if self.stop.is_some() {
            self.end(out);
        }
    }
}

impl StreamTranslator for OpenAiToAnthropicStream {
    fn push(&mut self, ev: &Event, out: &mut Vec<Event>) {
        OpenAiToAnthropicStream::push(self, ev, out)
    }
    fn finish(&mut self, out: &mut Vec<Event>) {
        OpenAiToAnthropicStream::finish(self, out)
    }
}

#[cfg(test)]
mod tests;
