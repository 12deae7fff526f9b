//! The operator's own traces: one span per reconcile (`reconcile`) and per
//! admission review (`admission`), exported over OTLP by
//! [`tollgate_otel::Pipeline`] when the standard `OTEL_*` variables name a
//! collector, and counted in `tollgate_operator_trace_spans_total`.
//!
//! Each of those spans records its trace id in a `trace_id` field, so log
//! lines written inside it (JSON: under `span`) lead to the trace.

use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;
use prometheus::IntCounterVec;
use tollgate_otel::{Counters, DropReason, Env, Pipeline, SdkTracer, Settings};
use tracing_opentelemetry::{OpenTelemetryLayer, OpenTelemetrySpanExt};

use crate::metrics::Metrics;

/// The service name spans are exported under unless `OTEL_SERVICE_NAME`
/// says otherwise.
pub const SERVICE: &str = "tollgate-operator";

/// Where this replica runs, as resource attributes.
#[derive(Debug, Clone, Default)]
pub struct Location {
    /// The pod's name (`POD_NAME`), when it runs in one.
    pub pod: Option<String>,
    /// The operator's namespace.
    pub namespace: Option<String>,
}

impl Location {
    fn attributes(&self) -> Vec<KeyValue> {
        let mut out = Vec::new();
        if let Some(p) = &self.pod {
            out.push(KeyValue::new("k8s.pod.name", p.clone()));
        }
        if let Some(n) = &self.namespace {
            out.push(KeyValue::new("k8s.namespace.name", n.clone()));
        }
        out
    }
}

/// Starts trace export as `env`'s `OTEL_*` variables say; `None` when no
/// endpoint is configured (or export is switched off). Must run inside the
/// Tokio runtime: the export task is spawned on it.
pub fn install(
    env: Env<'_>,
    location: &Location,
    metrics: &Metrics,
) -> Result<Option<Pipeline>, tollgate_otel::Error> {
    Pipeline::install(
        &Settings::default(),
        env,
        SERVICE,
        location.attributes(),
        Arc::new(SpanCounters(metrics.trace_spans.clone())),
    )
}

/// The `tracing` layer that turns spans into OpenTelemetry spans of
/// `pipeline`.
pub fn layer<S>(pipeline: &Pipeline) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer()
        .with_tracer(pipeline.tracer().clone())
        // `code.*` and thread attributes say nothing an operator reader needs.
        .with_location(false)
        .with_threads(false)
}

/// Records `span`'s trace id into its `trace_id` field (declared
/// `tracing::field::Empty`). Without export there is no trace, and the
/// field stays empty.
pub(crate) fn record_trace_id(span: &tracing::Span) {
    let id = span.context().span().span_context().trace_id();
    if id != opentelemetry::trace::TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}

/// `tollgate_operator_trace_spans_total{result}`.
struct SpanCounters(IntCounterVec);

impl Counters for SpanCounters {
    fn exported(&self, spans: u64) {
        self.0.with_label_values(&["exported"]).inc_by(spans);
    }

    fn dropped(&self, reason: DropReason, spans: u64) {
        self.0.with_label_values(&[reason.as_str()]).inc_by(spans);
    }
}

#[cfg(test)]
mod tests;
