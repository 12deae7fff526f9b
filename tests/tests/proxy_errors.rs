//! Black-box: bad input and upstream trouble get clear, provider-shaped errors.

mod harness;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use harness::*;
use serde_json::{json, Value};

async fn post_raw(url: &str, path: &str, body: &'static [u8]) -> (u16, Value) {
    let resp = client()
        .post(format!("{url}{path}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn malformed_requests_are_400_naming_the_problem() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "", ""));
    let (s, v) = post_raw(
        &proxy.url,
        "/v1/chat/completions",
        b"{\"model\": \"gpt-4o-mini\", ",
    )
    .await;
    assert_eq!(s, 400);
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "invalid_json");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("line 1"),
        "{v}"
    );

    let (s, v) = post_raw(&proxy.url, "/v1/chat/completions", br#"{"messages": []}"#).await;
    assert_eq!((s, v["error"]["param"].as_str()), (400, Some("model")));

    let (s, v) = post_raw(
        &proxy.url,
        "/v1/chat/completions",
        br#"{"model": "gpt-4o-mini", "stream": "yes"}"#,
    )
    .await;
    assert_eq!(s, 400);
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`stream`"),
        "{v}"
    );

    // Anthropic endpoints answer in Anthropic's shape.
    let (s, v) = post_raw(&proxy.url, "/v1/messages", b"not json").await;
    assert_eq!(s, 400);
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(
        mock.requests().is_empty(),
        "nothing malformed reaches the provider"
    );
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_proxy_errors_total",
            &[("reason", "malformed_json")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn unknown_models_are_404_model_not_found() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "", ""));
    let (s, v) = post_raw(
        &proxy.url,
        "/v1/chat/completions",
        br#"{"model": "gpt-9", "messages": []}"#,
    )
    .await;
    assert_eq!(s, 404);
    assert_eq!(v["error"]["code"], "model_not_found");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-4o-mini"),
        "lists what exists: {v}"
    );
    let (s, v) = post_raw(
        &proxy.url,
        "/v1/chat/completions",
        br#"{"model": "claude-sonnet-4-5", "messages": []}"#,
    )
    .await;
    assert_eq!(s, 404);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Anthropic Messages API"),
        "{v}"
    );
    let (s, v) = post_raw(
        &proxy.url,
        "/v1/messages",
        br#"{"model": "gpt-4o-mini", "max_tokens": 5, "messages": []}"#,
    )
    .await;
    assert_eq!(
        (s, v["error"]["type"].as_str()),
        (404, Some("not_found_error"))
    );
    assert!(mock.requests().is_empty());
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_requests_total",
            &[("model", "unknown"), ("status_class", "4xx")]
        ),
        Some(3.0),
        "unknown model names never become label values"
    );
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "  maxRequestBody: 1Ki", ""));
    let big = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(4096)}]});
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "request_too_large");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1024-byte"));
    // Chunked, no content-length: caught while reading.
    let chunks =
        futures_util::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])));
    let resp = client()
        .post(format!("{}/v1/messages", proxy.url))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "request_too_large");
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn paths_methods_and_forwarding() {
    let mock = mock().await;
    let forwarding = ProxyProc::start(&config(&mock.url(), "", "defaultProvider: openai"));
    let c = client();
    let r = c
        .get(format!("{}/v1/files?purpose=batch", forwarding.url))
        .bearer_auth("app")
        .send()
        .await
        .unwrap();
    let _ = r.status();
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/v1/files");
    assert_eq!(seen[0].query.as_deref(), Some("purpose=batch"));
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );

    let rejecting = ProxyProc::start(&config(
        &mock.url(),
        "",
        "defaultProvider: openai\nunknownPaths: reject",
    ));
    let r = c
        .get(format!("{}/v1/files", rejecting.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknownPaths: reject"));
    let r = c
        .get(format!("{}/v1/chat/completions", rejecting.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let r = c
        .get(format!("{}/nope", rejecting.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn upstream_errors_pass_through_intact() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "", ""));
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-status", "429")
        .header("x-mock-retry-after", "7")
        .json(&chat("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"].is_string());
    let resp = client()
        .post(format!("{}/v1/messages", proxy.url))
        .header("x-mock-status", "529")
        .json(&messages("claude-sonnet-4-5", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 529);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn dead_upstream_is_502_and_slow_upstream_is_504() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let proxy = ProxyProc::start(&config(&dead, "", ""));
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "upstream_unreachable");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("provider `openai`"));

    let mock = mock().await;
    let slow = ProxyProc::start(&config(&mock.url(), "", "").replace(
        "credentialRefreshInterval: 1s",
        "credentialRefreshInterval: 1s, responseHeaderTimeout: 200ms",
    ));
    let resp = client()
        .post(format!("{}/v1/messages", slow.url))
        .header("x-mock-latency-ms", "3000")
        .json(&messages("claude-sonnet-4-5", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 504);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
}

#[tokio::test]
async fn concurrency_limit_is_503_with_retry_after() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "  maxConcurrentRequests: 1", ""));
    let c = client();
    let held = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunks", "50")
        .header("x-mock-chunk-interval-ms", "100")
        .json(&chat("gpt-4o-mini", "hold", true))
        .send()
        .await
        .unwrap();
    let mut held = held.bytes_stream();
    held.next().await.unwrap().unwrap();
    let resp = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "overloaded");
    drop(held);
    // The slot frees when the stream ends.
    wait_for("the slot to free", Duration::from_secs(5), || async {
        let r = c
            .post(format!("{}/v1/chat/completions", proxy.url))
            .json(&chat("gpt-4o-mini", "hi", false))
            .send()
            .await
            .unwrap();
        (r.status() == 200).then_some(())
    })
    .await;
}

#[tokio::test]
async fn slow_header_senders_are_cut_off() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "  headerReadTimeout: 300ms", ""));
    let addr = proxy.url.trim_start_matches("http://").to_string();
    let started = Instant::now();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
            .unwrap();
        let mut buf = Vec::new();
        // The proxy must close the connection (or answer 408) on its own.
        let r = s.read_to_end(&mut buf);
        (r.is_ok(), String::from_utf8_lossy(&buf).to_string())
    })
    .await
    .unwrap();
    let took = started.elapsed();
    assert!(outcome.0, "connection was not closed by the proxy");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(
        outcome.1.is_empty() || outcome.1.starts_with("HTTP/1.1 408"),
        "{}",
        outcome.1
    );
}

#[tokio::test]
async fn tls_upstream_with_an_extra_ca_bundle() {
    let mock = MockServer::start(MockConfig {
        openai_key: Some(OPENAI_KEY.into()),
        anthropic_key: Some(ANTHROPIC_KEY.into()),
        tls: true,
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(mock.url().starts_with("https://"));
    // Without the CA the certificate is refused: a clear 502, no request lands.
    let untrusting = ProxyProc::start(&config(&mock.url(), "", ""));
    let resp = client()
        .post(format!("{}/v1/chat/completions", untrusting.url))
        .json(&chat("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 502);
    let v: Value = resp.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("certificate"),
        "{v}"
    );
    assert!(mock.requests().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, mock.ca_pem().unwrap()).unwrap();
    let cfg = config(&mock.url(), "", "").replace(
        "credentialRefreshInterval: 1s",
        &format!(
            "credentialRefreshInterval: 1s, extraCaFile: {}",
            ca.display()
        ),
    );
    let trusting = ProxyProc::start(&cfg);
    let resp = client()
        .post(format!("{}/v1/chat/completions", trusting.url))
        .json(&chat("gpt-4o-mini", "over tls", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"));
    assert_eq!(mock.requests().len(), 1);
}
