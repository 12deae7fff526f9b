//! Request traces: the app's trace continued, propagation when sampled
//! out, W3C formatting, malformed parents and failure statuses.

use super::*;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider};

fn tracer(sampler: Sampler) -> (Tracer, InMemorySpanExporter, SdkTracerProvider) {
    let exporter = InMemorySpanExporter::default();
    let sampling = Sampling::new(sampler);
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(sampling.sampler())
        .with_id_generator(sampling.ids())
        .build();
    (
        Tracer::new(provider.tracer("t"), sampling),
        exporter,
        provider,
    )
}

fn headers(traceparent: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_str(traceparent).unwrap());
    h.insert("tracestate", HeaderValue::from_static("vendor=abc"));
    h
}

const APP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn the_apps_trace_continues_and_the_attempt_is_the_providers_parent() {
    let (t, exported, _p) = tracer(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let r = t.request(&headers(APP), &http::Method::POST);
    assert!(r.recording());
    let (trace_id, root_id) = r.ids();
    assert_eq!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    let attempt = r.phase("chat m", SpanKind::Client);
    let p = attempt.propagation().unwrap();
    let tp = p.traceparent.to_str().unwrap().to_string();
    assert!(
        tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "{tp}"
    );
    assert!(tp.ends_with("-01"), "{tp}");
    // The app's vendor state travels on.
    assert_eq!(p.tracestate.unwrap(), "vendor=abc");
    drop(attempt);
    r.end(Some("chat m".into()), None);
    let spans = exported.get_finished_spans().unwrap();
    let attempt = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    let root = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(attempt.parent_span_id, root.span_context.span_id());
    assert_eq!(root.span_context.span_id().to_string(), root_id);
    assert_eq!(
        root.parent_span_id.to_string(),
        "00f067aa0ba902b7",
        "the app's span is the server span's parent"
    );
    assert!(tp.contains(&attempt.span_context.span_id().to_string()));
}

#[test]
fn an_unsampled_app_trace_is_followed_and_still_propagated() {
    let (t, exported, _p) = tracer(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let r = t.request(
        &headers("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
        &http::Method::POST,
    );
    assert!(!r.recording());
    let attempt = r.phase("chat m", SpanKind::Client);
    assert!(!attempt.recording());
    let tp = attempt.propagation().unwrap().traceparent;
    assert!(tp.to_str().unwrap().ends_with("-00"), "{tp:?}");
    drop(attempt);
    r.end(Some("chat m".into()), Some("upstream_error"));
    assert!(exported.get_finished_spans().unwrap().is_empty());
}

#[test]
fn a_request_sampled_out_gets_ids_to_propagate_and_no_span() {
    let (t, exported, _p) = tracer(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        0.0,
    ))));
    let r = t.request(&HeaderMap::new(), &http::Method::POST);
    assert!(!r.recording());
    let (trace_id, span_id) = r.ids();
    assert_ne!(trace_id, "00000000000000000000000000000000");
    assert_ne!(span_id, "0000000000000000");
    let attempt = r.phase("chat m", SpanKind::Client);
    let tp = attempt.propagation().unwrap().traceparent;
    assert_eq!(
        tp.to_str().unwrap(),
        format!("00-{trace_id}-{span_id}-00"),
        "the provider's parent is the request, not sampled"
    );
    let shadow = t.linked("shadow".into(), SpanKind::Client, Some(&r));
    assert!(!shadow.recording());
    drop((attempt, shadow));
    r.end(Some("chat m".into()), None);
    assert!(exported.get_finished_spans().unwrap().is_empty());
}

#[test]
fn traceparent_is_written_as_w3c_says() {
    let t = traceparent(
        &[0x4b; 16],
        &[0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7],
        1,
    );
    assert_eq!(t, "00-4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b4b-00f067aa0ba902b7-01");
}

#[test]
fn a_malformed_traceparent_starts_a_new_trace() {
    let (t, _exported, _p) = tracer(Sampler::AlwaysOn);
    for bad in [
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let r = t.request(&headers(bad), &http::Method::POST);
        let (trace_id, _) = r.ids();
        assert_ne!(trace_id, "4bf92f3577b34da6a3ce929d0e0e4736", "{bad}");
        assert_ne!(trace_id, "00000000000000000000000000000000", "{bad}");
        assert!(r.recording());
    }
}

#[test]
fn a_failed_request_says_why_in_status_and_error_type() {
    let (t, exported, _p) = tracer(Sampler::AlwaysOn);
    let r = t.request(&HeaderMap::new(), &http::Method::POST);
    let mut phase = r.phase("budget.admit", SpanKind::Internal);
    phase.fail("budget_exceeded");
    drop(phase);
    r.end(Some("chat m".into()), Some("budget_exceeded"));
    let spans = exported.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 2);
    for s in &spans {
        assert!(
            matches!(&s.status, Status::Error { description } if description == "budget_exceeded")
        );
        assert!(s
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "error.type" && kv.value.as_str() == "budget_exceeded"));
    }
    assert!(spans.iter().any(|s| s.name == "chat m"));
}
