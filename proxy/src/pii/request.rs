//! The request side: every text the app sends, in both APIs, scanned once
//! before routing and translation.
//!
//! | API | texts |
//! |---|---|
//! | OpenAI chat | `messages[].content` (string or text parts) by role, `tool_calls[].function.arguments`, `tools[].function` descriptions (parameters included) |
//! | OpenAI completions / embeddings | `prompt`, `suffix`, `input` |
//! | Anthropic messages | `system`, `messages[].content` text blocks, `tool_use.input` strings, `tool_result` content, text documents, `tools[]` descriptions |
//!
//! User messages and tool results also go through the prompt guard.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use serde_json::Value;
use tollgate_config::GuardAction;

use super::actions::{Direction, Pseudonyms, Redaction};
use super::guard::{strip_hidden, GuardSource};
use super::metrics::PiiMetrics;
use super::{Engine, PiiError};
use crate::api::{Family, Operation};

/// Who wrote a text, which decides the guard's view of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    System,
    User,
    Assistant,
    /// Tool results and retrieved documents.
    Tool,
    /// Tool definitions.
    ToolDef,
}

/// The outcome of filtering one request.
#[derive(Debug, Default)]
pub struct Filtered {
    /// The rewritten body, when anything changed.
    pub body: Option<Bytes>,
    /// Placeholders to restore in the answer.
    pub pseudonyms: Option<Arc<Pseudonyms>>,
    /// Guard rules that matched (for `x-tollgate-guard`).
    pub guard_rules: Vec<&'static str>,
    /// What was found, by entity type: counts for the trace and the
    /// access log, never values.
    pub found: Vec<(String, u64)>,
}

/// Scans and rewrites the request `v` (the app's parsed body) in place;
/// `body` in the outcome is `v` serialized when a text changed. A block is
/// an error naming entity types or guard rules.
pub fn filter_request(
    engine: &Engine,
    family: Family,
    op: Operation,
    v: &mut Value,
    metrics: &PiiMetrics,
) -> Result<Filtered, PiiError> {
    let started = Instant::now();
    let mut scan = Scan::new(engine, metrics);
    visit(family, op, v, &mut |source, text: &mut String| {
        scan.text(guard_source(source), Direction::Request, text);
    });
    let done = scan.finish(started)?;
    let body = done
        .changed
        .then(|| Bytes::from(serde_json::to_vec(&*v).expect("a JSON value serializes")));
    Ok(Filtered {
        body,
        pseudonyms: (!done.pseudonyms.is_empty()).then(|| Arc::new(done.pseudonyms)),
        guard_rules: done.guard_rules,
        found: done.found,
    })
}

/// Other `/v1/*` paths (the Responses API, batches, ...) are forwarded
/// as they are, so they are scanned without knowing their shape: every
/// string of a JSON body except `data:` URLs, as user input. Pseudonymize
/// masks here (the answer is not read, so nothing could be restored).
/// Bodies that are not JSON (file uploads, audio) pass unscanned.
pub(crate) fn filter_other(
    engine: &Engine,
    headers: &http::HeaderMap,
    raw: &Bytes,
    metrics: &PiiMetrics,
) -> Result<Option<Bytes>, PiiError> {
    let json = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !json || raw.is_empty() {
        return Ok(None);
    }
    let Ok(mut v) = serde_json::from_slice::<Value>(raw) else {
        return Ok(None);
    };
    let started = Instant::now();
    let mut scan = Scan::new(engine, metrics);
    strings_deep(&mut v, Source::User, &mut |_, text: &mut String| {
        if !text.starts_with("data:") {
            scan.text(Some(GuardSource::User), Direction::Opaque, text);
        }
    });
    let done = scan.finish(started)?;
    Ok(done
        .changed
        .then(|| Bytes::from(serde_json::to_vec(&v).expect("a JSON value serializes"))))
}

/// One request's pass over its texts: the guard (for user input and tool
/// results), then the recognizers; findings counted once at the end.
struct Scan<'a> {
    engine: &'a Engine,
    metrics: &'a PiiMetrics,
    red: Redaction,
    guard_rules: Vec<&'static str>,
    guard_block: Vec<&'static str>,
    stripped: bool,
}

/// What a [`Scan`] left to the caller once nothing blocked.
struct Scanned {
    /// A text was rewritten: the body must be serialized again.
    changed: bool,
    pseudonyms: Pseudonyms,
    guard_rules: Vec<&'static str>,
    /// Findings by entity type, sorted by type.
    found: Vec<(String, u64)>,
}

impl<'a> Scan<'a> {
    fn new(engine: &'a Engine, metrics: &'a PiiMetrics) -> Scan<'a> {
        Scan {
            engine,
            metrics,
            red: Redaction::default(),
            guard_rules: Vec::new(),
            guard_block: Vec::new(),
            stripped: false,
        }
    }

    /// Checks and rewrites one text; `guard` is `None` for texts the
    /// guard does not read (system prompts, assistant turns, tool
    /// definitions).
    fn text(&mut self, guard: Option<GuardSource>, dir: Direction, text: &mut String) {
        if let (Some(g), Some(gs)) = (&self.engine.guard, guard) {
            let hits = g.check(text);
            let action = g.action(gs);
            for r in &hits.rules {
                self.metrics
                    .guard_hits
                    .with_label_values(&[r, gs.as_str(), action.as_str()])
                    .inc();
                if !self.guard_rules.contains(r) {
                    self.guard_rules.push(r);
                }
                if action == GuardAction::Block && !self.guard_block.contains(r) {
                    self.guard_block.push(r);
                }
            }
            if action == GuardAction::Strip && !hits.rules.is_empty() {
                if let Some(s) = strip_hidden(text) {
                    *text = s;
                    self.stripped = true;
                }
            }
        }
        if self.engine.pii_enabled {
            let found = self.engine.scanner.scan(text);
            if let Some(new) = self.red.apply(self.engine, text, &found, dir) {
                *text = new;
            }
        }
    }

    /// Counts the findings and the scan time; a block is an error naming
    /// guard rules or entity types, never values.
    fn finish(self, started: Instant) -> Result<Scanned, PiiError> {
        let m = self.metrics;
        for ((entity, action), n) in &self.red.counts {
            m.detections
                .series(&[self.engine.name(*entity), action.as_str(), "request"])
                .inc_by(*n);
        }
        m.scan_time(false).observe(started.elapsed().as_secs_f64());
        if !self.guard_block.is_empty() {
            m.blocked.with_label_values(&["prompt_guard"]).inc();
            return Err(PiiError::Guard {
                rules: self.guard_block,
            });
        }
        if !self.red.blocked.is_empty() {
            m.blocked.with_label_values(&["pii"]).inc();
            return Err(PiiError::Blocked {
                types: self.red.blocked.into_iter().collect(),
            });
        }
        let mut found: Vec<(String, u64)> = Vec::new();
        for ((entity, _), n) in &self.red.counts {
            let name = self.engine.name(*entity);
            match found.iter_mut().find(|(t, _)| t == name) {
                Some((_, total)) => *total += *n,
                None => found.push((name.to_string(), *n)),
            }
        }
        found.sort();
        Ok(Scanned {
            found,
            changed: self.red.changed || self.stripped,
            pseudonyms: self.red.pseudonyms,
            guard_rules: self.guard_rules,
        })
    }
}

fn guard_source(s: Source) -> Option<GuardSource> {
    match s {
        Source::User => Some(GuardSource::User),
        Source::Tool => Some(GuardSource::Tool),
        _ => None,
    }
}

/// Calls `f` on every text of a request.
pub(crate) fn visit(
    family: Family,
    op: Operation,
    v: &mut Value,
    f: &mut impl FnMut(Source, &mut String),
) {
    let Some(obj) = v.as_object_mut() else { return };
    match (family, op) {
        (Family::OpenAi, Operation::Completions) => {
            for key in ["prompt", "suffix"] {
                if let Some(p) = obj.get_mut(key) {
                    strings_shallow(p, Source::User, f);
                }
            }
        }
        (Family::OpenAi, Operation::Embeddings) => {
            if let Some(p) = obj.get_mut("input") {
                strings_shallow(p, Source::User, f);
            }
        }
        (Family::OpenAi, _) => {
            if let Some(Value::Array(msgs)) = obj.get_mut("messages") {
                for m in msgs {
                    openai_message(m, f);
                }
            }
            for key in ["tools", "functions"] {
                if let Some(Value::Array(tools)) = obj.get_mut(key) {
                    for t in tools {
                        let def = t.get_mut("function").filter(|d| d.is_object());
                        match def {
                            Some(d) => descriptions(d, f),
                            None => descriptions(t, f),
                        }
                    }
                }
            }
        }
        (Family::Anthropic, _) => {
            if let Some(s) = obj.get_mut("system") {
                anthropic_content(s, Source::System, f);
            }
            if let Some(Value::Array(msgs)) = obj.get_mut("messages") {
                for m in msgs {
                    let source = match m.get("role").and_then(Value::as_str) {
                        Some("assistant") => Source::Assistant,
                        _ => Source::User,
                    };
                    if let Some(c) = m.get_mut("content") {
                        anthropic_content(c, source, f);
                    }
                }
            }
            if let Some(Value::Array(tools)) = obj.get_mut("tools") {
                for t in tools {
                    descriptions(t, f);
                }
            }
        }
    }
}

fn openai_message(m: &mut Value, f: &mut impl FnMut(Source, &mut String)) {
    let source = match m.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Source::System,
        Some("assistant") => Source::Assistant,
        Some("tool" | "function") => Source::Tool,
        _ => Source::User,
    };
    if let Some(c) = m.get_mut("content") {
        match c {
            Value::String(s) => f(source, s),
            Value::Array(parts) => {
                for p in parts {
                    for key in ["text", "refusal"] {
                        if let Some(Value::String(s)) = p.get_mut(key) {
                            f(source, s);
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
        for c in calls {
            if let Some(Value::String(args)) =
                c.get_mut("function").and_then(|f| f.get_mut("arguments"))
            {
                f(Source::Assistant, args);
            }
        }
    }
    if let Some(Value::String(args)) = m
        .get_mut("function_call")
        .and_then(|f| f.get_mut("arguments"))
    {
        f(Source::Assistant, args);
    }
}

fn anthropic_content(c: &mut Value, source: Source, f: &mut impl FnMut(Source, &mut String)) {
    match c {
        Value::String(s) => f(source, s),
        Value::Array(blocks) => {
            for b in blocks {
                match b.get("type").and_then(Value::as_str) {
                    Some("text") => {
                        if let Some(Value::String(s)) = b.get_mut("text") {
                            f(source, s);
                        }
                    }
                    Some("tool_use") => {
                        if let Some(input) = b.get_mut("input") {
                            strings_deep(input, Source::Assistant, f);
                        }
                    }
                    Some("tool_result") => {
                        if let Some(inner) = b.get_mut("content") {
                            anthropic_content(inner, Source::Tool, f);
                        }
                    }
                    Some("document") => {
                        let text =
                            b.pointer("/source/type").and_then(Value::as_str) == Some("text");
                        if let (true, Some(Value::String(s))) =
                            (text, b.pointer_mut("/source/data"))
                        {
                            f(Source::Tool, s);
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

/// A string, or each string of an array (token-id arrays are skipped).
fn strings_shallow(v: &mut Value, source: Source, f: &mut impl FnMut(Source, &mut String)) {
    match v {
        Value::String(s) => f(source, s),
        Value::Array(items) => {
            for i in items {
                if let Value::String(s) = i {
                    f(source, s);
                }
            }
        }
        _ => {}
    }
}

/// Every string value, at any depth (object keys are left alone).
fn strings_deep(v: &mut Value, source: Source, f: &mut impl FnMut(Source, &mut String)) {
    match v {
        Value::String(s) => f(source, s),
        Value::Array(items) => items.iter_mut().for_each(|i| strings_deep(i, source, f)),
        Value::Object(map) => map.values_mut().for_each(|i| strings_deep(i, source, f)),
        _ => {}
    }
}

/// Every `description` string at any depth of a tool definition.
fn descriptions(v: &mut Value, f: &mut impl FnMut(Source, &mut String)) {
    match v {
        Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                match val {
                    Value::String(s) if k == "description" => f(Source::ToolDef, s),
                    _ => descriptions(val, f),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| descriptions(i, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
