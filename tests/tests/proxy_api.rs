//! Black-box: both APIs through a real proxy process to the mock provider.

mod harness;

use std::time::Duration;

use futures_util::StreamExt;
use harness::*;
use serde_json::{json, Value};

async fn setup() -> (MockServer, ProxyProc) {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config(&mock.url(), "", ""));
    (mock, proxy)
}

/// Collects an SSE response: (event names, data payloads).
async fn sse(resp: reqwest::Response) -> (Vec<String>, Vec<String>) {
    let text = resp.text().await.unwrap();
    let mut names = vec![];
    let mut datas = vec![];
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event: ") {
                names.push(n.to_string());
            }
            if let Some(d) = line.strip_prefix("data: ") {
                datas.push(d.to_string());
            }
        }
    }
    (names, datas)
}

#[tokio::test]
async fn openai_chat_replaces_the_key_and_carries_the_request_id() {
    let (mock, proxy) = setup().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .bearer_auth("app-placeholder-key")
        .header("x-request-id", "app-rid-42")
        .json(&chat("gpt-4o-mini", "hello there proxy", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-request-id"], "app-rid-42");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    let seen = mock.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.path, "/v1/chat/completions");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(r.header("x-request-id"), Some("app-rid-42"));
    assert_eq!(r.json()["messages"][0]["content"], "hello there proxy");

    // Usage reached the metrics, exactly as the upstream reported it.
    let m = proxy.metrics().await;
    let labels = [("provider", "openai"), ("model", "gpt-4o-mini")];
    let input = metric(
        &m,
        "tollgate_tokens_total",
        &[labels[0], labels[1], ("type", "input")],
    )
    .unwrap();
    let output = metric(
        &m,
        "tollgate_tokens_total",
        &[labels[0], labels[1], ("type", "output")],
    )
    .unwrap();
    assert_eq!(input, body["usage"]["prompt_tokens"].as_f64().unwrap());
    assert_eq!(output, body["usage"]["completion_tokens"].as_f64().unwrap());
    assert_eq!(
        metric(
            &m,
            "tollgate_requests_total",
            &[("route", "gpt-4o-mini"), ("status_class", "2xx")]
        ),
        Some(1.0)
    );
    // The access log records a fully sent response as completed.
    wait_for("the access log line", Duration::from_secs(5), || async {
        proxy.log().contains("outcome=Completed").then_some(())
    })
    .await;
    assert!(!proxy.log().contains("ClientGone"), "{}", proxy.log());
}

#[tokio::test]
async fn generated_request_id_is_sent_upstream_and_returned() {
    let (mock, proxy) = setup().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("gpt-4o-mini", "hi", false))
        .send()
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(rid.len(), 36, "a UUID: {rid}");
    assert_eq!(
        mock.requests()[0].header("x-request-id"),
        Some(rid.as_str())
    );
    // The provider's own id is kept for support tickets.
    assert!(resp.headers().contains_key("x-upstream-request-id"));
}

#[tokio::test]
async fn openai_stream_matches_non_stream_and_records_ttft() {
    let (_mock, proxy) = setup().await;
    let c = client();
    let full: Value = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("gpt-4o-mini", "tell me about streams", false))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut req = chat("gpt-4o-mini", "tell me about streams", true);
    req["stream_options"] = json!({"include_usage": true});
    let resp = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let (_, datas) = sse(resp).await;
    assert_eq!(datas.last().unwrap(), "[DONE]");
    let mut text = String::new();
    let mut usage = None;
    for d in &datas[..datas.len() - 1] {
        let v: Value = serde_json::from_str(d).unwrap();
        if let Some(s) = v["choices"][0]["delta"]["content"].as_str() {
            text.push_str(s);
        }
        if !v["usage"].is_null() {
            usage = Some(v["usage"].clone());
        }
    }
    assert_eq!(
        text,
        full["choices"][0]["message"]["content"].as_str().unwrap()
    );
    let usage = usage.expect("usage chunk");
    let m = proxy.metrics().await;
    let ttft = metric(
        &m,
        "gen_ai_client_operation_time_to_first_chunk_seconds_count",
        &[
            ("gen_ai_provider_name", "openai"),
            ("gen_ai_response_model", "gpt-4o-mini"),
            ("tollgate_provider", "openai"),
        ],
    );
    assert_eq!(ttft, Some(1.0));
    // Both requests' output tokens were counted (non-stream + stream).
    let out = metric(
        &m,
        "tollgate_tokens_total",
        &[("model", "gpt-4o-mini"), ("type", "output")],
    )
    .unwrap();
    assert_eq!(
        out,
        full["usage"]["completion_tokens"].as_f64().unwrap()
            + usage["completion_tokens"].as_f64().unwrap()
    );
}

#[tokio::test]
async fn stream_events_arrive_one_by_one() {
    let (_mock, proxy) = setup().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunks", "4")
        .header("x-mock-chunk-interval-ms", "40")
        .json(&chat("gpt-4o-mini", "one by one", true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let mut frames = 0;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        // Every frame the proxy sends ends on an event boundary.
        assert!(
            chunk.ends_with(b"\n\n"),
            "frame not on an event boundary: {chunk:?}"
        );
        frames += 1;
    }
    assert!(frames >= 4, "events were batched: {frames} frames");
}

#[tokio::test]
async fn anthropic_messages_stream_and_non_stream() {
    let (mock, proxy) = setup().await;
    let c = client();
    let resp = c
        .post(format!("{}/v1/messages", proxy.url))
        .header("x-api-key", "app-placeholder")
        .header("anthropic-version", "2023-06-01")
        .json(&messages("claude-sonnet-4-5", "hello claude", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let full: Value = resp.json().await.unwrap();
    assert_eq!(full["type"], "message");
    let r = &mock.requests()[0];
    assert_eq!(r.header("x-api-key"), Some(ANTHROPIC_KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));

    // Without the app sending anthropic-version, the configured one is added.
    let resp = c
        .post(format!("{}/v1/messages", proxy.url))
        .json(&messages("claude-sonnet-4-5", "hello claude", true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (names, datas) = sse(resp).await;
    assert_eq!(names.first().map(String::as_str), Some("message_start"));
    assert_eq!(names.last().map(String::as_str), Some("message_stop"));
    let text: String = datas
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, full["content"][0]["text"].as_str().unwrap());
    assert_eq!(
        mock.requests()[1].header("anthropic-version"),
        Some("2023-06-01")
    );
    let m = proxy.metrics().await;
    let out = metric(
        &m,
        "tollgate_tokens_total",
        &[("model", "claude-sonnet-4-5"), ("type", "output")],
    )
    .unwrap();
    assert_eq!(out, 2.0 * full["usage"]["output_tokens"].as_f64().unwrap());
}

#[tokio::test]
async fn embeddings_completions_count_tokens_and_models() {
    let (mock, proxy) = setup().await;
    let c = client();
    let e: Value = c
        .post(format!("{}/v1/embeddings", proxy.url))
        .json(&json!({"model": "text-embedding-3-small", "input": ["a", "b"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["data"].as_array().unwrap().len(), 2);
    let t = c
        .post(format!("{}/v1/completions", proxy.url))
        .json(&json!({"model": "gpt-3.5-turbo-instruct", "prompt": "say"}))
        .send()
        .await
        .unwrap();
    assert_eq!(t.status(), 200);
    let n: Value = c
        .post(format!("{}/v1/messages/count_tokens", proxy.url))
        .json(&json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "three small words"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(n["input_tokens"].as_u64().unwrap() > 0);
    let paths: Vec<String> = mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        paths,
        [
            "/v1/embeddings",
            "/v1/completions",
            "/v1/messages/count_tokens"
        ]
    );

    // Model lists are answered by the proxy from its config, in each API's shape.
    let list: Value = c
        .get(format!("{}/v1/models", proxy.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "gpt-4o-mini",
            "text-embedding-3-small",
            "gpt-3.5-turbo-instruct"
        ]
    );
    let alist: Value = c
        .get(format!("{}/v1/models", proxy.url))
        .header("anthropic-version", "2023-06-01")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alist["data"][0]["type"], "model");
    assert_eq!(alist["data"][0]["id"], "claude-sonnet-4-5");
    let one = c
        .get(format!("{}/v1/models/gpt-4o-mini", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    let none = c
        .get(format!("{}/v1/models/gpt-9", proxy.url))
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 404);
    assert_eq!(
        mock.requests().len(),
        3,
        "model lists never reach the provider"
    );
}

#[tokio::test]
async fn prefix_models_route_and_h2c_from_the_app_works() {
    let (mock, proxy) = setup().await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("ft:gpt-4o-mini:acme", "hi", false))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert_eq!(mock.requests()[0].json()["model"], "ft:gpt-4o-mini:acme");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let (mock, proxy) = setup().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunks", "200")
        .header("x-mock-chunk-interval-ms", "50")
        .json(&chat("gpt-4o-mini", "long story", true))
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    body.next().await.unwrap().unwrap();
    assert_eq!(mock.active_streams(), 1);
    drop(body);
    wait_for(
        "the mock to see the stream cancelled",
        Duration::from_secs(5),
        || async { (mock.cancelled_streams() == 1 && mock.active_streams() == 0).then_some(()) },
    )
    .await;
    let m = wait_for("the disconnect metric", Duration::from_secs(5), || async {
        let m = proxy.metrics().await;
        metric(
            &m,
            "tollgate_stream_client_disconnects_total",
            &[("provider", "openai")],
        )
        .map(|_| m)
    })
    .await;
    assert_eq!(metric(&m, "tollgate_requests_in_flight", &[]), Some(0.0));
}

/// An app that gives up before any answer is not a proxy error: the
/// request counts as 4xx (nginx's 499), never as 5xx.
#[tokio::test]
async fn an_app_leaving_before_the_answer_counts_as_4xx() {
    let (mock, proxy) = setup().await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-latency-ms", "5000")
        .json(&chat("gpt-4o-mini", "slow", false))
        .send()
        .await;
    assert!(gave_up.is_err(), "the app timed out first");
    let m = wait_for(
        "the abandoned request counted",
        Duration::from_secs(5),
        || async {
            let m = proxy.metrics().await;
            metric(&m, "tollgate_requests_total", &[("status_class", "4xx")]).map(|_| m)
        },
    )
    .await;
    assert_eq!(
        metric(&m, "tollgate_requests_total", &[("status_class", "4xx")]),
        Some(1.0)
    );
    assert_eq!(
        metric(&m, "tollgate_requests_total", &[("status_class", "5xx")]),
        None
    );
    assert_eq!(metric(&m, "tollgate_requests_in_flight", &[]), Some(0.0));
    assert!(proxy.log().contains("status=499"), "{}", proxy.log());
    drop(mock);
}

#[tokio::test]
async fn stream_usage_is_counted_even_when_the_app_did_not_ask() {
    stream_usage_counted_and_removed("compact").await;
}

/// An OpenAI-compatible upstream writing JSON as Python does
/// (`"choices": []`): the usage-only chunk is still recognised and removed.
#[tokio::test]
async fn the_usage_chunk_is_removed_whatever_the_upstreams_json_layout() {
    stream_usage_counted_and_removed("spaced").await;
}

async fn stream_usage_counted_and_removed(json_style: &str) {
    let (mock, proxy) = setup().await;
    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-json-style", json_style)
        .json(&chat("gpt-4o-mini", "count my tokens please", true))
        .send()
        .await
        .unwrap();
    let (_, datas) = sse(resp).await;
    assert_eq!(datas.last().unwrap(), "[DONE]");
    for d in &datas[..datas.len() - 1] {
        let v: Value = serde_json::from_str(d).unwrap();
        assert!(
            !v["choices"].as_array().unwrap().is_empty(),
            "the usage-only chunk was removed: {d}"
        );
        assert!(v["usage"].is_null());
    }
    assert_eq!(
        mock.requests()[0].json()["stream_options"]["include_usage"],
        true,
        "asked upstream"
    );
    let m = proxy.metrics().await;
    let out = metric(
        &m,
        "tollgate_tokens_total",
        &[("model", "gpt-4o-mini"), ("type", "output")],
    );
    let input = metric(
        &m,
        "tollgate_tokens_total",
        &[("model", "gpt-4o-mini"), ("type", "input")],
    );
    assert!(out.unwrap() > 0.0);
    assert_eq!(input, Some(4.0), "the mock counts words: 4");
}

/// The access log line of a request, from a proxy logging JSON.
fn access_line(log: &str, request_id: &str) -> Option<Value> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["target"] == "tollgate::access" && v["request_id"] == request_id)
}

#[tokio::test]
async fn the_access_log_line_says_route_target_attempts_cache_and_cost_as_json() {
    let mock = mock().await;
    let extra = "logging: {format: json}\nrouting:\n  defaults:\n    retry: {maxAttempts: 2, initialBackoff: 10ms}\n  routes:\n    - name: chat\n      targets: [{provider: openai, model: gpt-4o-mini}]\ncache:\n  ttl: 1h\n";
    let proxy = ProxyProc::start(&config(&mock.url(), "", extra));
    let mut body = chat("chat", "what does the access log say", false);
    body["temperature"] = 0.into();
    let send = |rid: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("x-request-id", rid)
            // The first attempt fails: Tollgate's retry answers.
            .header("x-mock-fail-first", "1")
            .header("x-mock-scenario", "access-log")
            .json(&body)
            .send()
    };
    let first = send("access-1").await.unwrap();
    assert_eq!(first.status(), 200);
    let usage = first.json::<Value>().await.unwrap()["usage"].clone();
    assert_eq!(send("access-2").await.unwrap().status(), 200);

    let line = wait_for("the first access line", Duration::from_secs(5), || async {
        access_line(&proxy.log(), "access-1")
    })
    .await;
    assert_eq!(line["api"], "openai", "{line}");
    assert_eq!(line["operation"], "chat");
    assert_eq!(line["route"], "chat");
    assert_eq!(line["served_by"], "openai/gpt-4o-mini");
    assert_eq!(line["attempts"], 2, "one retry");
    assert_eq!(line["cache"], "miss");
    assert_eq!(line["status"], 200);
    assert_eq!(line["input_tokens"], usage["prompt_tokens"]);
    assert_eq!(line["output_tokens"], usage["completion_tokens"]);
    // gpt-4o-mini is in the built-in price table.
    let cost = line["cost_usd"]
        .as_f64()
        .expect("a priced request has a cost");
    assert!(cost > 0.0 && cost < 0.01, "{cost}");

    let hit = wait_for("the second access line", Duration::from_secs(5), || async {
        access_line(&proxy.log(), "access-2")
    })
    .await;
    assert_eq!(hit["cache"], "hit", "{hit}");
    assert_eq!(hit["attempts"], 0, "answered from the cache");
    assert!(
        hit.get("cost_usd").is_none(),
        "a hit costs nothing upstream"
    );
    assert_eq!(mock.requests().len(), 2, "two attempts, then the cache");
}

#[tokio::test]
async fn each_chunk_after_the_first_records_its_gap() {
    let (_mock, proxy) = setup().await;
    let name = "gen_ai_client_operation_time_per_output_chunk_seconds";
    let labels = [("gen_ai_provider_name", "openai")];
    // A whole answer records nothing.
    let whole = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&chat("gpt-4o-mini", "no chunks here", false))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let m = proxy.metrics().await;
    assert_eq!(metric(&m, &format!("{name}_count"), &labels), None);

    let resp = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-chunks", "6")
        .header("x-mock-chunk-interval-ms", "40")
        .json(&chat("gpt-4o-mini", "chunk by chunk", true))
        .send()
        .await
        .unwrap();
    let (_, datas) = sse(resp).await;
    let m = proxy.metrics().await;
    let count = metric(&m, &format!("{name}_count"), &labels).unwrap();
    let sum = metric(&m, &format!("{name}_sum"), &labels).unwrap();
    // Six deltas 40 ms apart: at least five gaps, at most one per event
    // after the first; together at least the five intervals.
    assert!(
        (5.0..datas.len() as f64).contains(&count),
        "{count} gaps for {} events",
        datas.len()
    );
    assert!(sum >= 5.0 * 0.035, "{sum} s in all");
}

/// Request ids of the access log lines in a JSON log.
fn access_ids(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "tollgate::access")
        .filter_map(|v| v["request_id"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_access_log_samples_successes_keeps_errors_and_follows_reloads() {
    let mock = mock().await;
    let with = |access: &str| {
        config(
            &mock.url(),
            "",
            &format!("logging: {{format: json, access: {access}}}\n"),
        )
    };
    let proxy = ProxyProc::start(&with("{sample: 0.5}"));
    let send = |rid: String, model: &'static str| {
        client()
            .post(format!("{}/v1/chat/completions", proxy.url))
            .header("x-request-id", rid)
            .json(&chat(model, "sampled", false))
            .send()
    };
    for i in 0..4 {
        assert_eq!(
            send(format!("ok-{i}"), "gpt-4o-mini")
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        send("err-1".into(), "gpt-9-unknown")
            .await
            .unwrap()
            .status(),
        404
    );
    let ids = wait_for("the error's line", Duration::from_secs(5), || async {
        let ids = access_ids(&proxy.log());
        ids.contains(&"err-1".to_string()).then_some(ids)
    })
    .await;
    assert_eq!(
        ids.iter().filter(|id| id.starts_with("ok-")).count(),
        2,
        "half the successes: {ids:?}"
    );

    // Switched off by a reload, without a restart: not even errors.
    let first = proxy.config_hash().await;
    proxy.write_config(&with("{enabled: false}"));
    wait_for("the reload", Duration::from_secs(10), || async {
        (proxy.config_hash().await != first).then_some(())
    })
    .await;
    assert_eq!(
        send("off-ok".into(), "gpt-4o-mini").await.unwrap().status(),
        200
    );
    assert_eq!(
        send("off-err".into(), "gpt-9-unknown")
            .await
            .unwrap()
            .status(),
        404
    );
    // A line written after both would show: the proxy logs in order.
    let second = proxy.config_hash().await;
    proxy.write_config(&with("{sample: 1}"));
    wait_for("the second reload", Duration::from_secs(10), || async {
        (proxy.config_hash().await != second).then_some(())
    })
    .await;
    assert_eq!(
        send("on-again".into(), "gpt-4o-mini")
            .await
            .unwrap()
            .status(),
        200
    );
    let ids = wait_for(
        "the line after switching on",
        Duration::from_secs(5),
        || async {
            let ids = access_ids(&proxy.log());
            ids.contains(&"on-again".to_string()).then_some(ids)
        },
    )
    .await;
    assert!(!ids.iter().any(|id| id.starts_with("off-")), "{ids:?}");
    assert!(
        !proxy.log().contains("take effect after a restart"),
        "the access log needs no restart"
    );
}
