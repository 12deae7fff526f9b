//! One server-sent event, or one whole JSON body, as a provider sent it,
//! with its JSON parsed at most once.
//!
//! Every phase of the response pipeline reads the same [`Event`]: the first
//! one to ask for the JSON parses it and the others share that parse. An
//! event no phase changed goes out as the bytes it came in (a slice of the
//! upstream's own buffer); one a phase edited, or built, is serialised once,
//! when its bytes are first asked for.

use std::cell::OnceCell;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// What an event is part of, which decides how it is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// An SSE event: `event:` and `data:` lines, then a blank line.
    Sse,
    /// An SSE block without an event (comments only): passed on as it is.
    Comment,
    /// A whole response body: the JSON alone.
    Body,
}

/// An SSE event or a whole body, parsed on first use.
#[derive(Debug)]
pub struct Event {
    shape: Shape,
    /// The `event:` name, checked to be UTF-8 when the event was made.
    name: Option<Bytes>,
    /// The `data:` lines joined by `\n`, or the whole body, as received;
    /// empty for a built event.
    data: Bytes,
    /// The JSON of `data` once a phase asked (`None` inside: not JSON), or
    /// the value a phase built.
    json: OnceCell<Option<Value>>,
    /// `json` no longer says what `data` says: a phase edited or built it.
    edited: bool,
    /// OpenAI's usage-only chunk (noted by the usage phase).
    usage_only: bool,
    /// The bytes the event goes out as, while they are known: as received,
    /// or as serialised since the last edit.
    bytes: Option<Bytes>,
}

impl Event {
    /// An SSE block as received: `raw` is the whole block (its blank line
    /// included), `name` and `data` slices of it (or `data` the joined
    /// lines). A block without an event has neither.
    pub(crate) fn received(raw: Bytes, name: Option<Bytes>, data: Option<Bytes>) -> Event {
        let shape = if name.is_none() && data.is_none() {
            Shape::Comment
        } else {
            Shape::Sse
        };
        Event {
            shape,
            name: name.filter(|n| std::str::from_utf8(n).is_ok()),
            data: data.unwrap_or_default(),
            json: OnceCell::new(),
            edited: false,
            usage_only: false,
            bytes: Some(raw),
        }
    }

    /// An SSE event from its name and data (framed when first written).
    pub fn new(name: Option<&str>, data: impl Into<Bytes>) -> Event {
        Event {
            shape: Shape::Sse,
            name: name.map(|n| Bytes::copy_from_slice(n.as_bytes())),
            data: data.into(),
            json: OnceCell::new(),
            edited: false,
            usage_only: false,
            bytes: None,
        }
    }

    /// An SSE event a phase built.
    pub fn built(name: Option<&'static str>, v: Value) -> Event {
        Event {
            shape: Shape::Sse,
            name: name.map(|n| Bytes::from_static(n.as_bytes())),
            data: Bytes::new(),
            json: OnceCell::from(Some(v)),
            edited: true,
            usage_only: false,
            bytes: None,
        }
    }

    /// OpenAI's end of stream, `data: [DONE]`.
    pub fn done() -> Event {
        Event {
            shape: Shape::Sse,
            name: None,
            data: Bytes::from_static(b"[DONE]"),
            json: OnceCell::from(None),
            edited: false,
            usage_only: false,
            bytes: Some(Bytes::from_static(b"data: [DONE]\n\n")),
        }
    }

    /// A whole response body as received.
    pub fn body(bytes: Bytes) -> Event {
        Event {
            shape: Shape::Body,
            name: None,
            data: bytes.clone(),
            json: OnceCell::new(),
            edited: false,
            usage_only: false,
            bytes: Some(bytes),
        }
    }

    /// A whole response body a phase built.
    pub fn built_body(v: Value) -> Event {
        Event {
            shape: Shape::Body,
            name: None,
            data: Bytes::new(),
            json: OnceCell::from(Some(v)),
            edited: true,
            usage_only: false,
            bytes: None,
        }
    }

    /// The `event:` name.
    pub fn name(&self) -> Option<&str> {
        self.name
            .as_deref()
            .and_then(|n| std::str::from_utf8(n).ok())
    }

    /// The data as received (empty for a built event).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// True for a whole body, false for an SSE event.
    pub fn is_body(&self) -> bool {
        self.shape == Shape::Body
    }

    /// True for a block that holds no event (comment lines only).
    pub fn is_comment(&self) -> bool {
        self.shape == Shape::Comment
    }

    /// True for OpenAI's `[DONE]`, which is not JSON.
    pub fn is_done(&self) -> bool {
        !self.edited && self.data.trim_ascii() == b"[DONE]"
    }

    /// Reads the data as `T` without keeping a parse: from the JSON when
    /// a phase parsed it already, otherwise straight from the bytes (no
    /// `Value` tree), for a phase that is the only reader of the JSON.
    pub(crate) fn read<T: DeserializeOwned>(&self) -> Option<T> {
        if let Some(parsed) = self.json.get() {
            return parsed.as_ref().and_then(|v| T::deserialize(v).ok());
        }
        if self.shape == Shape::Comment || self.data.is_empty() || self.is_done() {
            return None;
        }
        count_parse();
        serde_json::from_slice(&self.data).ok()
    }

    /// Marks OpenAI's usage-only chunk (the usage phase recognises it).
    pub(crate) fn note_usage_only(&mut self) {
        self.usage_only = true;
    }

    /// True for a chunk the usage phase marked as usage-only.
    pub(crate) fn is_usage_only(&self) -> bool {
        self.usage_only
    }

    /// The JSON, parsed on the first call; `None` when it is not JSON.
    pub fn json(&self) -> Option<&Value> {
        self.json
            .get_or_init(|| {
                if self.shape == Shape::Comment || self.data.is_empty() || self.is_done() {
                    return None;
                }
                count_parse();
                count_tree();
                serde_json::from_slice(&self.data).ok()
            })
            .as_ref()
    }

    /// Runs `edit` on the JSON with the event's name; when it returns true
    /// (it changed the value) the event is serialised again on output.
    /// Returns what `edit` returned; false when the data is not JSON.
    pub fn edit(&mut self, edit: impl FnOnce(Option<&str>, &mut Value) -> bool) -> bool {
        self.json();
        let name = self
            .name
            .as_deref()
            .and_then(|n| std::str::from_utf8(n).ok());
        let Some(Some(v)) = self.json.get_mut() else {
            return false;
        };
        let changed = edit(name, v);
        if changed {
            self.edited = true;
            self.bytes = None;
        }
        changed
    }

    /// The bytes this event goes out as: those received when no phase
    /// changed it, otherwise serialised (once, then kept).
    pub fn to_bytes(&mut self) -> Bytes {
        if let Some(b) = &self.bytes {
            return b.clone();
        }
        let json = self
            .json
            .get()
            .and_then(Option::as_ref)
            .filter(|_| self.edited);
        // A comment block always has its bytes: it is never built or edited.
        let bytes = match (self.shape, json) {
            (Shape::Body, Some(v)) => {
                Bytes::from(serde_json::to_vec(v).expect("a JSON value serializes"))
            }
            (Shape::Body | Shape::Comment, None) => self.data.clone(),
            (_, json) => self.framed(json),
        };
        self.bytes = Some(bytes.clone());
        bytes
    }

    /// The SSE lines of this event: its name, then its JSON (`json`, when a
    /// phase edited or built it) or its data as received.
    fn framed(&self, json: Option<&Value>) -> Bytes {
        let mut out = Vec::with_capacity(self.data.len() + 32);
        if let Some(n) = &self.name {
            out.extend_from_slice(b"event: ");
            out.extend_from_slice(n);
            out.push(b'\n');
        }
        match json {
            Some(v) => {
                out.extend_from_slice(b"data: ");
                serde_json::to_writer(&mut out, v).expect("a JSON value serializes");
                out.push(b'\n');
            }
            None => {
                for line in self.data.split(|&c| c == b'\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line);
                    out.push(b'\n');
                }
            }
        }
        out.push(b'\n');
        Bytes::from(out)
    }

    /// The bytes it came in as, when no phase changed it.
    pub(crate) fn received_bytes(&self) -> Option<&Bytes> {
        self.bytes.as_ref().filter(|_| !self.edited)
    }
}

#[cfg(test)]
thread_local! {
    /// JSON parses of events on this thread (tests count them).
    static PARSES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Of those, the ones that built a whole tree ([`Event::json`]).
    static TREES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

fn count_parse() {
    #[cfg(test)]
    PARSES.with(|p| p.set(p.get() + 1));
}

fn count_tree() {
    #[cfg(test)]
    TREES.with(|p| p.set(p.get() + 1));
}

/// How many event JSON parses this thread has done so far that built a
/// whole tree.
#[cfg(test)]
pub(crate) fn trees() -> usize {
    TREES.with(std::cell::Cell::get)
}

/// How many event JSON parses this thread has done so far.
#[cfg(test)]
pub(crate) fn parses() -> usize {
    PARSES.with(std::cell::Cell::get)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_once_and_keeps_its_bytes_until_edited() {
        let raw = Bytes::from_static(b"event: e\ndata: {\"a\": 1}\n\n");
        let mut ev = Event::received(raw.clone(), Some(raw.slice(7..8)), Some(raw.slice(15..23)));
        let before = parses();
        assert_eq!(ev.name(), Some("e"));
        assert_eq!(ev.json(), Some(&json!({"a": 1})));
        assert_eq!(ev.json(), Some(&json!({"a": 1})));
        assert_eq!(parses() - before, 1, "one parse for two reads");
        assert_eq!(
            ev.to_bytes().as_ptr(),
            raw.as_ptr(),
            "the buffer it came in"
        );
        assert!(!ev.edit(|_, _| false), "a read-only edit");
        assert_eq!(ev.to_bytes().as_ptr(), raw.as_ptr());
        assert!(ev.edit(|name, v| {
            v["a"] = json!(name.unwrap_or("").len());
            true
        }));
        assert_eq!(ev.to_bytes(), "event: e\ndata: {\"a\":1}\n\n");
        assert_eq!(parses() - before, 1);
    }

    #[test]
    fn built_and_sentinel_events_are_not_parsed() {
        let before = parses();
        let mut done = Event::done();
        assert!(done.is_done());
        assert_eq!(done.json(), None);
        assert_eq!(done.to_bytes(), "data: [DONE]\n\n");
        let mut b = Event::built(Some("ping"), json!({"type": "ping"}));
        assert_eq!(b.json(), Some(&json!({"type": "ping"})));
        assert_eq!(b.to_bytes(), "event: ping\ndata: {\"type\":\"ping\"}\n\n");
        let mut c = Event::received(Bytes::from_static(b": hi\n\n"), None, None);
        assert!(c.is_comment());
        assert_eq!(c.json(), None);
        assert_eq!(c.to_bytes(), ": hi\n\n");
        assert_eq!(parses(), before);
        let mut n = Event::new(None, Bytes::from_static(b"not\njson"));
        assert_eq!(n.json(), None);
        assert_eq!(n.to_bytes(), "data: not\ndata: json\n\n");
        assert_eq!(parses() - before, 1);
    }

    #[test]
    fn bodies_are_written_as_json_alone() {
        let raw = Bytes::from_static(b"{ \"x\" : [1] }");
        let mut body = Event::body(raw.clone());
        assert!(body.is_body());
        assert_eq!(body.to_bytes().as_ptr(), raw.as_ptr());
        body.edit(|_, v| {
            v["x"] = json!(2);
            true
        });
        assert_eq!(body.to_bytes(), "{\"x\":2}");
        assert_eq!(Event::built_body(json!([])).to_bytes(), "[]");
    }
}
