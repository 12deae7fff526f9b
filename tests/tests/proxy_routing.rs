//! Black-box: aliases, balancing, retries, fallbacks, circuit breaking,
//! rules and shaping — asserting exactly what the mocks saw.

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use serde_json::Value;
use tollgate_tests::mock::Switches;

/// Two OpenAI-style providers, `a` and `b`, each on its own mock, plus a
/// `routing:` section.
fn two_providers(a: &MockServer, b: &MockServer, routing: &str) -> String {
    format!(
        r#"apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
server: {{listen: 127.0.0.1:0, drainDelay: 0s}}
admin: {{listen: 127.0.0.1:0}}
providers:
  - {{name: a, type: openai-compatible, baseUrl: "{}/v1", passthrough: true, models: [a-direct]}}
  - {{name: b, type: openai-compatible, baseUrl: "{}/v1", passthrough: true, models: [b-direct]}}
routing:
{routing}
"#,
        a.url(),
        b.url()
    )
}

async fn open_mock() -> MockServer {
    MockServer::start(MockConfig::default()).await.unwrap()
}

fn models_seen(m: &MockServer) -> Vec<String> {
    m.requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap_or("").to_string())
        .collect()
}

async fn ask(proxy: &ProxyProc, model: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat(model, "route me", false));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn weighted_alias_spreads_within_statistical_bounds() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  routes:\n    - name: chat\n      targets: [{provider: a, model: small, weight: 3}, {provider: b, model: big, weight: 1}]",
    ));
    let n = 400;
    for _ in 0..n {
        let r = ask(&proxy, "chat", &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["x-tollgate-route"], "chat");
    }
    let to_a = a.requests().len();
    assert_eq!(to_a + b.requests().len(), n);
    // Binomial(400, 0.75): mean 300, sd ≈ 8.7; ±5 sd.
    assert!((257..=343).contains(&to_a), "a got {to_a} of {n}");
    assert!(
        models_seen(&a).iter().all(|m| m == "small"),
        "the upstream model replaces the alias"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_requests_total",
            &[("route", "chat"), ("provider", "a")]
        ),
        Some(to_a as f64)
    );
}

/// A failure that ejects the target ends its retries at once: no
/// `Retry-After` wait for an attempt the breaker will not let through; the
/// next target is tried straight away.
#[tokio::test]
async fn no_retry_wait_for_a_target_just_ejected() {
    let (a, b) = (open_mock().await, open_mock().await);
    a.set_defaults(Switches {
        status: Some(503),
        retry_after: Some(2),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 3, initialBackoff: 10ms}\n    circuitBreaker: {consecutiveFailures: 1, baseEjection: 60s}\n  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: b, model: big}]",
    ));
    let started = Instant::now();
    let r = ask(&proxy, "chat", &[]).await;
    assert_eq!(r.status(), 200, "answered by the next target");
    assert_eq!(
        models_seen(&a),
        ["small"],
        "one attempt at the ejected target"
    );
    assert_eq!(models_seen(&b), ["big"]);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_retries_total", &[("target", "a/small")]),
        None,
        "no retry was scheduled"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited out Retry-After: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_429_is_honoured_then_succeeds() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 3, initialBackoff: 10ms}\n  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: b, model: big}]",
    ));
    let started = Instant::now();
    let r = ask(
        &proxy,
        "chat",
        &[
            ("x-mock-fail-first", "2"),
            ("x-mock-scenario", "r429"),
            ("x-mock-status", "429"),
            ("x-mock-retry-after", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "two Retry-After waits: {:?}",
        started.elapsed()
    );
    assert_eq!(
        models_seen(&a),
        ["small", "small", "small"],
        "same target, three attempts"
    );
    assert!(b.requests().is_empty(), "no fallback needed");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_retries_total",
            &[("target", "a/small"), ("reason", "rate_limited")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn exhausted_target_falls_back_in_order() {
    let (a, b) = (open_mock().await, open_mock().await);
    a.set_defaults(Switches {
        status: Some(503),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 2, initialBackoff: 5ms}\n  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: b, model: big}]",
    ));
    let r = ask(&proxy, "chat", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-target"], "b/big");
    assert_eq!(models_seen(&a), ["small", "small"]);
    assert_eq!(models_seen(&b), ["big"]);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_fallbacks_total",
            &[("route", "chat"), ("reason", "target_failed")]
        ),
        Some(1.0)
    );

    // Every target failing: the app sees the provider's last error, not ours.
    b.set_defaults(Switches {
        status: Some(500),
        ..Default::default()
    });
    a.clear();
    b.clear();
    let r = ask(&proxy, "chat", &[]).await;
    assert!(r.status() == 500 || r.status() == 503, "{}", r.status());
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    assert_eq!(
        a.requests().len() + b.requests().len(),
        4,
        "2 attempts on each, never more"
    );
}

#[tokio::test]
async fn resets_before_the_first_byte_are_retried_after_it_end_the_stream_cleanly() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 2, initialBackoff: 5ms}\n  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: b, model: big}]",
    ));
    // Before any byte: retried, then the next target, invisibly to the app.
    a.set_defaults(Switches {
        reset_after_chunks: Some(0),
        ..Default::default()
    });
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("chat", "hi", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
    assert_eq!(a.requests().len(), 2, "retried once on the same target");
    assert_eq!(models_seen(&b), ["big"]);
    a.set_defaults(Switches::default());
    b.clear();

    // After the first event: never switched; the stream ends with an error event.
    a.clear();
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-reset-after-chunks", "2")
        .header("x-mock-chunks", "6")
        .header("x-mock-chunk-interval-ms", "20")
        .json(&chat("chat", "hi", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let last = text.trim_end().rsplit("\n\n").next().unwrap();
    let v: Value = serde_json::from_str(last.strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(v["error"]["code"], "upstream_stream_error", "{text}");
    assert_eq!(
        a.requests().len() + b.requests().len(),
        1,
        "no switch after the first byte"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_stream_errors_total",
            &[("reason", "upstream_reset")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn slow_first_token_and_idle_streams_time_out() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 1}\n    timeouts: {firstByte: 300ms, idle: 300ms}\n  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: b, model: big}]",
    ));
    a.set_defaults(Switches {
        ttft_ms: Some(2000),
        ..Default::default()
    });
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("chat", "hi", true))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-tollgate-target"],
        "b/big",
        "slow first token → next target"
    );
    r.text().await.unwrap();

    // Idle between events after the stream started: error event, not a hang.
    a.set_defaults(Switches::default());
    b.set_defaults(Switches {
        chunk_interval_ms: Some(2000),
        chunks: Some(3),
        ..Default::default()
    });
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunk-interval-ms", "2000")
        .json(&chat("b-direct", "hi", true))
        .send()
        .await
        .unwrap();
    let started = Instant::now();
    let text = r.text().await.unwrap();
    assert!(started.elapsed() < Duration::from_millis(1500));
    assert!(text.contains("idle timeout"), "{text}");
}

#[tokio::test]
async fn context_length_errors_go_to_the_long_context_target() {
    let (a, b) = (open_mock().await, open_mock().await);
    a.set_defaults(Switches {
        error: Some(tollgate_tests::mock::ErrorSwitch::ContextLength),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: a, model: medium}, {provider: b, model: huge, longContext: true}]",
    ));
    let r = ask(&proxy, "chat", &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-tollgate-target"], "b/huge");
    assert_eq!(
        a.requests().len(),
        1,
        "one refusal is enough; no retry of a context error"
    );
    assert_eq!(models_seen(&b), ["huge"]);
}

#[tokio::test]
async fn breaker_opens_skips_half_opens_and_closes() {
    let (a, b) = (open_mock().await, open_mock().await);
    a.set_defaults(Switches {
        status: Some(503),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 1}\n    circuitBreaker: {consecutiveFailures: 2, baseEjection: 2s}\n  routes:\n    - name: chat\n      strategy: round-robin\n      targets: [{provider: a, model: small}, {provider: b, model: big}]",
    ));
    for _ in 0..4 {
        assert_eq!(ask(&proxy, "chat", &[]).await.status(), 200);
    }
    let seen_a = a.requests().len();
    assert_eq!(seen_a, 2, "ejected after two failures");
    for _ in 0..6 {
        assert_eq!(ask(&proxy, "chat", &[]).await.status(), 200);
    }
    assert_eq!(a.requests().len(), 2, "skipped while ejected");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_target_ejected", &[("target", "a/small")]),
        Some(1.0)
    );
    // Recover, wait out the ejection, probe, close.
    a.set_defaults(Switches::default());
    wait_for(
        "the probe to close the breaker",
        Duration::from_secs(10),
        || async {
            ask(&proxy, "chat", &[]).await;
            let m = proxy.metrics().await;
            (metric(
                &m,
                "tollgate_circuit_transitions_total",
                &[("target", "a/small"), ("to", "closed")],
            ) == Some(1.0))
            .then_some(())
        },
    )
    .await;
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_circuit_transitions_total",
            &[("target", "a/small"), ("to", "half_open")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "tollgate_target_ejected", &[("target", "a/small")]),
        Some(0.0)
    );
}

#[tokio::test]
async fn all_targets_ejected_fails_fast() {
    let (a, b) = (open_mock().await, open_mock().await);
    a.set_defaults(Switches {
        status: Some(500),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  defaults:\n    retry: {maxAttempts: 1}\n    circuitBreaker: {consecutiveFailures: 1, baseEjection: 60s}\n  routes:\n    - name: solo\n      targets: [{provider: a, model: small}]",
    ));
    assert_eq!(ask(&proxy, "solo", &[]).await.status(), 500);
    let r = ask(&proxy, "solo", &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "1");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "all_targets_ejected");
    assert_eq!(a.requests().len(), 1);
}

#[tokio::test]
async fn rules_route_by_header_and_prompt_size_and_shaping_applies() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        r#"  routes:
    - name: chat
      targets: [{provider: a, model: cheap}]
      rules:
        - {name: premium, when: {header: {name: x-tollgate-tier, values: [premium]}}, route: strong}
        - {name: long, when: {promptTokensAbove: 50}, route: strong}
      shaping: {maxTokens: 100, set: {temperature: 0}, strip: [logit_bias]}
    - name: strong
      targets: [{provider: b, model: expensive}]"#,
    ));
    let r = ask(&proxy, "chat", &[]).await;
    assert_eq!(r.headers()["x-tollgate-route"], "chat");
    let r = ask(&proxy, "chat", &[("x-tollgate-tier", "Premium")]).await;
    assert_eq!(r.headers()["x-tollgate-route"], "strong");
    let long = "word ".repeat(100);
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("chat", &long, false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-tollgate-route"], "strong");
    assert_eq!(models_seen(&a), ["cheap"]);
    assert_eq!(models_seen(&b), ["expensive", "expensive"]);
    // Shaping on the cheap route: cap, force, strip.
    a.clear();
    let mut body = chat("chat", "hi", false);
    body["max_tokens"] = 5000.into();
    body["temperature"] = 1.5.into();
    body["logit_bias"] = serde_json::json!({"50256": -100});
    client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&body)
        .send()
        .await
        .unwrap();
    let sent = a.requests()[0].json();
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(sent["temperature"], 0);
    assert!(sent.get("logit_bias").is_none());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_route_rule_matches_total",
            &[("route", "chat"), ("rule", "long")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn shadow_traffic_mirrors_compares_and_never_delays() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  routes:\n    - name: chat\n      targets: [{provider: a, model: small}]\n      shadow: {provider: b, model: shadowy, share: 1.0, queueSize: 1}",
    ));
    // Non-streaming primary.
    assert_eq!(ask(&proxy, "chat", &[]).await.status(), 200);
    let m = wait_for("the shadow result", Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        metric(
            &m,
            "tollgate_shadow_agreement_count",
            &[("route", "chat"), ("measure", "token_f1")],
        )
        .map(|_| m)
    })
    .await;
    assert_eq!(
        metric(
            &m,
            "tollgate_shadow_requests_total",
            &[("route", "chat"), ("result", "ok")]
        ),
        Some(1.0)
    );
    let f1 = metric(
        &m,
        "tollgate_shadow_agreement_sum",
        &[("route", "chat"), ("measure", "token_f1")],
    )
    .unwrap();
    assert!(
        f1 > 0.3 && f1 < 1.0,
        "similar but not identical replies: {f1}"
    );
    let mirrored = &b.requests()[0];
    assert_eq!(mirrored.json()["model"], "shadowy");
    assert_eq!(mirrored.json()["stream"], false);
    assert_eq!(a.requests().len(), 1, "the primary is sent once");
    assert!(
        metric(
            &m,
            "tollgate_tokens_total",
            &[("model", "chat"), ("provider", "b")]
        )
        .is_none(),
        "shadow usage is kept apart"
    );

    // Streaming primary: its streamed text is compared.
    let r = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("chat", "stream me", true))
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("[DONE]"));
    wait_for("the second comparison", Duration::from_secs(10), || async {
        let m = proxy.metrics().await;
        (metric(
            &m,
            "tollgate_shadow_agreement_count",
            &[("route", "chat"), ("measure", "token_f1")],
        ) == Some(2.0))
        .then_some(())
    })
    .await;
    assert_eq!(b.requests()[1].json()["stream"], false);

    // A slow shadow never holds up the primary, and a full queue drops mirrors.
    b.set_defaults(Switches {
        latency_ms: Some(3000),
        ..Default::default()
    });
    for _ in 0..3 {
        assert_eq!(ask(&proxy, "chat", &[]).await.status(), 200);
    }
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_shadow_requests_total",
            &[("route", "chat"), ("result", "ok")]
        ),
        Some(2.0),
        "the primaries returned while the slow mirror was still out"
    );
    assert_eq!(
        metric(&m, "tollgate_shadow_dropped_total", &[("route", "chat")]),
        Some(2.0)
    );
}

/// The `gen_ai_*` metrics carry the model asked for and the model that
/// answered; an OpenAI-compatible provider has no well-known
/// `gen_ai_provider_name`, so its config name stands in.
#[tokio::test]
async fn gen_ai_metrics_name_the_requested_and_the_response_model() {
    let (a, b) = (open_mock().await, open_mock().await);
    let proxy = ProxyProc::start(&two_providers(
        &a,
        &b,
        "  routes:\n    - name: chat\n      targets: [{provider: b, model: big}]",
    ));
    assert_eq!(ask(&proxy, "chat", &[]).await.status(), 200);
    let m = proxy.metrics().await;
    let labels = [
        ("gen_ai_request_model", "chat"),
        ("gen_ai_response_model", "big"),
        ("gen_ai_provider_name", "b"),
        ("tollgate_provider", "b"),
    ];
    assert_eq!(
        metric(
            &m,
            "gen_ai_client_operation_duration_seconds_count",
            &labels
        ),
        Some(1.0),
        "{m}"
    );
    let tokens = [&labels[..], &[("gen_ai_token_type", "output")]].concat();
    assert_eq!(
        metric(&m, "gen_ai_client_token_usage_count", &tokens),
        Some(1.0)
    );
}

/// Without per-model histograms (switched by a reload) the `gen_ai_*`
/// histograms leave both models empty; the counters keep theirs.
#[tokio::test]
async fn per_model_histograms_can_be_switched_off_by_a_reload() {
    let (a, b) = (open_mock().await, open_mock().await);
    let routing = "  routes:\n    - name: chat\n      targets: [{provider: b, model: big}]";
    let on = two_providers(&a, &b, routing);
    let proxy = ProxyProc::start(&on);
    let first = proxy.config_hash().await;
    proxy.write_config(&format!("{on}metrics: {{perModelHistograms: false}}\n"));
    wait_for("the reload", Duration::from_secs(10), || async {
        (proxy.config_hash().await != first).then_some(())
    })
    .await;
    assert_eq!(ask(&proxy, "chat", &[]).await.status(), 200);
    let m = proxy.metrics().await;
    let count = |model: &str, response: &str| {
        metric(
            &m,
            "gen_ai_client_operation_duration_seconds_count",
            &[
                ("gen_ai_request_model", model),
                ("gen_ai_response_model", response),
                ("tollgate_provider", "b"),
            ],
        )
    };
    assert_eq!(count("", ""), Some(1.0), "{m}");
    assert_eq!(count("chat", "big"), None);
    assert_eq!(
        metric(&m, "tollgate_requests_total", &[("model", "chat")]),
        Some(1.0)
    );
}
