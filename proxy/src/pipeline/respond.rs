//! The response half of the path: where what a provider answered (or the
//! proxy's own answer, or an error) becomes the app's response. Its phases
//! run in one order, assembled per answer by [`phases`]:
//!
//! 1. **Response header filter**, once: the upstream's headers cleaned and
//!    stamped with the request id, route, target and prompt-guard rules
//!    (`upstream head`); the cache's verdict (`cache tee`); the status and
//!    budget headers (`settle`).
//! 2. **Per event**, for each SSE event of a stream, or once for a whole
//!    JSON body:
//!    `usage` capture → `output text` for budgets (a whole answer's only
//!    when it reported no usage) → `shadow capture` → `strip usage chunk`
//!    (the one the proxy asked for on the app's behalf) → `translate`
//!    (OpenAI ⇄ Anthropic) → `pii` (restore pseudonyms, mask) → `cache tee`
//!    (what the app receives).
//! 3. **End of response**, once: when the upstream finished or failed, or
//!    the body was dropped (sent, or the app left): the text and usage go
//!    to `settle`, which records metrics and the access log and settles
//!    the budget reservation when the body is dropped.
//!
//! Phases talk only through the [`Tally`] (usage, output text, first byte
//! time); none reaches into another. Each [`Event`](crate::api::Event) is
//! parsed by the first phase that reads its JSON and shared by the rest; one
//! no phase changed goes out as the bytes it came in. `body.rs` drives the
//! [`Chain`] of a stream (framing, deadlines, backpressure, cancellation)
//! through [`Filter`](crate::body::Filter), and knows nothing else of it.

mod chain;
mod phases;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use http::Response;
use tokio::sync::oneshot;

use super::cache;
use super::settle::Settle;
use crate::api::{translate, Family};
use crate::body::{Limits, ResponseBody, UpstreamBody};
use crate::error::ProxyError;
use crate::metrics::Metrics;
pub(crate) use chain::{Chain, Checked, Phase, Tally};
use phases::{
    CacheTee, OutputCapture, PiiFilter, Reading, SettleRecord, ShadowCapture, StripUsageChunk,
    Translate, UpstreamHead, UsageCapture,
};

/// What a provider answered, as it came.
pub(crate) struct Answer {
    /// Status and headers as received.
    pub head: http::response::Parts,
    pub body: Body,
    /// The provider's API.
    pub api: Family,
    /// `x-tollgate-route`; `None` for a path forwarded as it is.
    pub route: Option<String>,
    /// The target that answered (`provider/model`), for a success.
    pub target: Option<String>,
    /// The app asked for OpenAI's final usage chunk.
    pub include_usage: bool,
    /// The proxy asked for that chunk on the app's behalf: it is removed.
    pub injected_usage: bool,
    /// Receives the answer's text for a shadow comparison.
    pub shadow: Option<oneshot::Sender<String>>,
}

/// An answer's body, as it came.
pub(crate) enum Body {
    /// A whole JSON body, buffered.
    Whole(Bytes),
    /// An event stream; `first` is already read.
    Stream {
        body: UpstreamBody,
        first: Option<Bytes>,
        limits: Limits,
    },
    /// Forwarded as it comes (too large to buffer, or not an API the proxy
    /// reads).
    Raw {
        body: UpstreamBody,
        first: Option<Bytes>,
    },
    /// An error answer, read up to a limit.
    Error(Bytes),
}

/// The request's result, before it becomes a response.
pub(crate) enum Reply {
    /// An answer the proxy made itself (a cache hit, the model list).
    Own(Response<ResponseBody>),
    /// A provider's answer.
    Upstream(Box<Answer>),
}

/// What a response needs from its request, gathered while it is handled.
pub(crate) struct Context {
    /// The app's API.
    pub app: Family,
    pub request_id: HeaderValue,
    pub metrics: Arc<Metrics>,
    /// The model the app asked for (a translated answer names it).
    pub model: String,
    /// PII work on the answer (restore pseudonyms, scan).
    pub pii: Option<crate::pii::Answers>,
    /// Prompt-guard rules the request tripped (`x-tollgate-guard`).
    pub guard: Vec<&'static str>,
    /// `x-tollgate-cache`, and the store of a miss.
    pub cache: CacheOutcome,
}

/// The cache's part in a response: its header, and the store of a miss.
#[derive(Default)]
pub(crate) struct CacheOutcome {
    pub header: Option<&'static str>,
    pub store: Option<cache::Pending>,
}

impl Context {
    pub(crate) fn new(app: Family, request_id: HeaderValue, metrics: Arc<Metrics>) -> Context {
        Context {
            app,
            request_id,
            metrics,
            model: String::new(),
            pii: None,
            guard: Vec::new(),
            cache: CacheOutcome::default(),
        }
    }
}

/// Makes the app's response: the one place a request's result becomes
/// the body the app reads.
pub(crate) fn respond(
    reply: Result<Reply, ProxyError>,
    cx: Context,
    mut settle: Settle,
) -> Response<ResponseBody> {
    let reply = reply.unwrap_or_else(|err| {
        settle.failed(&err);
        let id = cx.request_id.to_str().unwrap_or("");
        Reply::Own(err.to_response(cx.app, id))
    });
    match reply {
        Reply::Own(resp) => {
            let (mut head, body) = resp.into_parts();
            retried_out(&mut head, &settle);
            let mut chain = Chain::new(cx.app, phases(Assembly::own(cx, settle)));
            chain.head(&mut head);
            Response::from_parts(head, body.with_filter(Box::new(chain)))
        }
        Reply::Upstream(answer) => upstream(*answer, cx, settle),
    }
}

/// A provider's answer through its phases.
fn upstream(answer: Answer, cx: Context, settle: Settle) -> Response<ResponseBody> {
    let Answer {
        mut head,
        body,
        api,
        route,
        target,
        include_usage,
        injected_usage,
        shadow,
    } = answer;
    let app = cx.app;
    if matches!(body, Body::Error(_)) {
        retried_out(&mut head, &settle);
    }
    let shape = match &body {
        Body::Whole(_) => Some(cache::Shape::Whole),
        Body::Stream { .. } => Some(cache::Shape::Stream),
        Body::Raw { .. } => Some(cache::Shape::Raw),
        Body::Error(_) => None,
    };
    let assembly = Assembly {
        app,
        api: Some(api),
        shape,
        request_id: cx.request_id,
        route,
        target,
        model: cx.model,
        include_usage,
        injected_usage,
        output_text: settle.wants_output_text(),
        shadow,
        pii: cx.pii,
        metrics: cx.metrics,
        guard: cx.guard,
        cache: cx.cache,
        settle,
    };
    let mut chain = Chain::new(app, phases(assembly));
    chain.head(&mut head);
    let body = match body {
        Body::Whole(bytes) => ResponseBody::full(chain.whole(bytes)).with_filter(Box::new(chain)),
        Body::Error(bytes) => {
            let bytes = translate::error_body(app, api, head.status.as_u16(), bytes);
            ResponseBody::full(bytes).with_filter(Box::new(chain))
        }
        Body::Stream {
            body,
            first,
            limits,
        } => ResponseBody::stream(body, first, limits, Box::new(chain)),
        Body::Raw { body, first } => ResponseBody::raw(body, first, Box::new(chain)),
    };
    Response::from_parts(head, body)
}

/// An error answered after Tollgate's own retries or fallbacks tells the
/// SDK not to retry on top of them (`x-should-retry: false`): each SDK
/// retry would run every attempt again, multiplying the load on a provider
/// already failing.
fn retried_out(head: &mut http::response::Parts, settle: &Settle) {
    if settle.attempts() > 1 && head.status.as_u16() >= 400 {
        head.headers.insert(
            crate::error::SHOULD_RETRY,
            HeaderValue::from_static("false"),
        );
    }
}

/// What one response's phases are made of.
pub(crate) struct Assembly {
    pub app: Family,
    /// The provider's API; `None` for the proxy's own answers.
    pub api: Option<Family>,
    /// The answer's shape; `None` for an error or the proxy's own answer.
    pub shape: Option<cache::Shape>,
    pub request_id: HeaderValue,
    pub route: Option<String>,
    pub target: Option<String>,
    pub model: String,
    pub include_usage: bool,
    pub injected_usage: bool,
    /// Budgets may need an estimate from the text sent.
    pub output_text: bool,
    pub shadow: Option<oneshot::Sender<String>>,
    pub pii: Option<crate::pii::Answers>,
    pub metrics: Arc<Metrics>,
    pub guard: Vec<&'static str>,
    pub cache: CacheOutcome,
    pub settle: Settle,
}

impl Assembly {
    /// The proxy's own answer (or error): only the settle record applies.
    fn own(cx: Context, settle: Settle) -> Assembly {
        Assembly {
            app: cx.app,
            api: None,
            shape: None,
            request_id: cx.request_id,
            route: None,
            target: None,
            model: cx.model,
            include_usage: false,
            injected_usage: false,
            output_text: false,
            shadow: None,
            pii: None,
            metrics: cx.metrics,
            guard: Vec::new(),
            cache: CacheOutcome::default(),
            settle,
        }
    }

    /// True for an answer made of events (a stream, or a whole JSON body).
    fn has_events(&self) -> bool {
        matches!(self.shape, Some(cache::Shape::Whole | cache::Shape::Stream))
    }
}

/// The phases of one response, in the order they run (see the module
/// docs); each is there only when it has work for this answer.
pub(crate) fn phases(a: Assembly) -> Vec<Box<dyn Phase>> {
    let events = a.has_events();
    let stream = a.shape == Some(cache::Shape::Stream);
    let api = a.api.filter(|_| events);
    let translated = api.is_some_and(|api| api != a.app);
    // Usage reads the events alone when no later phase needs their JSON
    // (the budgets' output text needs a whole answer's only when it
    // reported no usage; the cache tee a whole answer's only to know it is
    // JSON, which the usage phase checks for it).
    let store = a.cache.store.is_some();
    let alone = !(a.output_text && stream)
        && a.shadow.is_none()
        && !translated
        && a.pii.is_none()
        && !(store && stream);
    let usage = if alone && store {
        Reading::Checked
    } else if alone {
        Reading::Alone
    } else {
        Reading::Shared
    };
    [
        UpstreamHead::phase(&a),
        api.map(|api| UsageCapture::phase(api, usage)),
        api.filter(|_| a.output_text)
            .map(|api| OutputCapture::phase(api, stream)),
        api.zip(a.shadow).map(ShadowCapture::phase),
        StripUsageChunk::phase(api.is_some() && stream && a.injected_usage),
        api.and_then(|api| Translate::phase(a.app, api, stream, &a.model, a.include_usage)),
        a.pii
            .filter(|_| events)
            .map(|p| PiiFilter::phase(p, &a.metrics, a.app, stream)),
        CacheTee::phase(a.cache, a.target, a.shape),
        Some(SettleRecord::phase(a.settle)),
    ]
    .into_iter()
    .flatten()
    .collect()
}
