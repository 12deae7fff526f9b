//! The one response body type of the mock: whole, cut short, or a live stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::sse::SseStream;

/// Why a body ended early. Hyper answers it by tearing the connection (or
/// the HTTP/2 stream) down, which is exactly what the reset switch wants.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("response aborted on purpose (x-mock-reset-after-chunks)")]
    Reset,
}

pub(crate) enum MockBody {
    Full(Option<Bytes>),
    /// Announces `full_len` bytes, sends `head`, then fails.
    CutShort {
        head: Option<Bytes>,
        full_len: u64,
        yielded: bool,
    },
    Stream(Box<SseStream>),
}

impl MockBody {
    pub(super) fn empty() -> Self {
        MockBody::Full(None)
    }
}

impl From<Vec<u8>> for MockBody {
    fn from(v: Vec<u8>) -> Self {
        MockBody::Full(Some(Bytes::from(v)))
    }
}

impl From<Bytes> for MockBody {
    fn from(b: Bytes) -> Self {
        MockBody::Full(Some(b))
    }
}

impl Body for MockBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            MockBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            MockBody::CutShort { head, yielded, .. } => match head.take() {
                Some(b) => Poll::Ready(Some(Ok(Frame::data(b)))),
                // Yield once so hyper flushes the head before the abort.
                None if !std::mem::replace(yielded, true) => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
                None => Poll::Ready(Some(Err(BodyError::Reset))),
            },
            MockBody::Stream(s) => s.poll_event(cx).map(|ev| ev.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MockBody::Full(b) => b.is_none(),
            MockBody::CutShort { .. } => false,
            MockBody::Stream(s) => s.is_done(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MockBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            MockBody::CutShort { full_len, .. } => SizeHint::with_exact(*full_len),
            MockBody::Stream(_) => SizeHint::default(),
        }
    }
}
