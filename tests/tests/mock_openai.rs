//! The OpenAI surface of the mock: shapes, usage, streams, tools, auth.

mod mock_common;

use mock_common::*;
use serde_json::{json, Value};

fn chat_body(extra: Value) -> Value {
    let mut body = json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello there mock"}
        ]
    });
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    body
}

#[tokio::test]
async fn chat_completion_has_the_real_shape_and_exact_usage() {
    let mock = keyed_mock().await;
    let resp = openai(&mock, "/v1/chat/completions", &chat_body(json!({})), &[]).await;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "application/json");
    for name in [
        "x-request-id",
        "openai-processing-ms",
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-limit-tokens",
        "x-ratelimit-remaining-tokens",
    ] {
        assert!(h.contains_key(name), "missing {name}");
    }
    let v: Value = resp.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["model"], "gpt-4o-mini");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert!(v["system_fingerprint"].is_string());
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["finish_reason"], "stop");
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["refusal"], Value::Null);
    let text = "Mock reply from gpt-4o-mini: hello there mock";
    assert_eq!(choice["message"]["content"], text);
    // prompt: "be brief" (2) + "hello there mock" (3); completion: the reply's words.
    assert_eq!(v["usage"]["prompt_tokens"], 5);
    assert_eq!(v["usage"]["completion_tokens"], words(text));
    assert_eq!(v["usage"]["total_tokens"], 5 + words(text));
    assert_eq!(v["usage"]["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(
        v["usage"]["completion_tokens_details"]["reasoning_tokens"],
        0
    );

    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "POST");
    assert_eq!(seen[0].path, "/v1/chat/completions");
    assert_eq!(
        seen[0].header("Authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(seen[0].json()["messages"][1]["content"], "hello there mock");
}

/// Content of a chat stream, plus the parsed chunks (without `[DONE]`).
fn read_chat_stream(body: &str) -> (String, Vec<Value>) {
    let events = sse(body);
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(Event::json).collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (text, chunks)
}

#[tokio::test]
async fn chat_stream_frames_chunks_like_openai() {
    let mock = open_mock().await;
    let resp = openai(
        &mock,
        "/v1/chat/completions",
        &chat_body(json!({"stream": true})),
        &[],
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let body = resp.text().await.unwrap();
    let (text, chunks) = read_chat_stream(&body);
    assert_eq!(text, "Mock reply from gpt-4o-mini: hello there mock");
    // role chunk + 5 content deltas (default) + finish chunk.
    assert_eq!(chunks.len(), 7);
    let id = chunks[0]["id"].clone();
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], id);
        assert_eq!(c["model"], "gpt-4o-mini");
        assert!(
            c.get("usage").is_none(),
            "no usage key without include_usage"
        );
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": "", "refusal": null})
    );
    assert_eq!(chunks[0]["choices"][0]["finish_reason"], Value::Null);
    let last = &chunks[6]["choices"][0];
    assert_eq!(last["delta"], json!({}));
    assert_eq!(last["finish_reason"], "stop");
}

#[tokio::test]
async fn include_usage_adds_a_final_usage_chunk_equal_to_non_stream() {
    let mock = open_mock().await;
    let whole: Value = openai(&mock, "/v1/chat/completions", &chat_body(json!({})), &[])
        .await
        .json()
        .await
        .unwrap();
    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat_body(json!({"stream": true, "stream_options": {"include_usage": true}})),
        &[("x-mock-chunks", "3")],
    )
    .await
    .text()
    .await
    .unwrap();
    let (text, chunks) = read_chat_stream(&body);
    assert_eq!(text, whole["choices"][0]["message"]["content"]);
    assert_eq!(chunks.len(), 1 + 3 + 1 + 1);
    for c in &chunks[..chunks.len() - 1] {
        assert_eq!(c["usage"], Value::Null, "earlier chunks carry usage: null");
        assert!(c.get("usage").is_some());
    }
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(usage_chunk["usage"], whole["usage"]);
}

#[tokio::test]
async fn max_tokens_truncates_with_finish_reason_length() {
    let mock = open_mock().await;
    for field in ["max_tokens", "max_completion_tokens"] {
        let v: Value = openai(
            &mock,
            "/v1/chat/completions",
            &chat_body(json!({ field: 3 })),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
        assert_eq!(v["choices"][0]["message"]["content"], "Mock reply from");
        assert_eq!(v["choices"][0]["finish_reason"], "length");
        assert_eq!(v["usage"]["completion_tokens"], 3);
    }
    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat_body(json!({"max_tokens": 3, "stream": true})),
        &[],
    )
    .await
    .text()
    .await
    .unwrap();
    let (text, chunks) = read_chat_stream(&body);
    assert_eq!(text, "Mock reply from");
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "length"
    );
}

#[tokio::test]
async fn n_choices_share_the_reply() {
    let mock = open_mock().await;
    let v: Value = openai(
        &mock,
        "/v1/chat/completions",
        &chat_body(json!({"n": 2})),
        &[],
    )
    .await
    .json()
    .await
    .unwrap();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 2);
    assert_eq!(choices[1]["index"], 1);
    assert_eq!(choices[0]["message"], choices[1]["message"]);
    let reply = choices[0]["message"]["content"].as_str().unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 2 * words(reply));

    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat_body(json!({"n": 2, "stream": true})),
        &[],
    )
    .await
    .text()
    .await
    .unwrap();
    let (_, chunks) = read_chat_stream(&body);
    let per_choice = |i: u64| -> String {
        chunks
            .iter()
            .filter(|c| c["choices"][0]["index"] == i)
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect()
    };
    assert_eq!(per_choice(0), reply);
    assert_eq!(per_choice(1), reply);
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string"}, "days": {"type": "integer"}}}}}])
}

#[tokio::test]
async fn tool_call_switch_answers_with_a_function_call() {
    let mock = open_mock().await;
    let body = chat_body(json!({"tools": weather_tools()}));
    let v: Value = openai(
        &mock,
        "/v1/chat/completions",
        &body,
        &[("x-mock-tool-call", "get_weather")],
    )
    .await
    .json()
    .await
    .unwrap();
    let choice = &v["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(choice["message"]["content"], Value::Null);
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "mock", "days": 1}));

    // Without the switch no tool is called, unless tool_choice forces one.
    let v: Value = openai(&mock, "/v1/chat/completions", &body, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    let forced = chat_body(json!({"tools": weather_tools(),
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}));
    let v: Value = openai(&mock, "/v1/chat/completions", &forced, &[])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn streamed_tool_call_sends_arguments_in_pieces() {
    let mock = open_mock().await;
    let body = openai(
        &mock,
        "/v1/chat/completions",
        &chat_body(json!({"tools": weather_tools(), "stream": true})),
        &[("x-mock-tool-call", "get_weather"), ("x-mock-chunks", "4")],
    )
    .await
    .text()
    .await
    .unwrap();
    let (_, chunks) = read_chat_stream(&body);
    assert_eq!(chunks.len(), 1 + 4 + 1);
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    let call = &first["tool_calls"][0];
    assert_eq!(call["index"], 0);
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "");
    let mut args = String::new();
    for c in &chunks[1..5] {
        let call = &c["choices"][0]["delta"]["tool_calls"][0];
        assert_eq!(
            call.as_object().unwrap().len(),
            2,
            "only index + function: {call}"
        );
        assert_eq!(call["index"], 0);
        args.push_str(call["function"]["arguments"].as_str().unwrap());
    }
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"city": "mock", "days": 1})
    );
    assert_eq!(chunks[5]["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn wrong_or_missing_key_is_a_401_with_a_masked_key() {
    let mock = keyed_mock().await;
    let c = client();
    let url = format!("{}/v1/chat/completions", mock.url());
    let resp = c
        .post(&url)
        .bearer_auth("sk-wrong-key-abcdefgh")
        .json(&chat_body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("x-request-id"));
    let v: Value = resp.json().await.unwrap();
    let err = &v["error"];
    assert_eq!(err["type"], "invalid_request_error");
    assert_eq!(err["code"], "invalid_api_key");
    assert_eq!(err["param"], Value::Null);
    let msg = err["message"].as_str().unwrap();
    assert!(msg.starts_with("Incorrect API key provided: sk-w"), "{msg}");
    assert!(
        !msg.contains("sk-wrong-key-abcdefgh"),
        "key is masked: {msg}"
    );
    assert!(msg.contains("efgh"));

    let resp = c
        .post(&url)
        .json(&chat_body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["code"], "invalid_api_key");

    // A mock without a key accepts anything, even no key.
    let open = open_mock().await;
    let resp = c
        .post(format!("{}/v1/chat/completions", open.url()))
        .json(&chat_body(json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn bad_requests_get_openai_400s_and_404s() {
    let mock = open_mock().await;
    let resp = openai(&mock, "/v1/chat/completions", &json!({"model": "m"}), &[]).await;
    assert_eq!(resp.status(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["param"], "messages");
    assert_eq!(v["error"]["type"], "invalid_request_error");

    let resp = client()
        .post(format!("{}/v1/chat/completions", mock.url()))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = openai(&mock, "/v1/nothing-here", &json!({}), &[]).await;
    assert_eq!(resp.status(), 404);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["error"]["message"], "Invalid URL (POST /v1/nothing-here)");
}

#[tokio::test]
async fn serves_h2c_with_prior_knowledge() {
    let mock = open_mock().await;
    let c = reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = c
        .post(format!("{}/v1/chat/completions", mock.url()))
        .json(&chat_body(json!({"stream": true})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let (text, _) = read_chat_stream(&resp.text().await.unwrap());
    assert_eq!(text, "Mock reply from gpt-4o-mini: hello there mock");
}
