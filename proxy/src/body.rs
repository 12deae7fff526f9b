//! Response bodies the proxy sends to apps.
//!
//! Either a complete body (the proxy's own answers, and buffered JSON
//! responses) or an upstream body forwarded as it arrives. Event streams are
//! re-framed on event boundaries (at most one partial event is held back),
//! and usage is read from the events on the way through. Bodies are pulled,
//! never pushed: a slow app slows the upstream read instead of growing a
//! buffer, and an app that goes away drops the upstream body, which cancels
//! the upstream request.
//!
//! Each body carries the request's [`Settle`] record, so metrics and the
//! access log are written when the last byte has gone out (or the app left).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use crate::api::sse::{events, EventSplitter};
use crate::api::usage::StreamUsage;
use crate::api::Family;
use crate::pipeline::settle::Settle;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A response body.
pub struct ResponseBody {
    inner: Inner,
    settle: Option<Settle>,
}

enum Inner {
    Full(Option<Bytes>),
    Upstream(Box<Upstream>),
}

struct Upstream {
    body: Incoming,
    /// Present for `text/event-stream` responses.
    sse: Option<(EventSplitter, StreamUsage, Family)>,
}

impl ResponseBody {
    /// A complete body.
    pub fn full(bytes: Bytes) -> ResponseBody {
        ResponseBody {
            inner: Inner::Full(Some(bytes)),
            settle: None,
        }
    }

    /// An upstream body forwarded as it arrives; `sse` re-frames it as an
    /// event stream of the given API family.
    pub fn upstream(body: Incoming, sse: Option<Family>) -> ResponseBody {
        ResponseBody {
            inner: Inner::Upstream(Box::new(Upstream {
                body,
                sse: sse.map(|f| (EventSplitter::default(), StreamUsage::default(), f)),
            })),
            settle: None,
        }
    }

    /// Attaches the record settled when this body is finished or dropped.
    pub fn with_settle(mut self, settle: Settle) -> ResponseBody {
        self.settle = Some(settle);
        self
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
        match &mut this.inner {
            Inner::Full(bytes) => {
                let out = bytes.take().map(|b| Ok(Frame::data(b)));
                if out.is_none() {
                    if let Some(s) = this.settle.as_mut() {
                        s.completed();
                    }
                }
                Poll::Ready(out)
            }
            Inner::Upstream(up) => loop {
                let frame = match Pin::new(&mut up.body).poll_frame(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(None) => {
                        let tail = up.sse.as_mut().and_then(|(split, usage, family)| {
                            let tail = split.finish()?;
                            observe(&tail, usage, *family);
                            Some(tail)
                        });
                        if let Some(s) = this.settle.as_mut() {
                            if let Some((_, usage, _)) = &up.sse {
                                s.set_usage(usage.get());
                            }
                            if tail.is_none() {
                                s.completed();
                            }
                        }
                        return Poll::Ready(tail.map(|t| Ok(Frame::data(t))));
                    }
                    Poll::Ready(Some(Err(e))) => {
                        if let Some(s) = this.settle.as_mut() {
                            s.upstream_failed();
                        }
                        return Poll::Ready(Some(Err(Box::new(e))));
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
                    Some((split, usage, family)) => {
                        let out = split.push(data);
                        if let Some(events) = &out {
                            observe(events, usage, *family);
                        }
                        out
                    }
                };
                if let Some(out) = out {
                    if let Some(s) = this.settle.as_mut() {
                        s.first_chunk();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Full(b) => b.is_none(),
            Inner::Upstream(up) => {
                up.body.is_end_stream() && up.sse.as_ref().is_none_or(|(s, _, _)| s.held() == 0)
            }
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Inner::Full(None) => SizeHint::with_exact(0),
            Inner::Upstream(up) if up.sse.is_none() => up.body.size_hint(),
            Inner::Upstream(_) => SizeHint::default(),
        }
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        // hyper stops polling once `is_end_stream` is true, so a body that
        // was fully sent may never see its final `None`.
        if self.is_end_stream() {
            if let Some(s) = self.settle.as_mut() {
                s.completed();
            }
        }
    }
}

fn observe(frame: &[u8], usage: &mut StreamUsage, family: Family) {
    for ev in events(frame) {
        usage.observe(family, ev.name, &ev.data);
    }
}
