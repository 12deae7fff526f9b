//! The fault switches: injected statuses, context-length errors, fail-first
//! sequences, connection resets and malformed SSE.

mod mock_common;

use std::time::Duration;

use futures_util::StreamExt;
use mock_common::*;
use serde_json::{json, Value};

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream,
           "messages": [{"role": "user", "content": "switch test"}]})
}

fn message(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "switch test"}]})
}

#[tokio::test]
async fn status_and_retry_after_in_each_api_shape() {
    let mock = open_mock().await;
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-status", "429"), ("x-mock-retry-after", "7")],
    )
    .await;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "7");
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");

    for status in ["500", "503"] {
        let resp = openai(
            &mock,
            "/v1/chat/completions",
            &chat(true),
            &[("x-mock-status", status)],
        )
        .await;
        assert_eq!(resp.status().as_str(), status);
        assert_eq!(resp.headers()["content-type"], "application/json");
        assert!(!resp.headers().contains_key("retry-after"));
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], "server_error");
    }

    let resp = anthropic(
        &mock,
        "/v1/messages",
        &message(false),
        &[("x-mock-status", "529"), ("x-mock-retry-after", "2")],
    )
    .await;
    assert_eq!(resp.status(), 529);
    assert_eq!(resp.headers()["retry-after"], "2");
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "overloaded_error");
}

#[tokio::test]
async fn context_length_errors() {
    let mock = open_mock().await;
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-error", "context_length")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["code"], "context_length_exceeded");
    assert_eq!(v["error"]["param"], "messages");

    let resp = anthropic(
        &mock,
        "/v1/messages",
        &message(false),
        &[("x-mock-error", "context_length")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(
        v["error"]["message"],
        "prompt is too long: 200002 tokens > 200000 maximum"
    );
}

#[tokio::test]
async fn fail_first_fails_exactly_n_per_scenario() {
    let mock = open_mock().await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        let a = openai(
            &mock,
            "/v1/chat/completions",
            &chat(false),
            &[
                ("x-mock-fail-first", "2"),
                ("x-mock-scenario", "retry-a"),
                ("x-mock-status", "429"),
            ],
        )
        .await;
        let b = anthropic(
            &mock,
            "/v1/messages",
            &message(false),
            &[("x-mock-fail-first", "1"), ("x-mock-scenario", "retry-b")],
        )
        .await;
        seen.push((a.status().as_u16(), b.status().as_u16()));
    }
    assert_eq!(seen, [(429, 503), (429, 200), (200, 200), (200, 200)]);

    // Clearing resets the counters.
    mock.clear();
    let again = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-fail-first", "1"), ("x-mock-scenario", "retry-a")],
    )
    .await;
    assert_eq!(again.status(), 503);
}

#[tokio::test]
async fn reset_zero_drops_the_connection_before_headers() {
    let mock = open_mock().await;
    let err = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .header("x-mock-reset-after-chunks", "0")
        .json(&chat(true))
        .send()
        .await
        .expect_err("no response");
    assert!(!err.is_status(), "{err}");
    assert_eq!(mock.requests().len(), 1);
}

/// Reads a body until it ends or fails; returns the bytes and whether it failed.
async fn read_until_error(resp: reqwest::Response) -> (String, bool) {
    let mut body = resp.bytes_stream();
    let mut got = Vec::new();
    while let Some(next) = body.next().await {
        match next {
            Ok(b) => got.extend_from_slice(&b),
            Err(_) => return (String::from_utf8(got).unwrap(), true),
        }
    }
    (String::from_utf8(got).unwrap(), false)
}

#[tokio::test]
async fn reset_mid_stream_cuts_after_n_events() {
    let mock = open_mock().await;
    let reset = [("x-mock-reset-after-chunks", "3")];
    let streams = [
        (
            "openai",
            openai(&mock, "/v1/chat/completions", &chat(true), &reset).await,
        ),
        (
            "anthropic",
            anthropic(&mock, "/v1/messages", &message(true), &reset).await,
        ),
    ];
    for (path, resp) in streams {
        assert_eq!(resp.status(), 200);
        let (got, failed) = read_until_error(resp).await;
        assert!(failed, "{path}: the body must fail, got {got:?}");
        assert_eq!(got.matches("\n\n").count(), 3, "{path}: {got:?}");
        assert!(!got.contains("[DONE]") && !got.contains("message_stop"));
    }
    assert!(
        mock.wait_for(Duration::from_secs(5), |m| m.active_streams() == 0)
            .await
    );
    assert_eq!(
        mock.cancelled_streams(),
        0,
        "a deliberate reset is no cancel"
    );

    // A whole response is cut in the middle of its body.
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-reset-after-chunks", "1")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.json::<Value>().await.is_err());
}

#[tokio::test]
async fn malformed_sse_breaks_one_event_then_continues() {
    let mock = open_mock().await;
    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat(true),
        &[("x-mock-malformed-sse", "true")],
    )
    .await
    .text()
    .await
    .unwrap();
    let events = sse(&body);
    let broken: Vec<&Event> = events
        .iter()
        .filter(|e| e.data != "[DONE]" && serde_json::from_str::<Value>(&e.data).is_err())
        .collect();
    assert_eq!(broken.len(), 1);
    assert!(broken[0].data.starts_with("{\"id\":"));
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let good: String = events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(good, "Mock reply from gpt-4o: switch test");

    let body = anthropic(
        &mock,
        "/v1/messages",
        &message(true),
        &[("x-mock-malformed-sse", "1")],
    )
    .await
    .text()
    .await
    .unwrap();
    let events = sse(&body);
    let bad = events
        .iter()
        .filter(|e| serde_json::from_str::<Value>(&e.data).is_err())
        .count();
    assert_eq!(bad, 1);
    assert_eq!(events.last().unwrap().name.as_deref(), Some("message_stop"));
}
