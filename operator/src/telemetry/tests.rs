use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tracing::field::Empty;
use tracing_subscriber::EnvFilter;

use super::*;
use crate::logging::{subscriber, LogFormat};

/// Log lines written into memory.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn json(&self) -> Vec<Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// A collector address nothing listens on: every export fails.
fn closed_port() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

fn env_of(vars: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
    move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    }
}

fn here() -> Location {
    Location {
        pod: Some("tollgate-operator-0".into()),
        namespace: Some("tollgate-system".into()),
    }
}

/// Logs one line inside a `reconcile`-like span; returns the lines and
/// the span's trace id as OpenTelemetry sees it.
fn log_in_span(format: LogFormat, pipeline: Option<&Pipeline>) -> (Vec<Value>, String) {
    let lines = Lines::default();
    let writer = lines.clone();
    let sub = subscriber(
        format,
        EnvFilter::new("info"),
        false,
        move || writer.clone(),
        pipeline,
    );
    let id = tracing::subscriber::with_default(sub, || {
        let span = tracing::info_span!("reconcile", policy = "chat", trace_id = Empty);
        record_trace_id(&span);
        let _in = span.enter();
        tracing::info!("applied");
        span.context().span().span_context().trace_id().to_string()
    });
    (lines.json(), id)
}

#[tokio::test]
async fn json_log_lines_carry_the_trace_id_of_their_span() {
    let metrics = Metrics::new();
    let env = env_of(vec![("OTEL_EXPORTER_OTLP_ENDPOINT", closed_port())]);
    let pipeline = install(&env, &here(), &metrics)
        .unwrap()
        .expect("an endpoint is set");
    let (lines, id) = log_in_span(LogFormat::Json, Some(&pipeline));
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["message"], "applied");
    assert_eq!(line["span"]["name"], "reconcile");
    assert_eq!(line["span"]["policy"], "chat");
    assert_eq!(line["span"]["trace_id"], id.as_str(), "{line}");
    assert_eq!(id.len(), 32);
    assert_ne!(id, "0".repeat(32));
    pipeline.shutdown(Duration::from_secs(10)).await;
}

#[test]
fn without_export_the_trace_id_stays_empty() {
    let (lines, id) = log_in_span(LogFormat::Json, None);
    assert_eq!(id, "0".repeat(32), "no trace without a pipeline");
    let span = &lines[0]["span"];
    assert_eq!(span["policy"], "chat");
    assert!(span.get("trace_id").is_none(), "{span}");
}

#[tokio::test]
async fn off_without_an_endpoint_or_when_disabled() {
    let metrics = Metrics::new();
    let none = env_of(vec![]);
    assert!(install(&none, &here(), &metrics).unwrap().is_none());
    let disabled = env_of(vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318".into(),
        ),
        ("OTEL_SDK_DISABLED", "true".into()),
    ]);
    assert!(install(&disabled, &here(), &metrics).unwrap().is_none());
    let bad = env_of(vec![
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://127.0.0.1:4318".into(),
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json".into()),
    ]);
    let err = install(&bad, &here(), &metrics).unwrap_err();
    assert!(err.to_string().contains("http/json"), "{err}");
}

#[tokio::test]
async fn spans_a_collector_refuses_are_counted_as_export_failed() {
    let metrics = Metrics::new();
    let before = metrics.render();
    for r in ["exported", "queue_full", "export_failed"] {
        let series = format!("tollgate_operator_trace_spans_total{{result=\"{r}\"}} 0");
        assert!(before.contains(&series), "{series} missing:\n{before}");
    }
    let env = env_of(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", closed_port()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000".into()),
    ]);
    let pipeline = install(&env, &here(), &metrics).unwrap().unwrap();
    let sub = subscriber(
        LogFormat::Text,
        EnvFilter::new("info"),
        false,
        std::io::sink,
        Some(&pipeline),
    );
    tracing::subscriber::with_default(sub, || {
        for _ in 0..3 {
            tracing::info_span!("reconcile").in_scope(|| {});
        }
    });
    // Shutting down sends what is queued: the refused batch is counted.
    pipeline.shutdown(Duration::from_secs(10)).await;
    let count = |r: &str| metrics.trace_spans.with_label_values(&[r]).get();
    assert_eq!(count("export_failed"), 3);
    assert_eq!(count("exported"), 0);
}
