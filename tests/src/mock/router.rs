//! One request, top to bottom: control endpoints aside, read and record the
//! body, read the switches, wait the latency, maybe reset, then hand over to
//! the API that owns the path.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::MockBody;
use super::error::{fault, ApiError, Fault};
use super::record::RecordedRequest;
use super::sse::{EventSource, Pacing, SseStream};
use super::state::State;
use super::switches::{JsonStyle, Switches};
use super::{anthropic, control, openai};

/// Both APIs refuse bodies above 32 MiB.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Why no response is sent at all.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandlerError {
    #[error("connection reset on purpose (x-mock-reset-after-chunks: 0)")]
    Reset,
    #[error("reading the request body: {0}")]
    Body(Box<dyn std::error::Error + Send + Sync>),
}

/// Which API a path belongs to; it decides error shapes and headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Api {
    OpenAi,
    Anthropic,
}

impl Api {
    fn of(path: &str) -> Api {
        if path.starts_with("/v1/messages") {
            Api::Anthropic
        } else {
            Api::OpenAi
        }
    }

    fn error(self, err: &ApiError, started: Instant) -> Response<MockBody> {
        match self {
            Api::OpenAi => openai::error_response(err, started),
            Api::Anthropic => anthropic::error_response(err, started),
        }
    }
}

pub(crate) async fn serve(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<MockBody>, HandlerError> {
    let started = Instant::now();
    let (parts, body) = req.into_parts();
    if let Some(rest) = parts.uri.path().strip_prefix("/__mock/") {
        return Ok(control::handle(&state, &parts.method, rest, body).await);
    }
    let api = Api::of(parts.uri.path());
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            let err = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request exceeds the maximum allowed number of bytes.",
            );
            return Ok(api.error(&err, started));
        }
        Err(e) => return Err(HandlerError::Body(e)),
    };
    state.record(|| RecordedRequest::new(&parts, body.clone()));

    let switches = match Switches::from_headers(&parts.headers) {
        Ok(s) => s.or(&state.defaults()),
        Err(e) => return Ok(api.error(&ApiError::bad_request(e.to_string()), started)),
    };
    sleep_ms(switches.latency_ms).await;
    if switches.reset_after_chunks == Some(0) {
        return Err(HandlerError::Reset);
    }
    let ex = Exchange {
        state: &state,
        parts: &parts,
        body,
        switches,
        started,
    };
    Ok(match api {
        Api::OpenAi => openai::handle(&ex).await,
        Api::Anthropic => anthropic::handle(&ex).await,
    })
}

async fn sleep_ms(ms: Option<u64>) {
    if let Some(ms) = ms.filter(|&ms| ms > 0) {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
}

/// A request being answered, with the helpers every endpoint needs.
pub(crate) struct Exchange<'a> {
    pub state: &'a Arc<State>,
    pub parts: &'a http::request::Parts,
    pub body: Bytes,
    pub switches: Switches,
    pub started: Instant,
}

// === impl Exchange ===

impl Exchange<'_> {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.parts.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The injected fault, counted once (call after auth).
    pub(super) fn fault(&self) -> Option<Fault> {
        fault(self.state, &self.switches)
    }

    /// Parses the JSON body, or the 400 both APIs give for a broken one.
    pub(super) fn json<'de, T: serde::Deserialize<'de>>(&'de self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "We could not parse the JSON body of your request. ({e})"
            ))
        })
    }

    /// A whole JSON success; waits the time to first token first, and with
    /// `reset_after_chunks` > 0 sends only its first half.
    pub(super) async fn whole(&self, json: Vec<u8>) -> Response<MockBody> {
        sleep_ms(self.switches.ttft_ms).await;
        let json = match self.switches.json_style() {
            JsonStyle::Compact => json,
            JsonStyle::Spaced => serde_json::from_slice::<serde_json::Value>(&json)
                .map(|v| crate::mock::sse::spaced(&v))
                .unwrap_or(json),
        };
        let body = match self.switches.reset_after_chunks {
            Some(n) if n > 0 => {
                let full_len = json.len() as u64;
                let mut head = Bytes::from(json);
                head.truncate(head.len() / 2);
                MockBody::CutShort {
                    head: Some(head),
                    full_len,
                    yielded: false,
                }
            }
            _ => MockBody::from(json),
        };
        with_type(Response::new(body), "application/json")
    }

    /// A streamed success.
    pub(super) fn stream(&self, source: Box<dyn EventSource>) -> Response<MockBody> {
        let sw = &self.switches;
        let pacing = Pacing {
            ttft: Duration::from_millis(sw.ttft_ms.unwrap_or(0)),
            interval: Duration::from_millis(sw.chunk_interval_ms.unwrap_or(0)),
            reset_after: sw.reset_after_chunks,
            malformed: sw.malformed_sse(),
            style: sw.json_style(),
        };
        let stream = SseStream::new(source, pacing, &self.state.stats);
        let mut resp = with_type(
            Response::new(MockBody::Stream(Box::new(stream))),
            "text/event-stream; charset=utf-8",
        );
        resp.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        resp
    }
}

pub(crate) fn with_type(mut resp: Response<MockBody>, ty: &'static str) -> Response<MockBody> {
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(ty));
    resp
}

/// A JSON response with a status.
pub(crate) fn json_response(status: StatusCode, json: Vec<u8>) -> Response<MockBody> {
    let mut resp = with_type(Response::new(MockBody::from(json)), "application/json");
    *resp.status_mut() = status;
    resp
}
