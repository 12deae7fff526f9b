//! The phases of the response pipeline, one type each, run in the order
//! [`super::phases`] lists them; they talk to each other only through the
//! [`Tally`]. Here, the phases at the edges of a response (the upstream's
//! head, and the two that see its end); in [`observe`], those that read
//! events; in [`rewrite`], those that change them.

mod observe;
mod rewrite;

use http::header::{self, HeaderValue};
use http::response::Parts;
use http::StatusCode;

use super::{Assembly, CacheOutcome, Phase, Tally};
use crate::api::Event;
use crate::body::End;
use crate::pipeline::cache::{Pending, Shape, Tee};
use crate::pipeline::settle::Settle;
use crate::upstream::strip_hop_by_hop;
pub(super) use observe::{OutputCapture, Reading, ShadowCapture, UsageCapture};
pub(super) use rewrite::{PiiFilter, StripUsageChunk, Translate};

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
    pub(super) fn phase(a: &Assembly) -> Option<Box<dyn Phase>> {
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
        if let Some((name, v)) = crate::pii::guard_header(&self.guard) {
            h.insert(name, v);
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
    pub(super) fn phase(
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

    fn event(&mut self, mut ev: Event, tally: &mut Tally, out: &mut Vec<Event>) {
        if let Some(tee) = self.tee.as_mut() {
            tee.event(&mut ev, tally.checked);
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
    pub(super) fn phase(settle: Settle) -> Box<dyn Phase> {
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

    fn sent(&mut self, _data: &bytes::Bytes) {
        self.0.chunk_sent();
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
