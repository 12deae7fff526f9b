//! Traces of requests (OpenTelemetry), built from what the pipeline
//! already knows.
//!
//! A request gets a server span when tracing is on (`tracing:` or the
//! `OTEL_*` variables; export is `tollgate_otel`'s): it continues the
//! app's trace when the request carries a W3C `traceparent`, and has a
//! child span for each phase that takes time — the PII filter, the cache
//! lookup, budget admission and settlement, and each upstream attempt. An
//! attempt's span is the parent named in the `traceparent` sent to the
//! provider. The server span's attributes follow the OpenTelemetry GenAI
//! conventions (`gen_ai.*`) plus `tollgate.*` and are set once, when the
//! request settles. No message content, header value or key is recorded.
//!
//! With tracing off a request carries no trace at all; sampled out, it
//! carries ids (propagated upstream with the sampled flag clear) and spans
//! that record nothing. Attribute values are computed only for spans that
//! record ([`Phase::recording`]).

use std::borrow::Cow;

use http::{HeaderMap, HeaderValue};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracer, Span};
use tollgate_otel::{Decision, Sampling};

/// The process's tracer, shared by every request.
#[derive(Clone, Debug)]
pub(crate) struct Tracer {
    tracer: SdkTracer,
    sampling: Sampling,
}

impl Tracer {
    /// `sampling` must be the one `tracer`'s provider was built with.
    pub(crate) fn new(tracer: SdkTracer, sampling: Sampling) -> Tracer {
        Tracer { tracer, sampling }
    }

    /// The server span of a request, continuing the app's trace when its
    /// `traceparent` is valid (a malformed one starts a new trace). The
    /// sampler is asked first: a request sampled out builds no span.
    pub(crate) fn request(&self, headers: &HeaderMap, method: &http::Method) -> RequestTrace {
        let parent = if headers.contains_key("traceparent") {
            TraceContextPropagator::new().extract(&Headers(headers))
        } else {
            Context::new()
        };
        let trace_id = match self.sampling.decide(&parent, "request", SpanKind::Server) {
            Decision::Drop(sc) => return RequestTrace(Kind::Unsampled(sc)),
            Decision::Record(id) => id,
        };
        // Room for the attributes set when the request settles (about 25),
        // so recording them does not grow the vector step by step.
        let mut attributes = Vec::with_capacity(32);
        attributes.push(KeyValue::new("http.request.method", method_name(method)));
        let builder = self
            .tracer
            .span_builder(Cow::Borrowed("request"))
            .with_kind(SpanKind::Server)
            .with_attributes(attributes);
        let span = self
            .sampling
            .start(&self.tracer, builder, &parent, trace_id);
        let recording = span.is_recording();
        RequestTrace(Kind::Traced {
            tracer: self.tracer.clone(),
            cx: Context::new().with_span(span),
            recording,
        })
    }

    /// A new trace for work the request started but does not wait for
    /// (the shadow request), linked to the request's span.
    pub(crate) fn linked(
        &self,
        name: String,
        kind: SpanKind,
        link: Option<&RequestTrace>,
    ) -> Phase {
        let root = Context::new();
        let trace_id = match self.sampling.decide(&root, &name, kind.clone()) {
            Decision::Drop(sc) => return Phase(Inner::Context(sc)),
            Decision::Record(id) => id,
        };
        let mut b = self.tracer.span_builder(name).with_kind(kind);
        if let Some(r) = link {
            b = b.with_links(vec![opentelemetry::trace::Link::with_context(
                r.span_context(),
            )]);
        }
        Phase(Inner::Span(self.sampling.start(
            &self.tracer,
            b,
            &root,
            trace_id,
        )))
    }
}

/// A request method as a span attribute: the standard ones by reference.
fn method_name(m: &http::Method) -> opentelemetry::Value {
    use http::Method;
    let name: &'static str = match *m {
        Method::POST => "POST",
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => return m.to_string().into(),
    };
    name.into()
}

/// `traceparent` and `tracestate` in a request's headers.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// One request's trace: its server span (in a context, so phases are its
/// children), or only the ids of one sampled out.
pub(crate) struct RequestTrace(Kind);

enum Kind {
    Traced {
        tracer: SdkTracer,
        cx: Context,
        /// False when the SDK built the span but it records nothing
        /// (the provider was shut down).
        recording: bool,
    },
    /// Sampled out: the context to propagate (sampled flag clear).
    Unsampled(SpanContext),
}

impl RequestTrace {
    /// Whether the server span records (the request was sampled).
    pub(crate) fn recording(&self) -> bool {
        matches!(
            self.0,
            Kind::Traced {
                recording: true,
                ..
            }
        )
    }

    /// The trace id and the server span's id, as logs and headers write them.
    pub(crate) fn ids(&self) -> (String, String) {
        let (t, s) = self.id_values();
        (t.to_string(), s.to_string())
    }

    /// The ids as values that write themselves only when displayed.
    pub(crate) fn id_values(
        &self,
    ) -> (opentelemetry::trace::TraceId, opentelemetry::trace::SpanId) {
        match &self.0 {
            Kind::Traced { cx, .. } => {
                let span = cx.span();
                let sc = span.span_context();
                (sc.trace_id(), sc.span_id())
            }
            Kind::Unsampled(sc) => (sc.trace_id(), sc.span_id()),
        }
    }

    fn span_context(&self) -> SpanContext {
        match &self.0 {
            Kind::Traced { cx, .. } => cx.span().span_context().clone(),
            Kind::Unsampled(sc) => sc.clone(),
        }
    }

    /// Starts a child span of the server span. A request that is not
    /// recorded gets none: its phases carry the server span's context
    /// only, for propagation (sampled flag clear).
    pub(crate) fn phase(&self, name: impl Into<Cow<'static, str>>, kind: SpanKind) -> Phase {
        match &self.0 {
            Kind::Traced {
                tracer,
                cx,
                recording: true,
            } => Phase(Inner::Span(
                tracer
                    .span_builder(name)
                    .with_kind(kind)
                    .start_with_context(tracer, cx),
            )),
            _ => Phase(Inner::Context(self.span_context())),
        }
    }

    /// Sets attributes of the server span (only if it records).
    pub(crate) fn set_all(&self, kvs: Vec<KeyValue>) {
        if let Kind::Traced {
            cx,
            recording: true,
            ..
        } = &self.0
        {
            cx.span().set_attributes(kvs);
        }
    }

    /// Ends the server span, renamed `name` (when it records) and, when the
    /// request failed, with an error status naming `error_type`.
    pub(crate) fn end(&self, name: Option<String>, error_type: Option<&str>) {
        let Kind::Traced { cx, recording, .. } = &self.0 else {
            return;
        };
        let span = cx.span();
        if *recording {
            if let Some(name) = name {
                span.update_name(name);
            }
            if let Some(e) = error_type {
                span.set_attribute(KeyValue::new("error.type", e.to_string()));
                span.set_status(Status::error(e.to_string()));
            }
        }
        span.end();
    }
}

/// A phase's span; ended when dropped. `Phase::OFF` when tracing is off.
#[derive(Default)]
pub(crate) struct Phase(Inner);

// A phase lives on the stack for as long as it runs: boxing the span would
// cost an allocation per span for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Default)]
enum Inner {
    #[default]
    Off,
    /// A request not recorded: only the context to propagate.
    Context(SpanContext),
    Span(Span),
}

impl std::fmt::Debug for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.0 {
            Inner::Off => "Phase::OFF",
            Inner::Context(_) => "Phase(unsampled)",
            Inner::Span(_) => "Phase",
        })
    }
}

impl Phase {
    pub(crate) const OFF: Phase = Phase(Inner::Off);

    fn span(&mut self) -> Option<&mut Span> {
        match &mut self.0 {
            Inner::Span(s) if s.is_recording() => Some(s),
            _ => None,
        }
    }

    /// Whether attributes set now are kept (worth computing).
    pub(crate) fn recording(&self) -> bool {
        matches!(&self.0, Inner::Span(s) if s.is_recording())
    }

    pub(crate) fn set(&mut self, kv: KeyValue) {
        if let Some(s) = self.span() {
            s.set_attribute(kv);
        }
    }

    /// Marks the phase failed, with OpenTelemetry's `error.type`.
    pub(crate) fn fail(&mut self, error_type: &str) {
        if let Some(s) = self.span() {
            s.set_attribute(KeyValue::new("error.type", error_type.to_string()));
            s.set_status(Status::error(error_type.to_string()));
        }
    }

    /// The W3C headers naming this span as the parent of a request it
    /// sends (sampled flag as decided); `None` when tracing is off.
    pub(crate) fn propagation(&self) -> Option<Propagation> {
        let sc = match &self.0 {
            Inner::Off => return None,
            Inner::Context(sc) => sc,
            Inner::Span(s) => s.span_context(),
        };
        if !sc.is_valid() {
            return None;
        }
        let traceparent = traceparent(
            &sc.trace_id().to_bytes(),
            &sc.span_id().to_bytes(),
            sc.trace_flags().to_u8(),
        );
        let state = sc.trace_state();
        let tracestate = (state != &TraceState::NONE)
            .then(|| state.header())
            .filter(|s| !s.is_empty())
            .and_then(|s| HeaderValue::from_str(&s).ok());
        Some(Propagation {
            traceparent,
            tracestate,
        })
    }
}

impl Drop for Phase {
    fn drop(&mut self) {
        if let Inner::Span(s) = &mut self.0 {
            s.end();
        }
    }
}

/// `00-{trace id}-{parent id}-{flags}`, written straight into a header
/// value (a request pays for this whenever tracing is on, sampled or not).
fn traceparent(trace: &[u8; 16], span: &[u8; 8], flags: u8) -> HeaderValue {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    hex(&mut out[3..35], trace);
    hex(&mut out[36..52], span);
    hex(&mut out[53..], &[flags]);
    HeaderValue::from_bytes(&out).expect("hex digits and dashes")
}

/// Lower-case hex of `bytes` into `out` (twice as long).
fn hex(out: &mut [u8], bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
}

/// `traceparent` (and `tracestate`) for a request to a provider.
#[derive(Debug, Clone)]
pub(crate) struct Propagation {
    pub(crate) traceparent: HeaderValue,
    pub(crate) tracestate: Option<HeaderValue>,
}

/// Exported and dropped spans, in the proxy's metrics.
pub(crate) struct SpanCounters(pub(crate) prometheus::IntCounterVec);

impl tollgate_otel::Counters for SpanCounters {
    fn exported(&self, spans: u64) {
        self.0.with_label_values(&["exported"]).inc_by(spans);
    }

    fn dropped(&self, reason: tollgate_otel::DropReason, spans: u64) {
        self.0.with_label_values(&[reason.as_str()]).inc_by(spans);
    }
}

/// The export settings the config file gives (`tracing:`).
pub(crate) fn settings(t: &tollgate_config::Tracing) -> tollgate_otel::Settings {
    use tollgate_config::raw::OtlpProtocol;
    tollgate_otel::Settings {
        endpoint: t.endpoint.clone(),
        protocol: t.protocol.map(|p| match p {
            OtlpProtocol::Grpc => tollgate_otel::Protocol::Grpc,
            OtlpProtocol::HttpProtobuf => tollgate_otel::Protocol::HttpProtobuf,
        }),
        service_name: t.service_name.clone(),
        sample_ratio: t.sample_ratio,
        queue_size: t.queue_size,
        timeout: t.timeout,
    }
}

#[cfg(test)]
mod tests;
