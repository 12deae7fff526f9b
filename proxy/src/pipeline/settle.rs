//! The last phase: what a request cost and how it ended, recorded once.
//!
//! A [`Settle`] is created when a request arrives and, as the last phase of
//! the response pipeline (`respond`), travels with its response body; it
//! records metrics, writes the access log line and ends the request's
//! budget hold when it is dropped, i.e. when the last byte has gone out or
//! the app went away.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderValue, Method};
use tollgate_config::{AccessLog, Provider};

use super::budget::{Ending, Hold, OutputText};
use crate::api::usage::Usage;
use crate::api::Endpoint;
use crate::budget::BudgetEngine;

pub(crate) mod access;
mod record;
mod span;
use crate::error::ProxyError;
use crate::metrics::{status_class, Metrics};
use crate::state::{Runtime, Shared};
use crate::trace::RequestTrace;
pub(crate) use record::gen_ai_provider_name;
use record::Outcome;
pub(crate) use span::split_authority;

/// The settle record of one request.
pub(crate) struct Settle {
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicUsize>,
    admitted: bool,
    started: Instant,
    request_id: HeaderValue,
    method: Method,
    path: String,
    endpoint: Option<Endpoint>,
    provider: Option<String>,
    /// The provider's OpenTelemetry `gen_ai.provider.name`.
    gen_ai_provider: Option<Cow<'static, str>>,
    model: Option<String>,
    route: Option<String>,
    stream: bool,
    status: u16,
    error: Option<&'static str>,
    upstream_status: Option<u16>,
    first_chunk: Option<Duration>,
    usage: Option<Usage>,
    usage_complete: bool,
    outcome: Outcome,
    /// The budget reservation, ended on drop.
    hold: Option<Hold>,
    /// Upstream model of the latest attempt.
    served_model: Option<String>,
    /// An attempt is waiting for the provider's response headers.
    awaiting: bool,
    /// Attempts sent upstream, retries and fallbacks included.
    attempts: u32,
    /// What the cache did (`x-tollgate-cache`), when it applied.
    cache: Option<&'static str>,
    /// The runtime's price table, for the access log's cost.
    prices: Option<Arc<BudgetEngine>>,
    /// Which requests the access log writes (the runtime's `logging.access`).
    access: AccessLog,
    /// The `gen_ai_*` histograms carry the models (`metrics.perModelHistograms`).
    per_model: bool,
    sampler: Arc<access::Sampler>,
    /// The gaps between a stream's chunks.
    chunk_gaps: record::ChunkGaps,
    output_text: Option<OutputText>,
    /// The request's trace (`None` while tracing is off).
    trace: Option<RequestTrace>,
    /// What the trace's server span says beyond the access line's fields.
    span: span::SpanFacts,
}

impl Settle {
    pub(crate) fn begin(
        shared: &Shared,
        started: Instant,
        request_id: HeaderValue,
        method: Method,
        path: String,
        headers: &HeaderMap,
    ) -> Settle {
        let trace = shared.tracer.as_ref().map(|t| t.request(headers, &method));
        Settle {
            metrics: shared.metrics.clone(),
            in_flight: shared.in_flight.clone(),
            admitted: false,
            started,
            request_id,
            method,
            path,
            endpoint: None,
            provider: None,
            gen_ai_provider: None,
            model: None,
            route: None,
            stream: false,
            status: 0,
            error: None,
            upstream_status: None,
            first_chunk: None,
            usage: None,
            usage_complete: false,
            outcome: Outcome::Open,
            hold: None,
            served_model: None,
            awaiting: false,
            attempts: 0,
            cache: None,
            prices: None,
            access: AccessLog {
                enabled: true,
                sample: 1.0,
            },
            sampler: shared.access_sampler.clone(),
            per_model: true,
            chunk_gaps: record::ChunkGaps::default(),
            output_text: None,
            trace,
            span: span::SpanFacts::default(),
        }
    }

    /// Takes a concurrency slot if one is free under `limit`.
    pub(crate) fn admit(&mut self, limit: usize) -> bool {
        let prev = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if prev >= limit {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.admitted = true;
        self.metrics.in_flight.inc();
        true
    }

    pub(crate) fn set_endpoint(&mut self, e: Endpoint) {
        self.endpoint = Some(e);
    }

    /// The route label (alias or allow-list entry), requested-model label
    /// and whether the app asked for a stream.
    pub(crate) fn set_route(&mut self, route: &str, model_label: &str, stream: bool) {
        self.route = Some(route.to_string());
        self.model = Some(model_label.to_string());
        self.stream = stream;
    }

    /// The provider that (last) served the request.
    pub(crate) fn set_provider(&mut self, p: &Provider) {
        if self.provider.as_deref() != Some(p.name.as_str()) {
            self.provider = Some(p.name.clone());
            self.gen_ai_provider = Some(record::gen_ai_provider_name(p));
            if self.tracing() {
                self.span.server_address = Some(p.base_url.authority.clone());
            }
        }
    }

    /// A chunk of a stream went to the app.
    pub(crate) fn chunk_sent(&mut self) {
        if self.stream {
            let h = self.chunk_gaps.unresolved().then(|| {
                let labels = self.gen_ai(self.served_model.as_deref().unwrap_or(""));
                self.metrics
                    .time_per_output_chunk
                    .with_label_values(&labels)
            });
            self.chunk_gaps.sent(h);
        }
    }

    /// OpenTelemetry's GenAI labels of this request ([`record::Ended`]);
    /// the two models left empty without per-model histograms.
    fn gen_ai<'a>(&'a self, response_model: &'a str) -> [&'a str; 5] {
        let (requested, response) = match self.per_model {
            // Only labels the config resolved; anything else is "unknown".
            true => (self.model.as_deref().unwrap_or("unknown"), response_model),
            false => ("", ""),
        };
        [
            self.endpoint.map_or("other", |e| e.operation.otel_name()),
            self.gen_ai_provider.as_deref().unwrap_or(""),
            requested,
            response,
            self.provider.as_deref().unwrap_or(""),
        ]
    }

    /// What the cache did, as `x-tollgate-cache` says it.
    pub(crate) fn set_cache(&mut self, result: &'static str) {
        self.cache = Some(result);
    }

    /// The runtime the request runs under: its price table (the access
    /// log's cost) and which requests the access log writes.
    pub(crate) fn set_runtime(&mut self, rt: &Runtime) {
        self.prices = Some(rt.budget.clone());
        self.access = rt.config.logging.access;
        self.per_model = rt.config.metrics.per_model_histograms;
    }

    /// The request was admitted by its budgets.
    pub(crate) fn hold_budget(&mut self, hold: Hold) {
        self.hold = Some(hold);
    }

    /// The route a budget `downgrade` action chose, if one fired.
    pub(crate) fn downgrade_to(&self) -> Option<&str> {
        self.hold.as_ref().and_then(Hold::downgrade_to)
    }

    /// True when an output estimate may be needed: the text sent is kept.
    pub(crate) fn wants_output_text(&self) -> bool {
        self.hold.is_some()
    }

    pub(crate) fn set_output_text(&mut self, text: OutputText) {
        self.output_text = Some(text);
    }

    /// Adds the budget headers to a response.
    pub(crate) fn decorate(&self, headers: &mut HeaderMap) {
        if let Some(h) = &self.hold {
            for (name, value) in h.headers() {
                headers.insert(name, value);
            }
        }
    }

    /// An attempt is about to be sent to `model`.
    pub(crate) fn attempt_sent(&mut self, model: &str) {
        if self.served_model.as_deref() != Some(model) {
            self.served_model = Some(model.to_string());
        }
        self.awaiting = true;
        self.attempts += 1;
    }

    /// Attempts sent upstream so far, retries and fallbacks included.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The attempt got its response headers, or failed.
    pub(crate) fn attempt_done(&mut self) {
        self.awaiting = false;
    }

    pub(crate) fn upstream_answered(&mut self, took: Duration, status: u16) {
        self.upstream_status = Some(status);
        self.status = status;
        let provider = self.provider.as_deref().unwrap_or("");
        self.metrics
            .upstream_duration
            .series(&[provider, status_class(status)])
            .observe(took.as_secs_f64());
    }

    /// Records the status sent to the app (if the upstream's was not already).
    pub(crate) fn responded(&mut self, status: u16) {
        if self.status == 0 {
            self.status = status;
        }
    }

    /// Usage the provider reported; `complete` when it is the final
    /// figure (a whole body, or a stream's closing usage).
    pub(crate) fn set_usage(&mut self, usage: Option<Usage>, complete: bool) {
        if usage.is_some() {
            self.usage = usage;
            self.usage_complete = complete;
        }
    }

    /// The first bytes of the answer went out at `at`.
    pub(crate) fn first_chunk_at(&mut self, at: Instant) {
        if self.first_chunk.is_none() {
            self.first_chunk = Some(at.saturating_duration_since(self.started));
        }
    }

    pub(crate) fn completed(&mut self) {
        if self.outcome == Outcome::Open {
            self.outcome = Outcome::Completed;
        }
    }

    /// The upstream failed after the response was committed.
    pub(crate) fn upstream_failed(&mut self, reason: &'static str) {
        self.outcome = Outcome::UpstreamFailed;
        self.error = Some(reason);
        let provider = self.provider.as_deref().unwrap_or("");
        self.metrics
            .stream_errors
            .with_label_values(&[provider, reason])
            .inc();
    }

    /// The request failed with the proxy's own error.
    pub(crate) fn failed(&mut self, err: &ProxyError) {
        self.status = err.status().as_u16();
        self.error = Some(err.metric_label());
        self.metrics
            .errors
            .with_label_values(&[err.metric_label()])
            .inc();
        if err.status().is_server_error() {
            let trace_id = self.trace.as_ref().map(|t| t.ids().0);
            tracing::warn!(request_id = self.request_id.to_str().unwrap_or(""), trace_id, reason = err.metric_label(), error = %err, "request failed");
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        if self.admitted {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            self.metrics.in_flight.dec();
        }
        if self.outcome == Outcome::Open {
            self.outcome = Outcome::ClientGone;
        }
        // The settlement below takes it; the metrics and the line read it.
        let served_model = self.served_model.clone();
        if let Some(hold) = self.hold.take() {
            let answered = self
                .upstream_status
                .is_some_and(|s| (200..300).contains(&s))
                && (200..300).contains(&self.status);
            let phase = self.phase("budget.settle");
            hold.finish(Ending {
                served_model: self.served_model.take(),
                usage: self.usage,
                usage_complete: self.usage_complete,
                answered,
                awaiting: self.awaiting,
                text: self.output_text.take(),
                phase,
            });
        }
        let elapsed = self.started.elapsed();
        let gen_ai = self.gen_ai(served_model.as_deref().unwrap_or(""));
        let route = self.route.as_deref().unwrap_or("unknown");
        // The app left before any answer: nginx's 499, counted as 4xx so an
        // app giving up does not page anyone as a proxy error.
        let status = match (self.status, self.outcome) {
            (0, Outcome::ClientGone) => 499,
            (s, _) => s,
        };
        let model = self.model.as_deref().unwrap_or("unknown");
        // A failed stream has its reason in `error` (`upstream_failed`).
        let error_type = match (self.error, status) {
            (Some(e), _) => Some(e),
            (None, s) if s >= 400 => Some(status_class(s)),
            _ => None,
        };
        record::Ended {
            gen_ai,
            route,
            model,
            status_class: if status == 0 {
                "5xx"
            } else {
                status_class(status)
            },
            error_type: error_type.unwrap_or(""),
            elapsed,
            ttfc: self.first_chunk.filter(|_| self.stream),
            usage: self.usage,
            disconnected_stream: self.stream && self.outcome == Outcome::ClientGone,
        }
        .observe(&self.metrics);
        let failed = status >= 400 || self.outcome == Outcome::UpstreamFailed;
        let logged = access::selected(self.access, &self.sampler, failed);
        let traced = self.tracing();
        if !logged && !traced {
            if let Some(t) = &self.trace {
                t.end(None, None);
            }
            return;
        }
        // The provider's own figures, priced as a settlement would.
        let cost_nano = match (&self.prices, &served_model, &self.usage) {
            (Some(p), Some(model), Some(u)) if self.usage_complete => p.cost_of(model, u),
            _ => None,
        };
        let mut closing = access::Closing {
            gen_ai,
            route,
            model,
            status,
            served_model: served_model.as_deref(),
            elapsed,
            cost_nano,
            ids: None,
        };
        closing.ids = self.end_trace(&closing, error_type, logged);
        if logged {
            self.write_access_line(closing);
        }
    }
}
