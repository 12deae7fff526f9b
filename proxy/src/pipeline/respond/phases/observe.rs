//! The phases that read an answer's events without changing them: usage,
//! the text for budgets, the text for a shadow comparison. They run first,
//! on the provider's own API.

use serde_json::Value;
use tokio::sync::oneshot;

use crate::api::usage::{StreamUsage, Usage};
use crate::api::{Event, Family};
use crate::body::End;
use crate::pipeline::budget::OutputText;
use crate::pipeline::respond::{Checked, Phase, Tally};

/// Most text kept from a stream for a shadow comparison.
const MAX_CAPTURE: usize = 256 * 1024;

// === UsageCapture ===

/// How the usage phase reads events, by what later phases need of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reading {
    /// A later phase reads the events' JSON: parsed whole, shared.
    Shared,
    /// No later phase reads it: chunks and answers are read for their
    /// usage fields only.
    Alone,
    /// As `Alone`, but the cache tee keeps a whole answer only if it is
    /// JSON: the answer is checked as a tree parse would check it (no tree
    /// built) and the finding left in the tally's `checked`.
    Checked,
}

/// Usage the provider reported, in its own API; it marks OpenAI's
/// usage-only chunk for the strip phase.
pub(crate) struct UsageCapture {
    api: Family,
    usage: StreamUsage,
    checked: bool,
}

impl UsageCapture {
    pub(crate) fn phase(api: Family, reading: Reading) -> Box<dyn Phase> {
        let usage = if reading == Reading::Shared {
            StreamUsage::default()
        } else {
            StreamUsage::alone()
        };
        Box::new(UsageCapture {
            api,
            usage,
            checked: reading == Reading::Checked,
        })
    }
}

impl Phase for UsageCapture {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn event(&mut self, mut ev: Event, tally: &mut Tally, out: &mut Vec<Event>) {
        if ev.is_body() && self.checked {
            let read = Usage::of_checked(self.api, &ev);
            let (json, usage) = (read.is_some(), read.flatten());
            tally.usage = usage;
            tally.usage_complete = true;
            tally.checked = Some(Checked {
                family: self.api,
                json,
                usage,
            });
        } else if ev.is_body() {
            tally.usage = Usage::of_body(self.api, &ev, self.usage.is_alone());
            tally.usage_complete = true;
        } else {
            if self.usage.observe(self.api, &ev) {
                ev.note_usage_only();
            }
            tally.usage = self.usage.get();
            tally.usage_complete = self.usage.is_complete();
        }
        out.push(ev);
    }
}

// === OutputCapture ===

/// The text sent, for a budget estimate should usage be missing or the
/// stream be cut: every event of a stream; a whole answer's only when it
/// reported no usage.
pub(crate) struct OutputCapture {
    api: Family,
    text: Option<OutputText>,
}

impl OutputCapture {
    pub(crate) fn phase(api: Family, stream: bool) -> Box<dyn Phase> {
        Box::new(OutputCapture {
            api,
            text: stream.then(OutputText::default),
        })
    }
}

impl Phase for OutputCapture {
    fn name(&self) -> &'static str {
        "output text"
    }

    fn event(&mut self, ev: Event, tally: &mut Tally, out: &mut Vec<Event>) {
        // A whole answer is parsed here only when it reported no usage.
        match self.text.as_mut() {
            Some(text) => {
                if let Some(v) = ev.json() {
                    text.push_event(self.api, v);
                }
            }
            None if ev.is_body() && tally.usage.is_none() => {
                if let Some(v) = ev.json() {
                    self.text = Some(OutputText::of_response(self.api, v));
                }
            }
            None => {}
        }
        out.push(ev);
    }

    fn end(&mut self, _end: End, tally: &mut Tally) {
        tally.text = self.text.take();
    }
}

// === ShadowCapture ===

/// The primary's text for a shadow comparison: a whole answer's at once, a
/// stream's when it ends.
pub(crate) struct ShadowCapture {
    api: Family,
    tx: Option<oneshot::Sender<String>>,
    text: String,
}

impl ShadowCapture {
    pub(crate) fn phase((api, tx): (Family, oneshot::Sender<String>)) -> Box<dyn Phase> {
        Box::new(ShadowCapture {
            api,
            tx: Some(tx),
            text: String::new(),
        })
    }
}

impl Phase for ShadowCapture {
    fn name(&self) -> &'static str {
        "shadow capture"
    }

    fn event(&mut self, ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        if ev.is_body() {
            let text = crate::shadow::response_text(self.api, ev.json().unwrap_or(&Value::Null));
            if let Some(tx) = self.tx.take() {
                let _ = tx.send(text);
            }
        } else if self.text.len() < MAX_CAPTURE {
            if let Some(t) = ev
                .json()
                .and_then(|v| crate::shadow::event_text(self.api, v))
            {
                self.text.push_str(t);
            }
        }
        out.push(ev);
    }

    fn end(&mut self, _end: End, _tally: &mut Tally) {
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(std::mem::take(&mut self.text));
        }
    }
}
