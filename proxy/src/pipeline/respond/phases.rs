//! The phases of the response pipeline, one type each, in the order
//! [`super::phases`] runs them. Each does one job and talks to the others
//! only through the [`Tally`].

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::response::Parts;
use http::StatusCode;
use serde_json::Value;
use tokio::sync::oneshot;

use super::{Assembly, CacheOutcome, Phase, Tally};
use crate::api::translate::{self, StreamTranslator};
use crate::api::usage::{usage_only, StreamUsage, Usage};
use crate::api::{Event, Family};
use crate::body::End;
use crate::metrics::Metrics;
use crate::pii::stream::StreamFilter;
use crate::pipeline::budget::OutputText;
use crate::pipeline::cache::{Pending, Shape, Tee};
use crate::pipeline::settle::Settle;
use crate::upstream::strip_hop_by_hop;

/// Most text kept from a stream for a shadow comparison.
const MAX_CAPTURE: usize = 256 * 1024;

// === UpstreamHead ===

/// The upstream's headers made the proxy's: hop-by-hop headers and the
/// length dropped (the body may change), the request id, route, target and
/// prompt-guard rules stamped.
pub(super) struct UpstreamHead {
    request_id: HeaderValue,
    route: Option<String>,
    target: Option<String>,
    guard: Vec<&'static str>,
    /// An error answer of the other API, rewritten as JSON in the app's.
    retype: bool,
}

impl UpstreamHead {
    pub(super) fn new(a: &Assembly) -> Option<Box<dyn Phase>> {
        let api = a.api?;
        Some(Box::new(UpstreamHead {
            request_id: a.request_id.clone(),
            route: a.route.clone(),
            target: a.target.clone(),
            guard: a.guard.clone(),
            retype: a.shape.is_none() && api != a.app,
        }))
    }
}

impl Phase for UpstreamHead {
    fn name(&self) -> &'static str {
        "upstream head"
    }

    fn head(&mut self, head: &mut Parts) {
        let h = &mut head.headers;
        strip_hop_by_hop(h);
        h.remove(header::CONTENT_LENGTH);
        if self.retype {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
        if let Some(theirs) = h.insert("x-request-id", self.request_id.clone()) {
            if theirs != self.request_id {
                h.insert("x-upstream-request-id", theirs);
            }
        }
        let stamp = [
            ("x-tollgate-route", self.route.as_deref()),
            ("x-tollgate-target", self.target.as_deref()),
        ];
        for (name, value) in stamp {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                h.insert(name, v);
            }
        }
        if !self.guard.is_empty() {
            if let Ok(v) = HeaderValue::from_str(&self.guard.join(",")) {
                h.insert("x-tollgate-guard", v);
            }
        }
    }
}

// === UsageCapture ===

/// Usage the provider reported, in its own API.
pub(super) struct UsageCapture {
    api: Family,
    usage: StreamUsage,
}

impl UsageCapture {
    pub(super) fn new(api: Family) -> Box<dyn Phase> {
        Box::new(UsageCapture {
            api,
            usage: StreamUsage::default(),
        })
    }
}

impl Phase for UsageCapture {
    fn name(&self) -> &'static str {
        "usage"
    }

    fn event(&mut self, ev: Event, tally: &mut Tally, out: &mut Vec<Event>) {
        if ev.is_body() {
            tally.usage = ev.json().and_then(|v| Usage::of_response(self.api, v));
            tally.usage_complete = true;
        } else {
            self.usage.observe(self.api, &ev);
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
pub(super) struct OutputCapture {
    api: Family,
    text: Option<OutputText>,
}

impl OutputCapture {
    pub(super) fn new(api: Family, stream: bool) -> Box<dyn Phase> {
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
        if let Some(v) = ev.json() {
            match self.text.as_mut() {
                Some(text) => text.push_event(self.api, v),
                None if ev.is_body() && tally.usage.is_none() => {
                    self.text = Some(OutputText::of_response(self.api, v));
                }
                None => {}
            }
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
pub(super) struct ShadowCapture {
    api: Family,
    tx: Option<oneshot::Sender<String>>,
    text: String,
}

impl ShadowCapture {
    pub(super) fn new((api, tx): (Family, oneshot::Sender<String>)) -> Box<dyn Phase> {
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

// === StripUsageChunk ===

/// Drops OpenAI's usage-only chunk, which the proxy asked for on the app's
/// behalf (decided on the event's JSON, whatever its formatting).
pub(super) struct StripUsageChunk;

impl StripUsageChunk {
    pub(super) fn new(applies: bool) -> Option<Box<dyn Phase>> {
        applies.then(|| Box::new(StripUsageChunk) as Box<dyn Phase>)
    }
}

impl Phase for StripUsageChunk {
    fn name(&self) -> &'static str {
        "strip usage chunk"
    }

    fn event(&mut self, ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        if !ev.json().is_some_and(usage_only) {
            out.push(ev);
        }
    }
}

// === Translate ===

/// The answer of the other API in the app's: a stream event by event, a
/// whole answer at once.
pub(super) enum Translate {
    Stream(Box<dyn StreamTranslator>),
    Whole { app: Family, model: String },
}

impl Translate {
    pub(super) fn new(
        app: Family,
        api: Family,
        stream: bool,
        model: &str,
        include_usage: bool,
    ) -> Option<Box<dyn Phase>> {
        if app == api {
            return None;
        }
        let t = if stream {
            Translate::Stream(translate::stream_translator(
                app,
                api,
                model,
                include_usage,
            )?)
        } else {
            Translate::Whole {
                app,
                model: model.to_string(),
            }
        };
        Some(Box::new(t))
    }
}

impl Phase for Translate {
    fn name(&self) -> &'static str {
        "translate"
    }

    fn event(&mut self, ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        match self {
            Translate::Stream(t) => t.push(&ev, out),
            Translate::Whole { app, model } => match ev.json() {
                Some(v) => out.push(Event::built_body(translate::response(*app, v, model))),
                None => out.push(ev),
            },
        }
    }

    fn finish(&mut self, _tally: &mut Tally, out: &mut Vec<Event>) {
        if let Translate::Stream(t) = self {
            t.finish(out);
        }
    }
}

// === PiiFilter ===

/// Restores pseudonyms and masks what the model wrote, in the app's API.
pub(super) enum PiiFilter {
    Stream(Box<StreamFilter>),
    Whole {
        answers: crate::pii::Answers,
        metrics: Arc<Metrics>,
        app: Family,
    },
}

impl PiiFilter {
    pub(super) fn new(
        answers: crate::pii::Answers,
        metrics: &Arc<Metrics>,
        app: Family,
        stream: bool,
    ) -> Box<dyn Phase> {
        Box::new(if stream {
            PiiFilter::Stream(Box::new(answers.stream(metrics, app)))
        } else {
            PiiFilter::Whole {
                answers,
                metrics: metrics.clone(),
                app,
            }
        })
    }
}

impl Phase for PiiFilter {
    fn name(&self) -> &'static str {
        "pii"
    }

    fn event(&mut self, mut ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        match self {
            PiiFilter::Stream(f) => f.push(ev, out),
            PiiFilter::Whole {
                answers,
                metrics,
                app,
            } => {
                ev.edit(|_, v| answers.whole(metrics, *app, v));
                out.push(ev);
            }
        }
    }

    fn finish(&mut self, _tally: &mut Tally, out: &mut Vec<Event>) {
        if let PiiFilter::Stream(f) = self {
            f.finish(out);
        }
    }
}

// === CacheTee ===

/// `x-tollgate-cache`, and the store of a miss: what the app receives is
/// recorded and stored when a 200 ended well.
pub(super) struct CacheTee {
    header: Option<&'static str>,
    store: Option<Pending>,
    target: String,
    shape: Option<Shape>,
    tee: Option<Tee>,
}

impl CacheTee {
    pub(super) fn new(
        cache: CacheOutcome,
        target: Option<String>,
        shape: Option<Shape>,
    ) -> Option<Box<dyn Phase>> {
        if cache.header.is_none() && cache.store.is_none() {
            return None;
        }
        Some(Box::new(CacheTee {
            header: cache.header,
            store: cache.store,
            target: target.unwrap_or_default(),
            shape,
            tee: None,
        }))
    }
}

impl Phase for CacheTee {
    fn name(&self) -> &'static str {
        "cache tee"
    }

    fn head(&mut self, head: &mut Parts) {
        if let Some(h) = self.header {
            head.headers
                .insert(crate::pipeline::cache::HEADER, HeaderValue::from_static(h));
        }
        let Some(store) = self.store.take() else {
            return;
        };
        match self.shape {
            Some(shape) if head.status == StatusCode::OK => {
                self.tee = Some(store.tee(std::mem::take(&mut self.target), shape));
            }
            _ => store.discard(),
        }
    }

    fn event(&mut self, mut ev: Event, _tally: &mut Tally, out: &mut Vec<Event>) {
        if let Some(tee) = self.tee.as_mut() {
            tee.event(&mut ev);
        }
        out.push(ev);
    }

    fn sent(&mut self, data: &bytes::Bytes) {
        if let Some(tee) = self.tee.as_mut() {
            tee.raw(data);
        }
    }

    fn end(&mut self, end: End, tally: &mut Tally) {
        let Some(tee) = self.tee.take() else { return };
        match end {
            End::Completed => tee.complete(tally.usage),
            End::Failed { closed: true, .. } => tee.failed(),
            // Cut off, or the app left: nothing to say.
            End::Failed { closed: false, .. } | End::Gone => {}
        }
    }
}

// === SettleRecord ===

/// The settle record: the status and budget headers on the way out; at the
/// end, usage, text and outcome (metrics, the access log and the budget
/// settle when the body, and with it this phase, is dropped).
pub(super) struct SettleRecord(Settle);

impl SettleRecord {
    pub(super) fn new(settle: Settle) -> Box<dyn Phase> {
        Box::new(SettleRecord(settle))
    }
}

impl Phase for SettleRecord {
    fn name(&self) -> &'static str {
        "settle"
    }

    fn head(&mut self, head: &mut Parts) {
        self.0.responded(head.status.as_u16());
        self.0.decorate(&mut head.headers);
    }

    fn end(&mut self, end: End, tally: &mut Tally) {
        let s = &mut self.0;
        s.set_usage(tally.usage, tally.usage_complete);
        if let Some(text) = tally.text.take() {
            s.set_output_text(text);
        }
        if let Some(at) = tally.first_sent {
            s.first_chunk_at(at);
        }
        match end {
            End::Completed => s.completed(),
            End::Failed { reason, .. } => s.upstream_failed(reason),
            End::Gone => {}
        }
    }
}
