//! The response side for whole (non-streamed) answers: put pseudonyms
//! back, and optionally scan what the model wrote.
//!
//! Pseudonyms are restored in every string of the answer; restoring into a
//! JSON text (OpenAI tool-call `arguments`) escapes the original so the
//! arguments stay valid JSON.

use std::time::Instant;

use serde_json::Value;

use super::actions::{Direction, Pseudonyms, Redaction};
use super::{Engine, PiiMetrics};
use crate::api::Family;

/// What a response filter needs from its request.
pub(crate) struct ResponseFilter<'a> {
    pub engine: &'a Engine,
    pub pseudonyms: Option<&'a Pseudonyms>,
    pub metrics: &'a PiiMetrics,
}

impl ResponseFilter<'_> {
    /// True when answers need any work.
    pub(crate) fn active(&self) -> bool {
        self.engine.scan_responses || self.pseudonyms.is_some_and(|p| !p.is_empty())
    }

    /// Filters a whole JSON answer in the app's API. Bodies that are not
    /// JSON pass unchanged. (The response pipeline edits the answer it
    /// parsed already; this is for tests and fuzz targets.)
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn whole(&self, app: Family, body: bytes::Bytes) -> bytes::Bytes {
        if !self.active() {
            return body;
        }
        let Ok(mut v) = serde_json::from_slice::<Value>(&body) else {
            return body;
        };
        if !self.edit(app, &mut v) {
            return body;
        }
        bytes::Bytes::from(serde_json::to_vec(&v).expect("a JSON value serializes"))
    }

    /// Filters a whole answer in the app's API, parsed; true when it changed.
    pub(crate) fn edit(&self, app: Family, v: &mut Value) -> bool {
        if !self.active() {
            return false;
        }
        let started = Instant::now();
        let mut red = Redaction::default();
        let mut restored = 0u64;
        visit_answer(app, v, &mut |json_text, s: &mut String| {
            if self.engine.scan_responses {
                let found = self.engine.scanner.scan(s);
                if let Some(new) = red.apply(self.engine, s, &found, Direction::Response) {
                    *s = new;
                }
            }
            if let Some(p) = self.pseudonyms {
                let (new, n) = restore(s, p, json_text);
                if n > 0 {
                    *s = new;
                    restored += n;
                }
            }
        });
        self.record(&red, restored);
        self.metrics
            .scan_time(true)
            .observe(started.elapsed().as_secs_f64());
        red.changed || restored > 0
    }

    pub(super) fn record(&self, red: &Redaction, restored: u64) {
        for ((entity, action), n) in &red.counts {
            self.metrics
                .detections
                .with_label_values(&[self.engine.name(*entity), action.as_str(), "response"])
                .inc_by(*n);
        }
        if restored > 0 {
            self.metrics.restored.inc_by(restored);
        }
    }
}

/// Replaces every placeholder of `p` in `s`; `json_text` escapes the
/// originals for a JSON string context. Returns the text and the count.
pub(crate) fn restore(s: &str, p: &Pseudonyms, json_text: bool) -> (String, u64) {
    if !s.contains('[') {
        return (String::new(), 0);
    }
    let mut out = String::with_capacity(s.len());
    let mut n = 0;
    let mut rest = s;
    while let Some(i) = rest.find('[') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match p
            .entries
            .iter()
            .find(|(ph, _)| tail.starts_with(ph.as_str()))
        {
            Some((ph, original)) => {
                if json_text {
                    let quoted = serde_json::to_string(original).expect("a string serializes");
                    out.push_str(&quoted[1..quoted.len() - 1]);
                } else {
                    out.push_str(original);
                }
                rest = &tail[ph.len()..];
                n += 1;
            }
            None => {
                out.push('[');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    (out, n)
}

/// Calls `f(json_text, text)` on every text of an answer the model wrote.
fn visit_answer(app: Family, v: &mut Value, f: &mut impl FnMut(bool, &mut String)) {
    match app {
        Family::OpenAi => {
            let Some(Value::Array(choices)) = v.get_mut("choices") else {
                return;
            };
            for c in choices {
                if let Some(Value::String(s)) = c.get_mut("text") {
                    f(false, s);
                }
                let Some(m) = c.get_mut("message") else {
                    continue;
                };
                for key in ["content", "refusal"] {
                    if let Some(Value::String(s)) = m.get_mut(key) {
                        f(false, s);
                    }
                }
                if let Some(Value::Array(calls)) = m.get_mut("tool_calls") {
                    for call in calls {
                        if let Some(Value::String(args)) = call.pointer_mut("/function/arguments") {
                            f(true, args);
                        }
                    }
                }
            }
        }
        Family::Anthropic => {
            let Some(Value::Array(blocks)) = v.get_mut("content") else {
                return;
            };
            for b in blocks {
                if let Some(Value::String(s)) = b.get_mut("text") {
                    f(false, s);
                }
                if let Some(input) = b.get_mut("input") {
                    deep(input, f);
                }
            }
        }
    }
}

fn deep(v: &mut Value, f: &mut impl FnMut(bool, &mut String)) {
    match v {
        Value::String(s) => f(false, s),
        Value::Array(items) => items.iter_mut().for_each(|i| deep(i, f)),
        Value::Object(map) => map.values_mut().for_each(|i| deep(i, f)),
        _ => {}
    }
}
