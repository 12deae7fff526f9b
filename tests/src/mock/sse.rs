//! Server-sent events: framing, and the stream body that paces them.
//!
//! An API module describes *what* its stream says as an [`EventSource`];
//! [`SseStream`] decides *when*: the time to first token, the interval
//! between events, the injected broken event and the deliberate reset. It
//! produces the next event only when hyper polls for it, so a slow reader
//! slows the generator down instead of growing a buffer.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::time::{Instant, Sleep};

use super::body::BodyError;
use super::state::Stats;
use super::switches::JsonStyle;

/// The OpenAI end-of-stream sentinel.
pub(crate) const DONE: &[u8] = b"data: [DONE]\n\n";

/// Appends `data: <json>\n\n`.
pub(crate) fn data_event(buf: &mut Vec<u8>, payload: &impl Serialize) {
    buf.extend_from_slice(b"data: ");
    write_json(buf, payload);
    buf.extend_from_slice(b"\n\n");
}

/// Appends `event: <name>\ndata: <json>\n\n`.
pub(crate) fn named_event(buf: &mut Vec<u8>, name: &str, payload: &impl Serialize) {
    buf.extend_from_slice(b"event: ");
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b"\ndata: ");
    write_json(buf, payload);
    buf.extend_from_slice(b"\n\n");
}

/// An event with each `data:` line's JSON rewritten [`JsonStyle::Spaced`];
/// other lines (and `[DONE]`) as they are.
fn restyle_event(event: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(event.len() + event.len() / 8);
    for line in event.split_inclusive(|&b| b == b'\n') {
        let json = line
            .strip_prefix(b"data: ")
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(d.trim_ascii_end()).ok());
        match json {
            Some(v) => {
                out.extend_from_slice(b"data: ");
                out.extend_from_slice(&spaced(&v));
                out.push(b'\n');
            }
            None => out.extend_from_slice(line),
        }
    }
    out
}

/// `v` as Python's `json.dumps` writes it by default: `", "` and `": "`
/// separators, fields sorted by name (serde_json's map order).
pub(crate) fn spaced(v: &serde_json::Value) -> Vec<u8> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, Spaced);
    v.serialize(&mut ser).expect("a Value serializes");
    out
}

/// serde_json formatter with Python's default separators.
struct Spaced;

/// `", "` before every element but the first.
fn comma<W: ?Sized + std::io::Write>(w: &mut W, first: bool) -> std::io::Result<()> {
    if first {
        Ok(())
    } else {
        w.write_all(b", ")
    }
}

impl serde_json::ser::Formatter for Spaced {
    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        comma(w, first)
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        comma(w, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn write_json(buf: &mut Vec<u8>, payload: &impl Serialize) {
    // Our payload types are plain structs; serializing them into a Vec cannot fail.
    serde_json::to_writer(&mut *buf, payload).expect("serializing an SSE payload");
}

/// The events of one streamed response, in order.
pub(crate) trait EventSource: Send + 'static {
    /// Writes the next complete event into the empty `buf`; false once the stream is over.
    fn next_event(&mut self, buf: &mut Vec<u8>) -> bool;
    /// How many events the stream has in all.
    fn len(&self) -> usize;
    /// One syntactically broken event in this API's framing.
    fn malformed(&self) -> &'static [u8];
}

/// How a stream is paced and damaged.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pacing {
    pub ttft: Duration,
    pub interval: Duration,
    pub reset_after: Option<u32>,
    pub malformed: bool,
    /// How each event's JSON is written.
    pub style: JsonStyle,
}

pub(crate) struct SseStream {
    source: Box<dyn EventSource>,
    pacing: Pacing,
    /// Index (among sent events) where the broken event goes.
    malformed_at: Option<u32>,
    sleep: Option<Pin<Box<Sleep>>>,
    sleeping: bool,
    /// Generated, waiting for its delay to pass.
    pending: Option<Bytes>,
    sent: u32,
    reset_yielded: bool,
    done: bool,
    guard: StreamGuard,
}

// === impl SseStream ===

impl SseStream {
    pub(super) fn new(source: Box<dyn EventSource>, pacing: Pacing, stats: &Arc<Stats>) -> Self {
        let malformed_at = pacing
            .malformed
            .then(|| u32::try_from(source.len() / 2).unwrap_or(u32::MAX).max(1));
        SseStream {
            source,
            pacing,
            malformed_at,
            sleep: None,
            sleeping: false,
            pending: None,
            sent: 0,
            reset_yielded: false,
            done: false,
            guard: StreamGuard::new(stats),
        }
    }

    pub(super) fn is_done(&self) -> bool {
        self.done
    }

    pub(super) fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, BodyError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.pending.is_none() {
            if self.pacing.reset_after == Some(self.sent) {
                // Yield once first so hyper flushes the events already
                // written; the client then sees exactly `sent` of them.
                if !std::mem::replace(&mut self.reset_yielded, true) {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                self.done = true;
                self.guard.finish(Outcome::Aborted);
                return Poll::Ready(Some(Err(BodyError::Reset)));
            }
            let Some(event) = self.generate() else {
                self.done = true;
                self.guard.finish(Outcome::Completed);
                return Poll::Ready(None);
            };
            self.pending = Some(event);
            let delay = if self.sent == 0 {
                self.pacing.ttft
            } else {
                self.pacing.interval
            };
            self.arm(delay);
        }
        if self.sleeping {
            if let Some(sleep) = self.sleep.as_mut() {
                ready!(sleep.as_mut().poll(cx));
            }
            self.sleeping = false;
        }
        self.sent += 1;
        Poll::Ready(self.pending.take().map(Ok))
    }

    fn generate(&mut self) -> Option<Bytes> {
        if self.malformed_at == Some(self.sent) {
            self.malformed_at = None;
            return Some(Bytes::from_static(self.source.malformed()));
        }
        let mut buf = Vec::with_capacity(256);
        if !self.source.next_event(&mut buf) {
            return None;
        }
        if self.pacing.style == JsonStyle::Spaced {
            buf = restyle_event(&buf);
        }
        Some(Bytes::from(buf))
    }

    fn arm(&mut self, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let deadline = Instant::now() + delay;
        match self.sleep.as_mut() {
            Some(sleep) => sleep.as_mut().reset(deadline),
            None => self.sleep = Some(Box::pin(tokio::time::sleep_until(deadline))),
        }
        self.sleeping = true;
    }
}

/// Counts a stream as active from creation until it ends; dropped before
/// the end means the client went away.
struct StreamGuard {
    stats: Arc<Stats>,
    open: bool,
}

impl StreamGuard {
    fn new(stats: &Arc<Stats>) -> Self {
        stats.active.fetch_add(1, Ordering::SeqCst);
        stats.changed.notify_waiters();
        StreamGuard {
            stats: stats.clone(),
            open: true,
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if std::mem::take(&mut self.open) {
            let counter = match outcome {
                Outcome::Completed => &self.stats.completed,
                Outcome::Aborted => &self.stats.aborted,
                Outcome::Cancelled => &self.stats.cancelled,
            };
            counter.fetch_add(1, Ordering::SeqCst);
            self.stats.active.fetch_sub(1, Ordering::SeqCst);
            self.stats.changed.notify_waiters();
        }
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.finish(Outcome::Cancelled);
    }
}

enum Outcome {
    Completed,
    /// Ended by `x-mock-reset-after-chunks`.
    Aborted,
    /// The client went away first.
    Cancelled,
}

#[cfg(test)]
mod tests;
