//! Streamed answers: restore pseudonyms and scan text as it streams, with a
//! hold-back window so an entity split across events is still caught.
//!
//! Each text channel (a choice's content, a tool call's arguments, an
//! Anthropic content block) keeps the text that could still be the start of
//! an entity: the last unfinished word, a run of digits and separators that
//! may continue (`4111 1111 ` …), an unterminated PEM block, a partial
//! placeholder, or a number not yet followed by the context words that may
//! change its score. Everything before that goes out at once, filtered, in the
//! event that brought it; the held rest follows with the next event, or is
//! flushed before the event that closes the channel. For prose that is at
//! most one event of delay; `maxHoldBack` bounds the rest.
//!
//! The filter reads events in the app's API: the response pipeline runs it
//! after translation. Events it does not change go on as they came.

use std::collections::VecDeque;
use std::sync::Arc;

use serde_json::{json, Value};

mod holdback;

use super::actions::{Direction, Pseudonyms, Redaction};
use super::response::{restore, ResponseFilter};
use super::Engine;
use crate::api::{Event, Family};
use crate::metrics::Metrics;
use holdback::{floor_boundary, safe_cut};

/// Raw text kept before a channel's held text, for context words.
const CONTEXT: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// OpenAI `choices[i].delta.content` (or legacy `choices[i].text`).
    Content(u64),
    /// OpenAI `choices[i].delta.tool_calls[k].function.arguments`.
    ToolArgs(u64, u64),
    /// Anthropic content block `index`; `json` for `input_json_delta`.
    Block(u64, bool),
}

struct Channel {
    key: Key,
    /// Held raw text.
    pending: String,
    /// Raw text already sent, its last [`CONTEXT`] bytes.
    ctx: String,
    /// (end offset in `pending`, event number) of each piece held.
    marks: VecDeque<(usize, u64)>,
    /// Legacy completions put text in `choices[i].text`.
    legacy: bool,
}

/// The streaming filter for one answer.
pub struct StreamFilter {
    engine: Arc<Engine>,
    pseudonyms: Option<Arc<Pseudonyms>>,
    metrics: Arc<Metrics>,
    app: Family,
    channels: Vec<Channel>,
    /// The last OpenAI chunk, to build flush chunks from.
    template: Option<Value>,
    event_no: u64,
    red: Redaction,
    restored: u64,
    max_delay: u64,
    finished: bool,
}

impl StreamFilter {
    /// A filter for answers in `app`'s API.
    pub fn new(
        engine: Arc<Engine>,
        pseudonyms: Option<Arc<Pseudonyms>>,
        metrics: Arc<Metrics>,
        app: Family,
    ) -> StreamFilter {
        StreamFilter {
            engine,
            pseudonyms,
            metrics,
            app,
            channels: Vec::new(),
            template: None,
            event_no: 0,
            red: Redaction::default(),
            restored: 0,
            max_delay: 0,
            finished: false,
        }
    }

    /// One event in the app's API; what may go out now goes to `out`: held
    /// text that must precede it, then the event, rewritten if its text
    /// changed.
    pub fn push(&mut self, mut ev: Event, out: &mut Vec<Event>) {
        if ev.is_comment() {
            out.push(ev);
            return;
        }
        self.event_no += 1;
        if ev.is_done() {
            self.flush_all(out);
            out.push(ev);
            return;
        }
        ev.edit(|name, v| match self.app {
            Family::OpenAi => self.openai(v, out),
            Family::Anthropic => self.anthropic(name, v, out),
        });
        out.push(ev);
    }

    /// The stream ended: everything still held goes out.
    pub fn finish(&mut self, out: &mut Vec<Event>) {
        self.flush_all(out);
        self.record();
    }

    /// Returns whether `v` was rewritten.
    fn openai(&mut self, v: &mut Value, out: &mut Vec<Event>) -> bool {
        let mut changed = false;
        let mut finishing: Vec<u64> = Vec::new();
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for c in choices.iter_mut() {
                let i = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                if c.get("finish_reason").is_some_and(|r| !r.is_null()) {
                    finishing.push(i);
                }
                if let Some(Value::String(t)) = c.get_mut("text") {
                    let sent = self.feed(Key::Content(i), true, t);
                    changed |= sent != *t;
                    *t = sent;
                }
                let Some(delta) = c.get_mut("delta") else {
                    continue;
                };
                if let Some(Value::String(t)) = delta.get_mut("content") {
                    let sent = self.feed(Key::Content(i), false, t);
                    changed |= sent != *t;
                    *t = sent;
                }
                if let Some(Value::Array(calls)) = delta.get_mut("tool_calls") {
                    for call in calls {
                        let k = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                        if let Some(Value::String(t)) = call.pointer_mut("/function/arguments") {
                            let sent = self.feed(Key::ToolArgs(i, k), false, t);
                            changed |= sent != *t;
                            *t = sent;
                        }
                    }
                }
            }
        }
        if v.get("choices")
            .is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty()))
        {
            let mut t = v.clone();
            if let Some(o) = t.as_object_mut() {
                o.remove("usage");
                o.remove("choices");
            }
            self.template = Some(t);
        }
        // Held text goes out before the chunk that ends its choice.
        if !finishing.is_empty() {
            let mut flushed = Vec::new();
            for i in finishing {
                self.flush_where(
                    |k| matches!(k, Key::Content(c) | Key::ToolArgs(c, _) if c == i),
                    &mut flushed,
                );
            }
            out.extend(flushed);
        }
        changed
    }

    fn anthropic(&mut self, name: Option<&str>, v: &mut Value, out: &mut Vec<Event>) -> bool {
        let kind = v.get("type").and_then(Value::as_str).or(name).unwrap_or("");
        match kind {
            "content_block_delta" => {
                let i = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                let Some(delta) = v.get_mut("delta") else {
                    return false;
                };
                let (field, json) = match delta.get("type").and_then(Value::as_str) {
                    Some("text_delta") => ("text", false),
                    Some("input_json_delta") => ("partial_json", true),
                    _ => return false,
                };
                let Some(Value::String(t)) = delta.get_mut(field) else {
                    return false;
                };
                let sent = self.feed(Key::Block(i, json), false, t);
                let changed = sent != *t;
                *t = sent;
                changed
            }
            "content_block_stop" => {
                let i = v.get("index").and_then(Value::as_u64).unwrap_or(0);
                self.flush_where(|k| matches!(k, Key::Block(b, _) if b == i), out);
                false
            }
            "message_delta" | "message_stop" | "error" => {
                self.flush_all(out);
                false
            }
            _ => false,
        }
    }

    fn channel(&mut self, key: Key, legacy: bool) -> usize {
        if let Some(i) = self.channels.iter().position(|c| c.key == key) {
            return i;
        }
        self.channels.push(Channel {
            key,
            pending: String::new(),
            ctx: String::new(),
            marks: VecDeque::new(),
            legacy,
        });
        self.channels.len() - 1
    }

    /// Adds `text` to a channel; returns the filtered text that may go out now.
    fn feed(&mut self, key: Key, legacy: bool, text: &str) -> String {
        let ci = self.channel(key, legacy);
        let ch = &mut self.channels[ci];
        ch.pending.push_str(text);
        if !text.is_empty() {
            ch.marks.push_back((ch.pending.len(), self.event_no));
        }
        let cut = safe_cut(&ch.pending, self.engine.max_hold_back);
        self.release(ci, cut)
    }

    /// Sends `pending[..cut]` (moved back so no finding straddles it).
    fn release(&mut self, ci: usize, cut: usize) -> String {
        let engine = self.engine.clone();
        let ch = &mut self.channels[ci];
        let mut cut = cut;
        let scan = engine.scan_responses;
        let mut text = String::new();
        let mut found = Vec::new();
        if scan && cut > 0 {
            text = format!("{}{}", ch.ctx, ch.pending);
            let base = ch.ctx.len();
            let full = cut == ch.pending.len();
            // One scan, with the held text as context after: a finding that
            // straddles the cut moves the cut back to its start (findings
            // do not overlap, so those before it stay whole).
            let all = engine.scanner.scan(&text);
            for f in &all {
                if !full && f.start >= base && f.end > base + cut {
                    cut = cut.min(f.start - base);
                }
            }
            found = all
                .into_iter()
                .filter(|f| f.start >= base && f.end <= base + cut)
                .map(|mut f| {
                    f.start -= base;
                    f.end -= base;
                    f
                })
                .collect();
        }
        if cut == 0 {
            return String::new();
        }
        let raw: String = ch.pending.drain(..cut).collect();
        // Delay bookkeeping: the oldest piece that went out.
        let mut oldest = None;
        while let Some(&(end, ev)) = ch.marks.front() {
            if end <= cut {
                oldest.get_or_insert(ev);
                ch.marks.pop_front();
            } else {
                oldest.get_or_insert(ev);
                break;
            }
        }
        for m in ch.marks.iter_mut() {
            m.0 -= cut;
        }
        if let Some(ev) = oldest {
            self.max_delay = self.max_delay.max(self.event_no - ev);
        }
        let mut ctx = std::mem::take(&mut ch.ctx);
        ctx.push_str(&raw);
        let keep = floor_boundary(&ctx, ctx.len().saturating_sub(CONTEXT));
        ch.ctx = ctx[keep..].to_string();
        let json_text = matches!(ch.key, Key::ToolArgs(..) | Key::Block(_, true));
        drop(text);
        let redacted = self
            .red
            .apply(&engine, &raw, &found, Direction::Response)
            .unwrap_or(raw);
        match &self.pseudonyms {
            Some(p) => {
                let (restored, n) = restore(&redacted, p, json_text);
                if n > 0 {
                    self.restored += n;
                    restored
                } else {
                    redacted
                }
            }
            None => redacted,
        }
    }

    fn flush_where(&mut self, pick: impl Fn(Key) -> bool, out: &mut Vec<Event>) {
        for ci in 0..self.channels.len() {
            let key = self.channels[ci].key;
            if !pick(key) || self.channels[ci].pending.is_empty() {
                continue;
            }
            let len = self.channels[ci].pending.len();
            let text = self.release(ci, len);
            if text.is_empty() {
                continue;
            }
            let legacy = self.channels[ci].legacy;
            out.push(self.flush_event(key, legacy, text));
        }
    }

    fn flush_all(&mut self, out: &mut Vec<Event>) {
        self.flush_where(|_| true, out);
    }

    /// An event carrying held text on its own.
    fn flush_event(&self, key: Key, legacy: bool, text: String) -> Event {
        match key {
            Key::Block(i, json) => {
                let delta = if json {
                    json!({"type": "input_json_delta", "partial_json": text})
                } else {
                    json!({"type": "text_delta", "text": text})
                };
                let v = json!({"type": "content_block_delta", "index": i, "delta": delta});
                Event::built(Some("content_block_delta"), v)
            }
            Key::Content(i) | Key::ToolArgs(i, _) => {
                let choice = match key {
                    Key::Content(_) if legacy => {
                        json!({"index": i, "text": text, "finish_reason": null})
                    }
                    Key::Content(_) => {
                        json!({"index": i, "delta": {"content": text}, "finish_reason": null})
                    }
                    Key::ToolArgs(_, k) => {
                        json!({"index": i, "delta": {"tool_calls": [{"index": k, "function": {"arguments": text}}]}, "finish_reason": null})
                    }
                    Key::Block(..) => unreachable!(),
                };
                let mut v = self
                    .template
                    .clone()
                    .unwrap_or_else(|| json!({"object": "chat.completion.chunk"}));
                v["choices"] = json!([choice]);
                Event::built(None, v)
            }
        }
    }

    fn record(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        let m = &self.metrics.pii;
        ResponseFilter {
            engine: &self.engine,
            pseudonyms: None,
            metrics: m,
        }
        .record(&self.red, self.restored);
        m.holdback_events.observe(self.max_delay as f64);
    }

    /// The most events any text waited so far.
    pub fn max_delay(&self) -> u64 {
        self.max_delay
    }
}

impl Drop for StreamFilter {
    fn drop(&mut self) {
        self.record();
    }
}

#[cfg(test)]
mod tests;
