//! The shaping switches (timing, chunks, reply, usage) and server-wide defaults.

mod mock_common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use mock_common::*;
use serde_json::{json, Value};
use tollgate_tests::mock::Switches;

fn chat(stream: bool) -> Value {
    json!({"model": "gpt-4o", "stream": stream,
           "messages": [{"role": "user", "content": "switch test"}]})
}

fn message(stream: bool) -> Value {
    json!({"model": "claude-x", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "switch test"}]})
}

/// Content deltas of an OpenAI chat stream body.
fn chat_deltas(body: &str) -> Vec<String> {
    sse(body)
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| {
            e.json()["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|s| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn latency_delays_the_headers() {
    let mock = open_mock().await;
    let start = Instant::now();
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-latency-ms", "150")],
    )
    .await;
    assert!(start.elapsed() >= Duration::from_millis(150));
    assert_eq!(resp.status(), 200);
    // The request is recorded on arrival, before the latency.
    assert_eq!(mock.requests().len(), 1);
}

#[tokio::test]
async fn ttft_delays_the_first_event_not_the_headers() {
    let mock = open_mock().await;
    let start = Instant::now();
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat(true),
        &[("x-mock-ttft-ms", "800")],
    )
    .await;
    let headers_at = start.elapsed();
    assert!(
        headers_at < Duration::from_millis(800),
        "headers came after {headers_at:?}"
    );
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert!(start.elapsed() >= Duration::from_millis(800));
}

#[tokio::test]
async fn chunks_and_interval_shape_the_stream() {
    let mock = open_mock().await;
    let start = Instant::now();
    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat(true),
        &[("x-mock-chunks", "12"), ("x-mock-chunk-interval-ms", "20")],
    )
    .await
    .text()
    .await
    .unwrap();
    let deltas = chat_deltas(&body);
    assert_eq!(deltas.len(), 12);
    // 12 words: "Mock reply from gpt-4o: switch test" padded with 6 filler words.
    assert_eq!(
        deltas.concat(),
        "Mock reply from gpt-4o: switch test lorem ipsum dolor sit amet consectetur"
    );
    // role + 12 + finish + [DONE] = 15 events, 14 gaps.
    assert!(start.elapsed() >= Duration::from_millis(14 * 20));

    // The non-stream reply is padded the same way.
    let v: Value = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-chunks", "12")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["choices"][0]["message"]["content"], deltas.concat());
    assert_eq!(v["usage"]["completion_tokens"], 12);
}

#[tokio::test]
async fn omit_usage_leaves_usage_out() {
    let mock = open_mock().await;
    let omit = [("x-mock-omit-usage", "true")];
    let v: Value = openai(&mock, "/v1/chat/completions", &chat(false), &omit)
        .await
        .json()
        .await
        .unwrap();
    assert!(v.get("usage").is_none());

    let mut body = chat(true);
    body["stream_options"] = json!({"include_usage": true});
    let text = openai(&mock, "/v1/chat/completions", &body, &omit)
        .await
        .text()
        .await
        .unwrap();
    let events = sse(&text);
    assert!(events.iter().filter(|e| e.data != "[DONE]").all(
        |e| e.json()["usage"].is_null() && !e.json()["choices"].as_array().unwrap().is_empty()
    ));

    let v: Value = anthropic(&mock, "/v1/messages", &message(false), &omit)
        .await
        .json()
        .await
        .unwrap();
    assert!(v.get("usage").is_none());
    let text = anthropic(&mock, "/v1/messages", &message(true), &omit)
        .await
        .text()
        .await
        .unwrap();
    let delta = sse(&text)
        .into_iter()
        .find(|e| e.name.as_deref() == Some("message_delta"))
        .unwrap();
    assert!(delta.json().get("usage").is_none());
}

#[tokio::test]
async fn reply_override_is_verbatim_and_still_chunked() {
    let mock = open_mock().await;
    let reply = [
        ("x-mock-reply", "one two three four"),
        ("x-mock-chunks", "2"),
    ];
    let body = openai(&mock, "/v1/chat/completions", &chat(true), &reply)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(chat_deltas(&body), ["one two ", "three four"]);
    let v: Value = anthropic(&mock, "/v1/messages", &message(false), &reply)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["content"][0]["text"], "one two three four");
    assert_eq!(v["usage"]["output_tokens"], 4);
}

#[tokio::test]
async fn bad_switch_headers_are_400s() {
    let mock = open_mock().await;
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat(false),
        &[("x-mock-chunks", "lots")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("x-mock-chunks"));
    let resp = anthropic(
        &mock,
        "/v1/messages",
        &message(false),
        &[("x-mock-typo", "1")],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn defaults_apply_and_headers_override_them() {
    let mock = open_mock().await;
    mock.set_defaults(Switches {
        chunks: Some(2),
        reply: Some("alpha beta gamma".into()),
        ..Switches::default()
    });
    let body = openai(&mock, "/v1/chat/completions", &chat(true), &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(chat_deltas(&body), ["alpha ", "beta gamma"]);
    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat(true),
        &[("x-mock-chunks", "3")],
    )
    .await
    .text()
    .await
    .unwrap();
    assert_eq!(chat_deltas(&body), ["alpha ", "beta ", "gamma"]);
}
