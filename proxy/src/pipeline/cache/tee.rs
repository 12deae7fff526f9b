//! The cache's tap on a response: what the app receives is recorded, up to
//! the entry limit, and stored once the response has ended well.
//!
//! A stream is assembled into the whole response as its events go by (from
//! the JSON they already carry); a whole answer is kept with the usage its
//! JSON reports; a body forwarded without events is kept as bytes. Only a 200
//! reaches here, and only an answer of the shape the request asked for
//! (a stream for `stream: true`) is stored.

use bytes::{Bytes, BytesMut};
use serde_json::Value;

use super::Pending;
use crate::api::usage::Usage;
use crate::api::{Event, Family};
use crate::cache::assemble::Assembler;
use crate::cache::{now_ms, Entry};
use crate::pipeline::respond::Checked;

/// What the response is, as far as the tee goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// A whole JSON answer.
    Whole,
    /// An event stream.
    Stream,
    /// A body forwarded without events.
    Raw,
}

/// Records the response the app receives.
pub(crate) struct Tee {
    pending: Pending,
    /// The answering `provider/model`.
    target: String,
    /// Events are recorded, or (for `Raw`) the bytes sent.
    shape: Shape,
    limit: usize,
    size: usize,
    kept: Kept,
}

enum Kept {
    /// The answer and its usage, once it has come and is JSON.
    Whole(Option<(Bytes, Option<Usage>)>),
    Stream(Box<Assembler>),
    Raw(BytesMut),
    /// Too large, or not the shape the request asked for: never stored.
    Nothing(&'static str),
}

impl Pending {
    /// The tap for a 200 answer of `shape` from `target` (`provider/model`).
    pub(crate) fn tee(self, target: String, shape: Shape) -> Tee {
        let kept = match (self.stream, shape) {
            (true, Shape::Stream) => Kept::Stream(Box::new(Assembler::new(self.family))),
            (false, Shape::Whole) => Kept::Whole(None),
            (false, Shape::Raw) => Kept::Raw(BytesMut::new()),
            _ => Kept::Nothing("incomplete"),
        };
        Tee {
            limit: self.cache.config().max_entry_bytes as usize,
            size: 0,
            kept,
            target,
            shape,
            pending: self,
        }
    }

    /// The answer was not a 200: nothing is stored.
    pub(crate) fn discard(self) {
        self.cache.not_stored("error");
    }
}

impl Tee {
    /// One event (or the whole answer) as the app receives it; `checked`
    /// is what the usage phase found reading a whole answer without a
    /// tree, if it did.
    pub(crate) fn event(&mut self, ev: &mut Event, checked: Option<Checked>) {
        if self.shape == Shape::Raw || self.over(ev.to_bytes().len()) {
            return;
        }
        match &mut self.kept {
            Kept::Stream(a) => a.push(ev),
            Kept::Whole(w) => {
                let family = self.pending.family;
                // The check holds for the bytes as received, in this API.
                let checked =
                    checked.filter(|c| c.family == family && ev.received_bytes().is_some());
                *w = match checked {
                    Some(c) => c.json.then(|| (ev.to_bytes(), c.usage)),
                    None => ev
                        .json()
                        .map(|v| Usage::of_response(family, v))
                        .map(|usage| (ev.to_bytes(), usage)),
                };
            }
            Kept::Raw(_) | Kept::Nothing(_) => {}
        }
    }

    /// Bytes sent of a body forwarded without events.
    pub(crate) fn raw(&mut self, data: &Bytes) {
        if self.shape != Shape::Raw || self.over(data.len()) {
            return;
        }
        if let Kept::Raw(buf) = &mut self.kept {
            buf.extend_from_slice(data);
        }
    }

    /// Counts `n` more bytes; true once past the limit.
    fn over(&mut self, n: usize) -> bool {
        if matches!(self.kept, Kept::Nothing("too_large")) {
            return true;
        }
        self.size += n;
        if self.size > self.limit {
            self.kept = Kept::Nothing("too_large");
            return true;
        }
        false
    }

    /// The stream failed after it started: nothing is stored.
    pub(crate) fn failed(self) {
        let reason = match self.kept {
            Kept::Nothing(r) => r,
            _ => "incomplete",
        };
        self.pending.cache.not_stored(reason);
    }

    /// The body ended normally. `usage` is what the provider reported on a
    /// stream (the app may not have received it).
    pub(crate) fn complete(self, usage: Option<Usage>) {
        let p = self.pending;
        let (body, stored_usage) = match self.kept {
            Kept::Nothing(reason) => return p.cache.not_stored(reason),
            Kept::Stream(a) => {
                let Some(mut whole) = a.finish() else {
                    return p.cache.not_stored("incomplete");
                };
                if p.family == Family::OpenAi && whole.get("usage").is_none() {
                    if let Some(u) = usage {
                        whole["usage"] = serde_json::json!({
                            "prompt_tokens": u.input,
                            "completion_tokens": u.output,
                            "total_tokens": u.input + u.output,
                        });
                    }
                }
                let stored = Usage::of_response(p.family, &whole).or(usage);
                let body = serde_json::to_vec(&whole).expect("a Value serializes");
                (Bytes::from(body), stored)
            }
            Kept::Whole(Some(kept)) => kept,
            Kept::Whole(None) => return p.cache.not_stored("incomplete"),
            Kept::Raw(buf) => {
                let bytes = buf.freeze();
                let Ok(v) = serde_json::from_slice::<Value>(&bytes) else {
                    return p.cache.not_stored("incomplete");
                };
                let stored = Usage::of_response(p.family, &v);
                (bytes, stored)
            }
        };
        let entry = Entry {
            body,
            usage: stored_usage.unwrap_or_default(),
            target: self.target,
            stored_at_ms: now_ms(),
        };
        p.cache
            .put(p.key, entry, p.ttl, p.semantic.map(|probe| *probe));
    }
}
