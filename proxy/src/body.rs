//! Response bodies the proxy sends to apps.
//!
//! Either a complete body (the proxy's own answers, and buffered JSON
//! responses) or an upstream body forwarded as it arrives. Event streams are
//! re-framed on event boundaries (at most one partial event is held back),
//! usage is read from the events on the way through, and a translator may
//! rewrite the events into the app's API. Bodies are pulled, never pushed:
//! a slow app slows the upstream read instead of growing a buffer, and an
//! app that goes away drops the upstream body, which cancels the upstream
//! request.
//!
//! Once a stream has started, a failure (upstream reset, idle or total
//! timeout) cannot be retried; the stream then ends with a well-formed error
//! event in the app's API so SDKs raise instead of hanging.
//!
//! Each body carries the request's [`Settle`] record, so metrics and the
//! access log are written when the last byte has gone out (or the app left).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::api::sse::{blocks, events, EventSplitter};
use crate::api::usage::StreamUsage;
use crate::api::Family;
use crate::pipeline::budget::OutputText;
use crate::pipeline::settle::Settle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Most text kept from a stream for comparison.
const MAX_CAPTURE: usize = 256 * 1024;

/// Rewrites a stream's events (e.g. Anthropic events into OpenAI chunks).
pub trait EventTransform: Send {
    /// One upstream event in; whole events in the app's API out.
    fn push(&mut self, event: Option<&str>, data: &[u8]) -> Vec<Bytes>;
    /// The upstream ended.
    fn finish(&mut self) -> Vec<Bytes>;
}

/// How an upstream event stream is handled.
pub struct StreamSpec {
    /// The provider's API (how to read usage from its events).
    pub upstream: Family,
    /// The app's API (the shape of a closing error event).
    pub app: Family,
    pub transform: Option<Box<dyn EventTransform>>,
    /// Longest silence between upstream frames.
    pub idle: Duration,
    /// End of the whole request.
    pub deadline: Instant,
    /// Receives the streamed text when the stream ends (shadow comparison).
    pub capture: Option<tokio::sync::oneshot::Sender<String>>,
    /// Remove the OpenAI usage-only chunk (`choices` empty, `usage` set),
    /// which the proxy asked for on the app's behalf.
    pub drop_usage_chunk: bool,
    /// Keep the generated text, for a budget estimate should usage be
    /// missing or the stream be cut.
    pub keep_output: bool,
}

/// A response body.
pub struct ResponseBody {
    inner: Inner,
    settle: Option<Settle>,
    /// Records what the app receives, for the response cache.
    cache: Option<crate::pipeline::cache::Tee>,
}

enum Inner {
    Full(Option<Bytes>),
    Upstream(Box<Upstream>),
}

struct Upstream {
    body: Incoming,
    /// A frame read before the response was committed (the first event).
    first: Option<Bytes>,
    sse: Option<Sse>,
    done: bool,
}

struct Sse {
    spec: StreamSpec,
    split: EventSplitter,
    usage: StreamUsage,
    text: String,
    output: Option<OutputText>,
    idle_timer: Pin<Box<Sleep>>,
    deadline_timer: Pin<Box<Sleep>>,
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> ResponseBody {
        ResponseBody {
            inner: Inner::Full(Some(bytes)),
            settle: None,
            cache: None,
        }
    }

    /// An upstream body forwarded as it arrives; with `sse` it is handled as
    /// an event stream. `first` is a frame already read from `body`.
    pub fn upstream(body: Incoming, first: Option<Bytes>, sse: Option<StreamSpec>) -> ResponseBody {
        let sse = sse.map(|spec| Sse {
            idle_timer: Box::pin(tokio::time::sleep(spec.idle)),
            deadline_timer: Box::pin(tokio::time::sleep_until(spec.deadline)),
            output: spec.keep_output.then(OutputText::default),
            spec,
            split: EventSplitter::default(),
            usage: StreamUsage::default(),
            text: String::new(),
        });
        ResponseBody {
            inner: Inner::Upstream(Box::new(Upstream {
                body,
                first,
                sse,
                done: false,
            })),
            settle: None,
            cache: None,
        }
    }

    /// Attaches the record settled when this body is finished or dropped.
    pub fn with_settle(mut self, settle: Settle) -> ResponseBody {
        self.settle = Some(settle);
        self
    }

    /// Taps the body for the response cache: what the app receives is
    /// offered for storage once the body has ended normally.
    pub fn with_cache(mut self, tee: crate::pipeline::cache::Tee) -> ResponseBody {
        self.cache = Some(tee);
        self
    }

    /// Usage the provider reported in a stream.
    fn stream_usage(&self) -> Option<crate::api::usage::Usage> {
        match &self.inner {
            Inner::Upstream(up) => up.sse.as_ref().and_then(|s| s.usage.get()),
            Inner::Full(_) => None,
        }
    }

    fn cache_complete(&mut self) {
        if let Some(tee) = self.cache.take() {
            let usage = self.stream_usage();
            tee.complete(usage);
        }
    }
}

impl Sse {
    /// Splits, observes and transforms one upstream chunk.
    fn process(&mut self, data: Bytes) -> Option<Bytes> {
        let framed = self.split.push(data)?;
        self.emit(framed)
    }

    fn emit(&mut self, framed: Bytes) -> Option<Bytes> {
        // Offsets of the usage-only chunk the proxy asked for on the app's
        // behalf (decided on the event's parsed JSON, so the upstream's
        // formatting does not matter), to drop below.
        let mut drop: Vec<std::ops::Range<usize>> = Vec::new();
        // Blocks are contiguous: each starts where the last one ended.
        let mut at = 0;
        for (raw, ev) in blocks(&framed) {
            let block = at..at + raw.len();
            at = block.end;
            let Some(ev) = ev else { continue };
            let usage_only = self.usage.observe(self.spec.upstream, ev.name, &ev.data);
            if usage_only && self.spec.drop_usage_chunk {
                drop.push(block);
            }
            if let Some(out) = self.output.as_mut() {
                out.push_event(self.spec.upstream, &ev.data);
            }
            if self.spec.capture.is_some() && self.text.len() < MAX_CAPTURE {
                if let Some(t) = crate::shadow::event_text(self.spec.upstream, &ev.data) {
                    self.text.push_str(&t);
                }
            }
        }
        let framed = if drop.is_empty() {
            framed
        } else {
            let mut out = BytesMut::with_capacity(framed.len());
            let mut from = 0;
            for r in drop {
                out.extend_from_slice(&framed[from..r.start]);
                from = r.end;
            }
            out.extend_from_slice(&framed[from..]);
            if out.is_empty() {
                return None;
            }
            // What remains still goes through the transform (a PII filter
            // must see every content event, in order).
            out.freeze()
        };
        let Some(t) = self.spec.transform.as_mut() else {
            return Some(framed);
        };
        let mut out = BytesMut::new();
        for ev in events(&framed) {
            for b in t.push(ev.name, &ev.data) {
                out.extend_from_slice(&b);
            }
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    fn finish(&mut self) -> Option<Bytes> {
        let mut out = BytesMut::new();
        if let Some(tail) = self.split.finish() {
            if let Some(b) = self.emit(tail) {
                out.extend_from_slice(&b);
            }
        }
        if let Some(t) = self.spec.transform.as_mut() {
            for b in t.finish() {
                out.extend_from_slice(&b);
            }
        }
        (!out.is_empty()).then(|| out.freeze())
    }

    /// The closing event for a stream that cannot continue.
    fn error_event(&self, message: &str) -> Bytes {
        let text = match self.spec.app {
            Family::OpenAi => format!(
                "data: {}\n\n",
                serde_json::json!({"error": {"message": message, "type": "server_error", "param": null, "code": "upstream_stream_error"}})
            ),
            Family::Anthropic => format!(
                "event: error\ndata: {}\n\n",
                serde_json::json!({"type": "error", "error": {"type": "api_error", "message": message}})
            ),
        };
        Bytes::from(text)
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let polled = this.poll_inner(cx);
        if this.cache.is_some() {
            match &polled {
                Poll::Ready(Some(Ok(frame))) => {
                    if let (Some(tee), Some(data)) = (this.cache.as_mut(), frame.data_ref()) {
                        tee.push(data);
                    }
                }
                Poll::Ready(None) => this.cache_complete(),
                // A body that failed is never stored.
                Poll::Ready(Some(Err(_))) => this.cache = None,
                Poll::Pending => {}
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.end_of_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.hint()
    }
}

impl ResponseBody {
    fn poll_inner(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self;
        match &mut this.inner {
            Inner::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream(up) => {
                if up.done {
                    return Poll::Ready(None);
                }
                if let Some(first) = up.first.take() {
                    let out = match up.sse.as_mut() {
                        Some(sse) => sse.process(first),
                        None => Some(first),
                    };
                    if let Some(out) = out {
                        if let Some(s) = this.settle.as_mut() {
                            s.first_chunk();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
                loop {
                    let polled = Pin::new(&mut up.body).poll_frame(cx);
                    let frame = match polled {
                        Poll::Pending => {
                            let Some(sse) = up.sse.as_mut() else {
                                return Poll::Pending;
                            };
                            let why = if sse.deadline_timer.as_mut().poll(cx).is_ready() {
                                "the request exceeded its total time limit"
                            } else if sse.idle_timer.as_mut().poll(cx).is_ready() {
                                "the provider stopped sending events (idle timeout)"
                            } else {
                                return Poll::Pending;
                            };
                            return Poll::Ready(Some(Ok(Frame::data(fail(
                                up,
                                &mut this.settle,
                                why,
                                "timeout",
                            )))));
                        }
                        Poll::Ready(None) => {
                            up.done = true;
                            let tail = up.sse.as_mut().and_then(Sse::finish);
                            if let Some(s) = this.settle.as_mut() {
                                if let Some(sse) = &up.sse {
                                    s.set_usage(sse.usage.get(), sse.usage.is_complete());
                                }
                                s.completed();
                            }
                            return Poll::Ready(tail.map(|t| Ok(Frame::data(t))));
                        }
                        Poll::Ready(Some(Err(e))) => {
                            if up.sse.is_none() {
                                if let Some(s) = this.settle.as_mut() {
                                    s.upstream_failed("upstream_body");
                                }
                                return Poll::Ready(Some(Err(Box::new(e))));
                            }
                            let why = "the provider's stream ended abruptly";
                            return Poll::Ready(Some(Ok(Frame::data(fail(
                                up,
                                &mut this.settle,
                                why,
                                "upstream_reset",
                            )))));
                        }
                        Poll::Ready(Some(Ok(frame))) => frame,
                    };
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        // Trailers pass through untouched.
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let out = match up.sse.as_mut() {
                        None => Some(data),
                        Some(sse) => {
                            let idle = sse.spec.idle;
                            sse.idle_timer.as_mut().reset(Instant::now() + idle);
                            sse.process(data)
                        }
                    };
                    if let Some(out) = out {
                        if let Some(s) = this.settle.as_mut() {
                            s.first_chunk();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(out))));
                    }
                }
            }
        }
    }

    fn end_of_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Upstream(up) => {
                up.done
                    || (up.first.is_none()
                        && up.body.is_end_stream()
                        && up
                            .sse
                            .as_ref()
                            .is_none_or(|s| s.split.held() == 0 && s.spec.transform.is_none()))
            }
        }
    }

    fn hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Upstream(up) if up.sse.is_none() && up.first.is_none() => up.body.size_hint(),
            Inner::Upstream(_) => SizeHint::default(),
        }
    }
}

/// An upstream body read up to a limit.
pub enum Read {
    Whole(Bytes),
    /// The first bytes past the limit; the rest is still in the body.
    Prefix(Bytes),
}

/// Reads `body` to its end, or until more than `limit` bytes have arrived.
/// Trailers are dropped, as when collecting a body.
pub async fn read_up_to<B>(body: &mut B, limit: u64) -> Result<Read, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    use http_body_util::BodyExt;
    let mut buf = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            if buf.len() as u64 > limit {
                return Ok(Read::Prefix(buf.freeze()));
            }
        }
    }
    Ok(Read::Whole(buf.freeze()))
}

/// Ends a committed stream with an error event; records why.
fn fail(up: &mut Upstream, settle: &mut Option<Settle>, why: &str, reason: &'static str) -> Bytes {
    up.done = true;
    let sse = up
        .sse
        .as_mut()
        .expect("only event streams end with an error event");
    // Forward whatever whole events were already received, then the error.
    let mut out = BytesMut::new();
    if let Some(tail) = sse.split.finish() {
        // A partial event cannot be completed; drop it rather than send garbage.
        drop(tail);
    }
    out.extend_from_slice(&sse.error_event(why));
    if let Some(s) = settle.as_mut() {
        s.set_usage(sse.usage.get(), sse.usage.is_complete());
        s.upstream_failed(reason);
    }
    tracing::warn!(
        reason,
        "stream ended with an error event after it had started"
    );
    out.freeze()
}

impl Drop for Sse {
    fn drop(&mut self) {
        if let Some(tx) = self.spec.capture.take() {
            let _ = tx.send(std::mem::take(&mut self.text));
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper stops polling once `is_end_stream` is true, so a body that
        // was fully sent may never see its final `None`.
        let ended = self.end_of_stream();
        if ended {
            self.cache_complete();
        }
        let Some(s) = self.settle.as_mut() else {
            return;
        };
        if ended {
            s.completed();
        }
        if let Inner::Upstream(up) = &mut self.inner {
            if let Some(sse) = up.sse.as_mut() {
                // An app that left mid-stream: the usage seen so far (its
                // input count), for the budget estimate.
                s.set_usage(sse.usage.get(), sse.usage.is_complete());
                if let Some(text) = sse.output.take() {
                    s.set_output_text(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(
        parts: &[&'static str],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        http_body_util::StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn reads_whole_bodies_of_unknown_length_up_to_a_limit() {
        let mut small = chunked(&["{\"usage\":", "{}}"]);
        let Ok(Read::Whole(b)) = read_up_to(&mut small, 100).await else {
            panic!("whole")
        };
        assert_eq!(b, "{\"usage\":{}}");
        let mut big = chunked(&["aaaa", "bbbb", "cccc"]);
        let Ok(Read::Prefix(p)) = read_up_to(&mut big, 5).await else {
            panic!("prefix")
        };
        assert_eq!(p, "aaaabbbb");
        let rest = http_body_util::BodyExt::collect(big)
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(rest, "cccc", "the rest stays in the body");
    }
}
