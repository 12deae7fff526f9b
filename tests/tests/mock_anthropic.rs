//! The Anthropic surface of the mock: shapes, usage, stream events, tools, errors.

mod mock_common;

use mock_common::*;
use serde_json::{json, Value};

fn message_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "system": [{"type": "text", "text": "you are terse"}],
        "messages": [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "what is the mock"}]}
        ]
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

/// system 3 + 2 + 2 + 4 words.
const INPUT_TOKENS: u64 = 11;
const REPLY: &str = "Mock reply from claude-sonnet-4-5: what is the mock";

#[tokio::test]
async fn message_has_the_real_shape_and_exact_usage() {
    let mock = keyed_mock().await;
    let resp = anthropic(&mock, "/v1/messages", &message_body(json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert!(h["request-id"].to_str().unwrap().starts_with("req_"));
    for name in [
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-requests-reset",
        "anthropic-ratelimit-tokens-limit",
        "anthropic-ratelimit-input-tokens-remaining",
        "anthropic-ratelimit-output-tokens-reset",
    ] {
        assert!(h.contains_key(name), "missing {name}");
    }
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(v["type"], "message");
    assert_eq!(v["role"], "assistant");
    assert_eq!(v["model"], "claude-sonnet-4-5");
    assert_eq!(v["content"], json!([{"type": "text", "text": REPLY}]));
    assert_eq!(v["stop_reason"], "end_turn");
    assert_eq!(v["stop_sequence"], Value::Null);
    assert_eq!(
        v["usage"],
        json!({"input_tokens": INPUT_TOKENS, "output_tokens": words(REPLY),
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
    );
    let seen = mock.requests();
    assert_eq!(seen[0].header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(seen[0].path, "/v1/messages");
}

#[tokio::test]
async fn stream_sends_the_anthropic_event_sequence() {
    let mock = open_mock().await;
    let resp = anthropic(
        &mock,
        "/v1/messages",
        &message_body(json!({"stream": true})),
        &[("x-mock-chunks", "4")],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let events = sse(&resp.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|e| e.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    for e in &events {
        assert_eq!(
            e.json()["type"],
            e.name.as_deref().unwrap(),
            "type matches event name"
        );
    }
    let start = events[0].json();
    assert_eq!(start["message"]["content"], json!([]));
    assert_eq!(start["message"]["stop_reason"], Value::Null);
    assert_eq!(start["message"]["usage"]["input_tokens"], INPUT_TOKENS);
    assert_eq!(start["message"]["usage"]["output_tokens"], 1);
    assert_eq!(
        events[1].json()["content_block"],
        json!({"type": "text", "text": ""})
    );
    let text: String = events[3..7]
        .iter()
        .map(|e| {
            let d = e.json();
            assert_eq!(d["index"], 0);
            assert_eq!(d["delta"]["type"], "text_delta");
            d["delta"]["text"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(text, REPLY);
    assert_eq!(events[7].json()["index"], 0);
    let delta = events[8].json();
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "end_turn", "stop_sequence": null})
    );
    assert_eq!(delta["usage"]["output_tokens"], words(REPLY));
}

#[tokio::test]
async fn max_tokens_is_required_and_truncates() {
    let mock = open_mock().await;
    let mut body = message_body(json!({}));
    body.as_object_mut().unwrap().remove("max_tokens");
    let resp = anthropic(&mock, "/v1/messages", &body, &[]).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));

    let v: Value = anthropic(
        &mock,
        "/v1/messages",
        &message_body(json!({"max_tokens": 2})),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["content"][0]["text"], "Mock reply");
    assert_eq!(v["stop_reason"], "max_tokens");
    assert_eq!(v["usage"]["output_tokens"], 2);

    let events = sse(&anthropic(
        &mock,
        "/v1/messages",
        &message_body(json!({"max_tokens": 2, "stream": true})),
        &[],
    )
    .await
    .text()
    .await
    .unwrap());
    let delta = events
        .iter()
        .find(|e| e.name.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.json()["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta.json()["usage"]["output_tokens"], 2);
}

#[tokio::test]
async fn auth_and_version_errors() {
    let mock = keyed_mock().await;
    let c = client();
    let url = format!("{}/v1/messages", mock.url());
    let resp = c
        .post(&url)
        .header("x-api-key", "sk-ant-wrong")
        .header("anthropic-version", "2023-06-01")
        .json(&message_body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let rid = resp.headers()["request-id"].to_str().unwrap().to_owned();
    let v: Value = resp.json().await.unwrap();
    assert_eq!(
        v,
        json!({"type": "error",
               "error": {"type": "authentication_error", "message": "invalid x-api-key"},
               "request_id": rid})
    );

    let resp = c
        .post(&url)
        .header("anthropic-version", "2023-06-01")
        .json(&message_body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);

    let resp = c
        .post(&url)
        .header("x-api-key", ANTHROPIC_KEY)
        .json(&message_body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("anthropic-version"));
}

#[tokio::test]
async fn injected_statuses_use_anthropic_error_types() {
    let mock = open_mock().await;
    for (status, kind) in [
        ("400", "invalid_request_error"),
        ("401", "authentication_error"),
        ("403", "permission_error"),
        ("404", "not_found_error"),
        ("413", "request_too_large"),
        ("429", "rate_limit_error"),
        ("500", "api_error"),
        ("529", "overloaded_error"),
    ] {
        let resp = anthropic(
            &mock,
            "/v1/messages",
            &message_body(json!({})),
            &[("x-mock-status", status)],
        )
        .await;
        assert_eq!(resp.status().as_str(), status);
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["error"]["type"], kind, "{status}");
        assert!(v["request_id"].as_str().unwrap().starts_with("req_"));
    }
}

fn lookup_tools() -> Value {
    json!([{"name": "lookup", "description": "find things",
            "input_schema": {"type": "object", "properties": {"query": {"type": "string"}, "limit": {"type": "integer"}}}}])
}

#[tokio::test]
async fn tool_use_whole_and_streamed() {
    let mock = open_mock().await;
    let v: Value = anthropic(
        &mock,
        "/v1/messages",
        &message_body(json!({"tools": lookup_tools()})),
        &[("x-mock-tool-call", "lookup")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["stop_reason"], "tool_use");
    let block = &v["content"][0];
    assert_eq!(block["type"], "tool_use");
    assert!(block["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(block["name"], "lookup");
    assert_eq!(block["input"], json!({"limit": 1, "query": "mock"}));

    let events = sse(&anthropic(
        &mock,
        "/v1/messages",
        &message_body(json!({"tools": lookup_tools(), "stream": true,
                             "tool_choice": {"type": "tool", "name": "lookup"}})),
        &[("x-mock-chunks", "3")],
    )
    .await
    .text()
    .await
    .unwrap());
    let start = events[1].json();
    assert_eq!(start["content_block"]["type"], "tool_use");
    assert_eq!(start["content_block"]["name"], "lookup");
    assert_eq!(start["content_block"]["input"], json!({}));
    let deltas: Vec<Value> = events
        .iter()
        .filter(|e| e.name.as_deref() == Some("content_block_delta"))
        .map(Event::json)
        .collect();
    assert_eq!(deltas.len(), 3);
    let partial: String = deltas
        .iter()
        .map(|d| {
            assert_eq!(d["delta"]["type"], "input_json_delta");
            d["delta"]["partial_json"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&partial).unwrap(),
        json!({"limit": 1, "query": "mock"})
    );
    let delta = events
        .iter()
        .find(|e| e.name.as_deref() == Some("message_delta"))
        .unwrap();
    assert_eq!(delta.json()["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn count_tokens_matches_message_usage() {
    let mock = keyed_mock().await;
    let mut body = message_body(json!({}));
    body.as_object_mut().unwrap().remove("max_tokens");
    let resp = anthropic(&mock, "/v1/messages/count_tokens", &body, &[]).await;
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v, json!({"input_tokens": INPUT_TOKENS}));
}

#[tokio::test]
async fn system_and_content_may_be_strings() {
    let mock = open_mock().await;
    let body = json!({"model": "claude-haiku", "max_tokens": 50, "system": "one two",
                      "messages": [{"role": "user", "content": "three"}]});
    let v: Value = anthropic(&mock, "/v1/messages", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["usage"]["input_tokens"], 3);
    assert_eq!(
        v["content"][0]["text"],
        "Mock reply from claude-haiku: three"
    );
}
