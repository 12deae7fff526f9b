//! Black-box: OpenTelemetry traces of requests, exported over OTLP (HTTP
//! and gRPC) to a real Jaeger and read back through its query API.

mod harness;

use std::time::Duration;

use harness::*;
use serde_json::Value;
use tollgate_tests::jaeger::{Jaeger, Trace};

const APP_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const APP_SPAN: &str = "00f067aa0ba902b7";
const PROMPT: &str = "Write to maria.gonzalez@example.org about the toll road bonds";

/// Spans leave in small batches at once, so the tests wait on Jaeger only.
const FAST_EXPORT: &[(&str, &str)] = &[("OTEL_BSP_SCHEDULE_DELAY", "50")];

fn traced(mock_url: &str, endpoint: &str, protocol: &str, service: &str, extra: &str) -> String {
    config(
        mock_url,
        "",
        &format!(
            "tracing:\n  otlp: {{endpoint: '{endpoint}', protocol: {protocol}}}\n  serviceName: {service}\n{extra}"
        ),
    )
}

/// Everything a request can meet: PII, the cache, budgets, a route whose
/// first attempt fails and is retried.
const FEATURES: &str = r#"pii:
  action: mask
cache:
  ttl: 1h
budgets:
  limits:
    - {name: monthly, scope: policy, window: month, usd: 1000}
routing:
  routes:
    - name: assistant
      targets:
        - {provider: openai, model: gpt-4o-mini}
      retry: {maxAttempts: 2, initialBackoff: 1ms, maxBackoff: 2ms}
"#;

/// Waits until the proxy counts at least `n` spans it failed to export;
/// its metrics then.
async fn failed_exports_reach(proxy: &ProxyProc, n: f64) -> String {
    wait_for(
        "failed exports counted",
        Duration::from_secs(30),
        || async {
            let m = proxy.metrics().await;
            let failed = metric(
                &m,
                "tollgate_trace_spans_total",
                &[("result", "export_failed")],
            )?;
            (failed >= n).then_some(m)
        },
    )
    .await
}

fn span_names(t: &Trace) -> Vec<String> {
    let mut n: Vec<String> = t.spans().iter().map(|s| s.name().to_string()).collect();
    n.sort();
    n
}

#[tokio::test]
async fn a_request_is_one_trace_from_app_to_provider_over_otlp_http() {
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let mock = mock().await;
    let service = "tg-trace-http";
    let proxy = ProxyProc::start_env(
        &traced(
            &mock.url(),
            &jaeger.http_url(),
            "http/protobuf",
            service,
            FEATURES,
        ),
        FAST_EXPORT,
    );
    let mut body = chat("assistant", PROMPT, false);
    body["temperature"] = 0.into();
    body["max_tokens"] = 50.into();
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("traceparent", format!("00-{APP_TRACE}-{APP_SPAN}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .header("x-mock-fail-first", "1")
        .header("x-mock-scenario", "trace-http")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: Value = resp.json().await.unwrap();

    let traces = jaeger
        .wait_for(service, |ts| {
            ts.iter()
                .any(|t| t.id() == APP_TRACE && t.named("budget.settle").len() == 1)
        })
        .await;
    let t = traces.iter().find(|t| t.id() == APP_TRACE).unwrap();
    assert_eq!(
        span_names(t),
        [
            "budget.admit",
            "budget.settle",
            "cache.lookup",
            "chat assistant",
            "chat gpt-4o-mini",
            "chat gpt-4o-mini",
            "pii.filter"
        ],
        "{:#?}",
        t.summary()
    );
    // The server span continues the app's trace: its parent is the app's span.
    let root = &t.named("chat assistant")[0];
    assert_eq!(root.parent().as_deref(), Some(APP_SPAN));
    assert_eq!(t.service_of(root), service);
    // Every phase is a child of the server span; the two attempts are
    // siblings, the first failed and the second retried it.
    for s in t.spans().iter().filter(|s| s.id() != root.id()) {
        assert_eq!(s.parent().as_deref(), Some(root.id()), "{}", s.name());
    }
    let mut attempts = t.named("chat gpt-4o-mini");
    attempts.sort_by_key(|s| s.start_us());
    assert_eq!(
        attempts[0].tag_str("tollgate.attempt.reason").as_deref(),
        Some("first")
    );
    assert_eq!(
        attempts[0].tag_str("error.type").as_deref(),
        Some("server_error")
    );
    assert_eq!(
        attempts[0].tag_str("otel.status_code").as_deref(),
        Some("ERROR")
    );
    assert_eq!(
        attempts[1].tag_str("tollgate.attempt.reason").as_deref(),
        Some("retry")
    );
    assert_eq!(
        attempts[1]
            .tag_str("tollgate.attempt.previous_error")
            .as_deref(),
        Some("server_error")
    );
    assert_eq!(attempts[1].tag_i64("http.response.status_code"), Some(200));
    assert_eq!(attempts[1].tag_str("span.kind").as_deref(), Some("client"));
    assert_eq!(
        attempts[1].tag_str("server.address").as_deref(),
        Some("127.0.0.1")
    );

    // The provider saw each attempt's own span as its parent, in the app's trace.
    let seen = mock.requests();
    assert_eq!(seen.len(), 2);
    for (req, span) in seen.iter().zip(&attempts) {
        assert_eq!(
            req.header("traceparent"),
            Some(format!("00-{APP_TRACE}-{}-01", span.id()).as_str())
        );
        assert_eq!(req.header("tracestate"), Some("congo=t61rcWkgMzE"));
    }

    // GenAI attributes on the server span, from what the request did.
    let tag = |k: &str| root.tag_str(k);
    assert_eq!(tag("gen_ai.operation.name").as_deref(), Some("chat"));
    assert_eq!(tag("gen_ai.provider.name").as_deref(), Some("openai"));
    assert_eq!(tag("gen_ai.request.model").as_deref(), Some("assistant"));
    assert_eq!(tag("gen_ai.response.model").as_deref(), Some("gpt-4o-mini"));
    assert_eq!(root.tag_i64("gen_ai.request.max_tokens"), Some(50));
    assert_eq!(
        root.tag_i64("gen_ai.usage.input_tokens"),
        answer["usage"]["prompt_tokens"].as_i64()
    );
    assert_eq!(
        root.tag_i64("gen_ai.usage.output_tokens"),
        answer["usage"]["completion_tokens"].as_i64()
    );
    assert_eq!(root.tag_i64("http.response.status_code"), Some(200));
    assert_eq!(tag("tollgate.route").as_deref(), Some("assistant"));
    assert_eq!(
        tag("tollgate.target").as_deref(),
        Some("openai/gpt-4o-mini")
    );
    assert_eq!(root.tag_i64("tollgate.attempts"), Some(2));
    assert_eq!(tag("tollgate.cache.result").as_deref(), Some("miss"));
    assert_eq!(tag("tollgate.budget.decision").as_deref(), Some("admitted"));
    assert_eq!(root.tag_i64("tollgate.pii.email"), Some(1));
    assert!(
        root.tag("tollgate.cost_usd")
            .and_then(|v| v.as_f64())
            .unwrap()
            > 0.0
    );
    assert_eq!(tag("span.kind").as_deref(), Some("server"));
    assert_eq!(
        t.named("pii.filter")[0].tag_i64("tollgate.pii.email"),
        Some(1)
    );
    assert_eq!(
        t.named("budget.settle")[0]
            .tag_str("tollgate.budget.settlement")
            .as_deref(),
        Some("reported")
    );

    // Nothing the app wrote is in any byte Jaeger keeps of the trace,
    // nor the provider key.
    let raw = jaeger.raw(&format!("/api/traces/{APP_TRACE}")).await;
    for secret in ["maria", "toll road", "bonds", OPENAI_KEY] {
        assert!(!raw.contains(secret), "`{secret}` in the exported trace");
    }

    // The access line names the trace and the span.
    let log = proxy.log();
    let line = log
        .lines()
        .find(|l| l.contains("tollgate::access"))
        .unwrap_or_default()
        .to_string();
    for field in [
        format!("trace_id=\"{APP_TRACE}\""),
        format!("span_id=\"{}\"", root.id()),
        "pii=\"email:1\"".to_string(),
        "budget=\"admitted\"".to_string(),
    ] {
        assert!(line.contains(&field), "{field} not in {line}\n{log}");
    }

    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_trace_spans_total", &[("result", "exported")]),
        Some(7.0),
        "{m}"
    );
}

#[tokio::test]
async fn grpc_export_a_new_trace_and_sampling() {
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let mock = mock().await;
    let service = "tg-trace-grpc";
    // A share of 0: only traces the app sampled are recorded.
    let proxy = ProxyProc::start_env(
        &traced(
            &mock.url(),
            &jaeger.grpc_url(),
            "grpc",
            service,
            "  sampleRatio: 0\n",
        ),
        FAST_EXPORT,
    );
    let send = |traceparent: Option<String>, stream: bool| {
        let mut req = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("gpt-4o-mini", "hello", stream));
        if let Some(tp) = traceparent {
            req = req.header("traceparent", tp);
        }
        req.send()
    };
    // Not sampled by the app, none recorded; the provider still gets ids.
    let r = send(None, false).await.unwrap();
    assert_eq!(r.status(), 200);
    let unsampled_trace = "0af7651916cd43dd8448eb211c80319c";
    let r = send(
        Some(format!("00-{unsampled_trace}-b7ad6b7169203331-00")),
        false,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    // Sampled by the app: recorded, a stream this time.
    let sampled_trace = "5b8efff798038103d269b633813fc60c";
    let r = send(
        Some(format!("00-{sampled_trace}-eee19b7ec3c1b174-01")),
        true,
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.contains("[DONE]"), "{text}");

    let traces = jaeger
        .wait_for(service, |ts| ts.iter().any(|t| t.id() == sampled_trace))
        .await;
    assert_eq!(traces.len(), 1, "only the app-sampled trace: {traces:#?}");
    let t = &traces[0];
    let root = &t
        .named("chat gpt-4o-mini")
        .into_iter()
        .find(|s| s.tag_str("span.kind").as_deref() == Some("server"))
        .unwrap()
        .clone();
    assert_eq!(root.tag_str("tollgate.stream").as_deref(), Some("true"));
    assert!(root.tag("tollgate.time_to_first_chunk_ms").is_some());

    let seen = mock.requests();
    assert_eq!(seen.len(), 3);
    // A request without a traceparent still gets one (a new trace, not sampled).
    let first = seen[0].header("traceparent").unwrap();
    assert!(
        first.starts_with("00-") && first.ends_with("-00"),
        "{first}"
    );
    assert!(!first.contains(unsampled_trace));
    let second = seen[1].header("traceparent").unwrap();
    assert!(second.starts_with(&format!("00-{unsampled_trace}-")) && second.ends_with("-00"));
    let third = seen[2].header("traceparent").unwrap();
    assert!(third.starts_with(&format!("00-{sampled_trace}-")) && third.ends_with("-01"));
}

#[tokio::test]
async fn a_collector_that_is_down_costs_requests_nothing_and_drops_are_counted() {
    let mock = mock().await;
    // A port nothing listens on.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let proxy = ProxyProc::start_env(
        &traced(
            &mock.url(),
            &format!("http://127.0.0.1:{dead}"),
            "grpc",
            "tg-trace-down",
            "",
        ),
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "500"),
        ],
    );
    for i in 0..20 {
        let r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("gpt-4o-mini", &format!("hello {i}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let m = failed_exports_reach(&proxy, 20.0).await;
    assert_eq!(
        metric(&m, "tollgate_trace_spans_total", &[("result", "exported")]),
        None,
        "{m}"
    );
}

#[tokio::test]
async fn a_provider_can_be_kept_out_of_the_trace() {
    let Some(jaeger) = Jaeger::start().await else {
        return;
    };
    let mock = mock().await;
    let cfg = traced(
        &mock.url(),
        &jaeger.http_url(),
        "http/protobuf",
        "tg-trace-off",
        "",
    )
    .replace(
        "models: [claude-sonnet-4-5]",
        "models: [claude-sonnet-4-5]\n    propagateTrace: false",
    );
    let proxy = ProxyProc::start_env(&cfg, FAST_EXPORT);
    let r = client()
        .post(format!("{}/v1/messages", proxy.url))
        .header("traceparent", format!("00-{APP_TRACE}-{APP_SPAN}-01"))
        .header("tracestate", "congo=t61rcWkgMzE")
        .json(&messages("claude-sonnet-4-5", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen = mock.requests();
    assert_eq!(seen[0].header("traceparent"), None);
    assert_eq!(seen[0].header("tracestate"), None);
    // The request is traced all the same, with the Anthropic attributes.
    let traces = jaeger
        .wait_for("tg-trace-off", |ts| ts.iter().any(|t| t.id() == APP_TRACE))
        .await;
    let root = traces[0].named("chat claude-sonnet-4-5");
    let server = root
        .iter()
        .find(|s| s.tag_str("span.kind").as_deref() == Some("server"))
        .unwrap();
    assert_eq!(
        server.tag_str("gen_ai.provider.name").as_deref(),
        Some("anthropic")
    );
}

/// OTLP over TLS with a private CA and a client certificate (the collector
/// requires one), both protocols, and the headers of
/// `OTEL_EXPORTER_OTLP_HEADERS` arriving at the collector (it copies one
/// into the spans it keeps). A proxy without the client certificate cannot
/// export, and its requests do not notice.
#[tokio::test]
async fn export_over_mutual_tls_with_headers_from_the_environment() {
    let pki = tollgate_tests::pki::Pki::generate();
    let Some(jaeger) = Jaeger::start_with(tollgate_tests::jaeger::Options {
        tls: Some(tollgate_tests::jaeger::ReceiverTls {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: Some(pki.ca.clone()),
        }),
        copy_header: Some("x-tenant".into()),
    })
    .await
    else {
        return;
    };
    let mock = mock().await;
    let ca = pki.ca.display().to_string();
    let cert = pki.client_cert.display().to_string();
    let key = pki.client_key.display().to_string();
    for (protocol, url) in [
        ("grpc", jaeger.grpc_url()),
        ("http/protobuf", jaeger.http_url()),
    ] {
        assert!(url.starts_with("https://"), "{url}");
        let service = format!("tg-trace-tls-{}", protocol.replace('/', "-"));
        let env = [
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", protocol),
            ("OTEL_SERVICE_NAME", service.as_str()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", cert.as_str()),
            ("OTEL_EXPORTER_OTLP_CLIENT_KEY", key.as_str()),
            // Percent-encoded as W3C baggage: "team a/1".
            ("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=team%20a%2F1"),
        ];
        let proxy = ProxyProc::start_env(&config(&mock.url(), "", ""), &env);
        let r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("gpt-4o-mini", "hello over tls", false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let traces = jaeger.wait_for(&service, |t| !t.is_empty()).await;
        let spans = traces[0].spans();
        let server = spans
            .iter()
            .find(|s| s.tag_str("span.kind").as_deref() == Some("server"))
            .expect("the request's span");
        assert_eq!(
            server.tag_str("received.x-tenant").as_deref(),
            Some("team a/1"),
            "{protocol}: the header reached the collector decoded"
        );
        let log = proxy.log();
        assert!(
            !log.contains("team a"),
            "{protocol}: a header value was logged: {log}"
        );
    }

    // Without the client certificate the collector refuses the handshake.
    let url = jaeger.grpc_url();
    let proxy = ProxyProc::start_env(
        &config(&mock.url(), "", ""),
        &[
            ("OTEL_BSP_SCHEDULE_DELAY", "50"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "1000"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", url.as_str()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_SERVICE_NAME", "tg-trace-tls-refused"),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", ca.as_str()),
        ],
    );
    for i in 0..3 {
        let r = client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("gpt-4o-mini", &format!("refused {i}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    failed_exports_reach(&proxy, 3.0).await;
    assert!(jaeger.traces("tg-trace-tls-refused").await.is_empty());
}
