//! Response bodies the proxy sends to apps.
//!
//! Either a complete body (the proxy's own answers, and buffered JSON
//! responses) or an upstream body forwarded as it arrives. Event streams are
//! re-framed on event boundaries (at most one partial event is held back)
//! and each event goes through a [`Filter`]: the response pipeline, which
//! this module knows only through that trait. Bodies are pulled, never
//! pushed: a slow app slows the upstream read instead of growing a buffer,
//! and an app that goes away drops the upstream body, which cancels the
//! upstream request.
//!
//! Once a stream has started, a failure (upstream reset, idle or total
//! timeout) cannot be retried; the stream then ends with a well-formed error
//! event in the app's API (the filter writes it) so SDKs raise instead of
//! hanging.
//!
//! The filter hears exactly once how the response ended ([`End`]): when the
//! upstream finished or failed, or, if neither, when the body is dropped
//! (sent whole, or the app went away).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::BodyExt;
use tokio::time::{Instant, Sleep};

use crate::api::sse::{self, EventSplitter};
use crate::api::Event;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// An upstream body, boxed: hyper's, or any body in tests.
pub(crate) type UpstreamBody = UnsyncBoxBody<Bytes, BoxError>;

/// Boxes a body as an [`UpstreamBody`].
pub(crate) fn upstream_body<B>(body: B) -> UpstreamBody
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed_unsync()
}

/// What happens to a response on its way to the app (the response
/// pipeline, as a body drives it).
pub trait Filter: Send {
    /// One upstream event; what goes to the app now is pushed to `out`.
    fn event(&mut self, ev: Event, out: &mut Vec<Event>);
    /// The upstream stream ended: what is still held goes to `out`.
    fn finish(&mut self, out: &mut Vec<Event>);
    /// A frame of the upstream's body is going out to the app.
    fn sent(&mut self, data: &Bytes);
    /// The response ended; called once.
    fn end(&mut self, end: End);
    /// The closing event, in the app's API, of a stream that cannot go on.
    fn error_event(&self, message: &str) -> Bytes;
}

/// How a response ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Everything was sent (or is on its way: the upstream has finished).
    Completed,
    /// The upstream failed after the response had started; `closed` when a
    /// stream was ended with an error event.
    Failed { reason: &'static str, closed: bool },
    /// The app went away first.
    Gone,
}

/// Time limits of an event stream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest silence between upstream frames.
    pub idle: Duration,
    /// End of the whole request.
    pub deadline: Instant,
}

/// A response body.
pub struct ResponseBody {
    inner: Inner,
    filter: Option<Box<dyn Filter>>,
    /// The filter has heard how the response ended.
    ended: bool,
}

enum Inner {
    Full(Option<Bytes>),
    Upstream(Box<Upstream>),
}

struct Upstream {
    body: UpstreamBody,
    /// A frame read before the response was committed (the first event).
    first: Option<Bytes>,
    sse: Option<Sse>,
    done: bool,
}

struct Sse {
    split: EventSplitter,
    /// The filter's output for one frame (kept to reuse its allocation).
    out: Vec<Event>,
    idle: Duration,
    idle_timer: Pin<Box<Sleep>>,
    deadline_timer: Pin<Box<Sleep>>,
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> ResponseBody {
        ResponseBody {
            inner: Inner::Full(Some(bytes)),
            filter: None,
            ended: false,
        }
    }

    /// An upstream body forwarded as it arrives, frame by frame. `first` is
    /// a frame already read from `body`.
    pub fn raw(body: UpstreamBody, first: Option<Bytes>, filter: Box<dyn Filter>) -> ResponseBody {
        ResponseBody::upstream(body, first, None, filter)
    }

    /// An upstream event stream, each event through `filter`.
    pub fn stream(
        body: UpstreamBody,
        first: Option<Bytes>,
        limits: Limits,
        filter: Box<dyn Filter>,
    ) -> ResponseBody {
        let sse = Sse {
            split: EventSplitter::default(),
            out: Vec::new(),
            idle: limits.idle,
            idle_timer: Box::pin(tokio::time::sleep(limits.idle)),
            deadline_timer: Box::pin(tokio::time::sleep_until(limits.deadline)),
        };
        ResponseBody::upstream(body, first, Some(sse), filter)
    }

    fn upstream(
        body: UpstreamBody,
        first: Option<Bytes>,
        sse: Option<Sse>,
        filter: Box<dyn Filter>,
    ) -> ResponseBody {
        ResponseBody {
            inner: Inner::Upstream(Box::new(Upstream {
                body,
                first,
                sse,
                done: false,
            })),
            filter: Some(filter),
            ended: false,
        }
    }

    /// Attaches the filter that hears how a complete body ended.
    pub fn with_filter(mut self, filter: Box<dyn Filter>) -> ResponseBody {
        self.filter = Some(filter);
        self
    }
}

/// Tells `filter` how the response ended, unless it has heard already.
fn end_once(ended: &mut bool, filter: &mut dyn Filter, end: End) {
    if !*ended {
        *ended = true;
        filter.end(end);
    }
}

impl Sse {
    /// Splits one upstream chunk; its whole events through the filter.
    fn process(&mut self, data: Bytes, filter: &mut dyn Filter) -> Option<Bytes> {
        let frame = self.split.push(data)?;
        self.emit(frame, filter)
    }

    fn emit(&mut self, frame: Bytes, filter: &mut dyn Filter) -> Option<Bytes> {
        for ev in sse::split(&frame) {
            filter.event(ev, &mut self.out);
        }
        sse::join(&frame, &mut self.out)
    }

    /// The upstream ended: the unterminated tail, and what the filter holds.
    fn finish(&mut self, filter: &mut dyn Filter) -> Option<Bytes> {
        let mut out = BytesMut::new();
        if let Some(tail) = self.split.finish() {
            if let Some(b) = self.emit(tail, filter) {
                out.extend_from_slice(&b);
            }
        }
        filter.finish(&mut self.out);
        for mut ev in self.out.drain(..) {
            out.extend_from_slice(&ev.to_bytes());
        }
        (!out.is_empty()).then(|| out.freeze())
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
        let up = match &mut this.inner {
            Inner::Full(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Inner::Upstream(up) => up,
        };
        let filter = this.filter.as_mut().expect("an upstream body has a filter");
        if up.done {
            return Poll::Ready(None);
        }
        if let Some(first) = up.first.take() {
            let out = match up.sse.as_mut() {
                Some(sse) => sse.process(first, &mut **filter),
                None => Some(first),
            };
            if let Some(out) = out {
                filter.sent(&out);
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
        loop {
            let frame = match Pin::new(&mut up.body).poll_frame(cx) {
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
                    let closing = fail(up, &mut **filter, &mut this.ended, why, "timeout");
                    return Poll::Ready(Some(Ok(Frame::data(closing))));
                }
                Poll::Ready(None) => {
                    up.done = true;
                    let tail = up.sse.as_mut().and_then(|s| s.finish(&mut **filter));
                    end_once(&mut this.ended, &mut **filter, End::Completed);
                    return Poll::Ready(tail.map(|t| Ok(Frame::data(t))));
                }
                Poll::Ready(Some(Err(e))) => {
                    if up.sse.is_none() {
                        let failed = End::Failed {
                            reason: "upstream_body",
                            closed: false,
                        };
                        end_once(&mut this.ended, &mut **filter, failed);
                        return Poll::Ready(Some(Err(e)));
                    }
                    let why = "the provider's stream ended abruptly";
                    let closing = fail(up, &mut **filter, &mut this.ended, why, "upstream_reset");
                    return Poll::Ready(Some(Ok(Frame::data(closing))));
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
                    sse.idle_timer.as_mut().reset(Instant::now() + sse.idle);
                    sse.process(data, &mut **filter)
                }
            };
            if let Some(out) = out {
                filter.sent(&out);
                return Poll::Ready(Some(Ok(Frame::data(out))));
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_of_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Upstream(up) if up.sse.is_none() && up.first.is_none() => up.body.size_hint(),
            Inner::Upstream(_) => SizeHint::default(),
        }
    }
}

impl ResponseBody {
    /// True once nothing more will come. A stream is only over when its
    /// upstream said so: the filter may still hold events until then.
    fn end_of_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Upstream(up) => {
                up.done || (up.sse.is_none() && up.first.is_none() && up.body.is_end_stream())
            }
        }
    }
}

/// Ends a committed stream with an error event; the filter hears why.
fn fail(
    up: &mut Upstream,
    filter: &mut dyn Filter,
    ended: &mut bool,
    why: &str,
    reason: &'static str,
) -> Bytes {
    up.done = true;
    if let Some(sse) = up.sse.as_mut() {
        // A partial event cannot be completed; drop it rather than send garbage.
        drop(sse.split.finish());
    }
    tracing::warn!(
        reason,
        "stream ended with an error event after it had started"
    );
    let closing = filter.error_event(why);
    let failed = End::Failed {
        reason,
        closed: true,
    };
    end_once(ended, filter, failed);
    closing
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper stops polling once `is_end_stream` is true, so a body that
        // was fully sent may never see its final `None`.
        let end = if self.end_of_stream() {
            End::Completed
        } else {
            End::Gone
        };
        if let Some(f) = self.filter.as_mut() {
            end_once(&mut self.ended, &mut **f, end);
        }
    }
}

/// An upstream body read up to a limit.
pub(crate) enum Read {
    Whole(Bytes),
    /// The first bytes past the limit; the rest is still in the body.
    Prefix(Bytes),
}

/// Reads `body` to its end, or until more than `limit` bytes have arrived.
/// Trailers are dropped, as when collecting a body.
pub(crate) async fn read_up_to<B>(body: &mut B, limit: u64) -> Result<Read, B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
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

#[cfg(test)]
mod tests;
