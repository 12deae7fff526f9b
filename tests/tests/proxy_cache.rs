//! Black-box: the exact response cache — hits and misses by scope, streams
//! stored and replayed in both APIs, header controls, TTL, errors and cut
//! streams never stored, and a Redis store shared by two proxies.

mod harness;

use std::time::Duration;

use harness::*;
use serde_json::{json, Value};
use tollgate_tests::redis::Redis;

const CACHE: &str = "cache:\n  ttl: 1h\n  tenantHeader: x-tollgate-tenant\n";

fn det_chat(model: &str, text: &str, stream: bool) -> Value {
    let mut v = chat(model, text, stream);
    v["temperature"] = json!(0);
    v
}

fn det_messages(model: &str, text: &str, stream: bool) -> Value {
    let mut v = messages(model, text, stream);
    v["temperature"] = json!(0);
    v
}

async fn post(
    proxy: &ProxyProc,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> (u16, Option<String>, String) {
    let mut req = client().post(format!("{}{path}", proxy.url)).json(body);
    if path == "/v1/messages" {
        req = req.header("anthropic-version", "2023-06-01");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-tollgate-cache")
        .map(|v| v.to_str().unwrap().to_string());
    (status, cache, resp.text().await.unwrap())
}

fn upstream_calls(m: &MockServer, path: &str) -> usize {
    m.requests().iter().filter(|r| r.path == path).count()
}

/// The parts of a chat completion an app reads.
fn answer(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap();
    json!({"choices": v["choices"], "usage": v["usage"], "model": v["model"]})
}

#[tokio::test]
async fn identical_deterministic_request_is_served_from_cache() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", CACHE));
    let body = det_chat("gpt-4o-mini", "What is a toll road?", false);
    let (s1, c1, b1) = post(&proxy, "/v1/chat/completions", &body, &[]).await;
    let (s2, c2, b2) = post(&proxy, "/v1/chat/completions", &body, &[]).await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(c1.as_deref(), Some("miss"));
    assert_eq!(c2.as_deref(), Some("hit"));
    assert_eq!(answer(&b1), answer(&b2));
    assert_eq!(upstream_calls(&m, "/v1/chat/completions"), 1);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_lookups_total",
            &[("result", "hit")]
        ),
        Some(1.0)
    );
    // Usage on a hit is not spent again.
    let out = metric(
        &metrics,
        "tollgate_cache_saved_tokens_total",
        &[("type", "output")],
    );
    assert!(out.unwrap_or(0.0) > 0.0, "saved output tokens counted");
    // And the USD it would have cost, at gpt-4o-mini's built-in price
    // ($0.15 in, $0.60 out per million tokens).
    let usage = &answer(&b1)["usage"];
    let (p, c) = (
        usage["prompt_tokens"].as_f64().unwrap(),
        usage["completion_tokens"].as_f64().unwrap(),
    );
    let usd = metric(&metrics, "tollgate_cache_saved_usd_total", &[]).unwrap();
    let want = (p * 0.15 + c * 0.60) / 1e6;
    assert!((usd - want).abs() < 1e-9, "saved {usd} USD, want {want}");
}

#[tokio::test]
async fn every_scoping_field_misses() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", CACHE));
    let base = det_chat("gpt-4o-mini", "Scope me", false);
    assert_eq!(
        post(&proxy, "/v1/chat/completions", &base, &[])
            .await
            .1
            .as_deref(),
        Some("miss")
    );
    let mut variants = Vec::new();
    let mut v = base.clone();
    v["max_tokens"] = json!(5);
    variants.push((v, vec![]));
    let mut v = base.clone();
    v["messages"] = json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Scope me"}]);
    variants.push((v, vec![]));
    let mut v = base.clone();
    v["tools"] =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    variants.push((v, vec![]));
    let mut v = base.clone();
    v["model"] = json!("ft:gpt-4o-mini:acme");
    variants.push((v, vec![]));
    variants.push((base.clone(), vec![("x-tollgate-tenant", "team-b")]));
    for (i, (body, headers)) in variants.iter().enumerate() {
        let (status, cache, _) = post(&proxy, "/v1/chat/completions", body, headers).await;
        assert_eq!(
            (status, cache.as_deref()),
            (200, Some("miss")),
            "variant {i}"
        );
    }
    assert_eq!(
        upstream_calls(&m, "/v1/chat/completions"),
        1 + variants.len()
    );
    // Fields that do not change the answer still hit.
    let mut same = base.clone();
    same["user"] = json!("someone");
    assert_eq!(
        post(&proxy, "/v1/chat/completions", &same, &[])
            .await
            .1
            .as_deref(),
        Some("hit")
    );
}

#[tokio::test]
async fn non_deterministic_requests_and_header_controls() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", CACHE));
    let hot = chat("gpt-4o-mini", "Write a poem", false);
    for _ in 0..2 {
        assert_eq!(
            post(&proxy, "/v1/chat/completions", &hot, &[])
                .await
                .1
                .as_deref(),
            Some("bypass")
        );
    }
    assert_eq!(upstream_calls(&m, "/v1/chat/completions"), 2);

    let body = det_chat("gpt-4o-mini", "Controls", false);
    post(&proxy, "/v1/chat/completions", &body, &[]).await;
    let (_, c, _) = post(
        &proxy,
        "/v1/chat/completions",
        &body,
        &[("x-tollgate-cache", "bypass")],
    )
    .await;
    assert_eq!(c.as_deref(), Some("bypass"));
    let (_, c, _) = post(
        &proxy,
        "/v1/chat/completions",
        &body,
        &[("cache-control", "no-store")],
    )
    .await;
    assert_eq!(c.as_deref(), Some("bypass"));
    // refresh: goes upstream and replaces the entry.
    let (_, c, fresh) = post(
        &proxy,
        "/v1/chat/completions",
        &body,
        &[
            ("x-tollgate-cache", "refresh"),
            ("x-mock-reply", "fresh answer"),
        ],
    )
    .await;
    assert_eq!(c.as_deref(), Some("miss"));
    let (_, c, again) = post(&proxy, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(c.as_deref(), Some("hit"));
    assert_eq!(answer(&again)["choices"], answer(&fresh)["choices"]);
    assert!(again.contains("fresh answer"));
    assert_eq!(upstream_calls(&m, "/v1/chat/completions"), 2 + 4);
}

#[tokio::test]
async fn errors_and_cut_streams_are_never_stored() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", CACHE));
    let body = det_chat("gpt-4o-mini", "Fail once", false);
    let (s, _, _) = post(
        &proxy,
        "/v1/chat/completions",
        &body,
        &[("x-mock-status", "400")],
    )
    .await;
    assert_eq!(s, 400);
    let (s, c, _) = post(&proxy, "/v1/chat/completions", &body, &[]).await;
    assert_eq!((s, c.as_deref()), (200, Some("miss")));

    let stream = det_chat("gpt-4o-mini", "Cut me", true);
    let (s, _, text) = post(
        &proxy,
        "/v1/chat/completions",
        &stream,
        &[
            ("x-mock-reset-after-chunks", "2"),
            ("x-mock-chunk-interval-ms", "5"),
        ],
    )
    .await;
    assert_eq!(s, 200);
    assert!(
        text.contains("\"error\""),
        "cut stream ends with an error event"
    );
    let (_, c, text) = post(&proxy, "/v1/chat/completions", &stream, &[]).await;
    assert_eq!(c.as_deref(), Some("miss"), "the cut stream was not stored");
    assert!(text.trim_end().ends_with("data: [DONE]"));
}

#[tokio::test]
async fn streams_are_stored_and_replayed_in_both_apis() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", CACHE));
    // OpenAI: stream, then the same request streamed and not streamed.
    let s = det_chat("gpt-4o-mini", "Stream me", true);
    let (_, c1, first) = post(&proxy, "/v1/chat/completions", &s, &[]).await;
    assert_eq!(c1.as_deref(), Some("miss"));
    let store_seen = wait_for("stream stored", Duration::from_secs(10), || async {
        let (_, c, body) = post(&proxy, "/v1/chat/completions", &s, &[]).await;
        (c.as_deref() == Some("hit")).then_some(body)
    })
    .await;
    let text = |sse: &str| -> String {
        sse.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter(|d| *d != "[DONE]")
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|v| {
                v["choices"][0]["delta"]["content"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    };
    assert_eq!(text(&store_seen), text(&first));
    assert!(store_seen.trim_end().ends_with("data: [DONE]"));
    let mut whole = s.clone();
    whole["stream"] = json!(false);
    let (_, c, body) = post(&proxy, "/v1/chat/completions", &whole, &[]).await;
    assert_eq!(c.as_deref(), Some("hit"));
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"].as_str().unwrap(),
        text(&first)
    );
    assert_eq!(upstream_calls(&m, "/v1/chat/completions"), 1);

    // Anthropic: whole first, then a streamed hit.
    let a = det_messages("claude-sonnet-4-5", "Anthropic me", false);
    let (_, c, whole) = post(&proxy, "/v1/messages", &a, &[]).await;
    assert_eq!(c.as_deref(), Some("miss"));
    let mut sa = a.clone();
    sa["stream"] = json!(true);
    let (_, c, sse) = post(&proxy, "/v1/messages", &sa, &[]).await;
    assert_eq!(c.as_deref(), Some("hit"));
    let w: Value = serde_json::from_str(&whole).unwrap();
    let streamed: String = sse
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(String::from))
        .collect();
    assert_eq!(streamed, w["content"][0]["text"].as_str().unwrap());
    assert!(sse.contains("event: message_stop"));
    assert_eq!(upstream_calls(&m, "/v1/messages"), 1);
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", "cache:\n  ttl: 1s\n"));
    let body = det_chat("gpt-4o-mini", "Expire me", false);
    post(&proxy, "/v1/chat/completions", &body, &[]).await;
    assert_eq!(
        post(&proxy, "/v1/chat/completions", &body, &[])
            .await
            .1
            .as_deref(),
        Some("hit")
    );
    wait_for("entry expiry", Duration::from_secs(10), || async {
        let (_, c, _) = post(&proxy, "/v1/chat/completions", &body, &[]).await;
        (c.as_deref() == Some("miss")).then_some(())
    })
    .await;
}

#[tokio::test]
async fn two_proxies_share_entries_through_redis_and_survive_its_loss() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let m = mock().await;
    let section = format!(
        "cache:\n  store: {{type: redis, redis: {{url: 'redis://127.0.0.1:{}', timeout: 200ms}}}}\n",
        redis.port
    );
    let a = ProxyProc::start(&config(&m.url(), "", &section));
    let b = ProxyProc::start(&config(&m.url(), "", &section));
    let body = det_chat("gpt-4o-mini", "Share me", false);
    assert_eq!(
        post(&a, "/v1/chat/completions", &body, &[])
            .await
            .1
            .as_deref(),
        Some("miss")
    );
    // The write to Redis is in the background: wait for B to see it.
    wait_for("entry in Redis", Duration::from_secs(10), || async {
        let (_, c, _) = post(
            &b,
            "/v1/chat/completions",
            &body,
            &[("x-mock-status", "500")],
        )
        .await;
        (c.as_deref() == Some("hit")).then_some(())
    })
    .await;
    let metrics = b.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_lookups_total",
            &[("result", "hit"), ("store", "redis")]
        ),
        Some(1.0)
    );

    // Redis gone: every request still answered, as misses.
    redis.stop();
    for i in 0..5 {
        let fresh = det_chat("gpt-4o-mini", &format!("No redis {i}"), false);
        let (s, c, _) = post(&b, "/v1/chat/completions", &fresh, &[]).await;
        assert_eq!((s, c.as_deref()), (200, Some("miss")));
    }
    let metrics = b.metrics().await;
    let errors = metric(
        &metrics,
        "tollgate_cache_lookups_total",
        &[("result", "error"), ("store", "redis")],
    )
    .unwrap_or(0.0)
        + metric(
            &metrics,
            "tollgate_cache_lookups_total",
            &[("result", "timeout"), ("store", "redis")],
        )
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "Redis failures are counted");
}
