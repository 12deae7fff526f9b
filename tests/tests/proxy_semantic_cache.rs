//! Black-box: the semantic cache on the request path — a paraphrase is
//! served from the cache (whole or replayed as a stream, both APIs), every
//! scoping field still has to match, a text is embedded once, the near-miss
//! guard refuses a changed number, embedding failures and timeouts are misses (never failed
//! requests), and routes that did not opt in never embed.
//!
//! The mock's `bag-of-words*` embedding model makes texts that share words
//! similar: "What is a toll road?" and "what is a toll road" are identical
//! (cosine 1), "Is 7 a prime number?" and "Is 8 a prime number?" are 0.8.

mod harness;

use std::time::Duration;

use harness::*;
use serde_json::{json, Value};
use tollgate_tests::mock::Switches;

fn routes(extra_route: &str) -> String {
    format!(
        r#"routing:
  routes:
    - name: chat
      targets: [{{provider: openai, model: gpt-4o-mini}}]
    - name: unguarded
      targets: [{{provider: openai, model: gpt-4o-mini}}]
    - name: plain
      targets: [{{provider: openai, model: gpt-4o-mini}}]
    - name: claude
      targets: [{{provider: anthropic, model: claude-sonnet-4-5}}]
cache:
  tenantHeader: x-tollgate-tenant
  semantic:
    embedders:
      - {{name: bow, provider: openai, model: bag-of-words-1, timeout: 2s}}
{extra_route}    threshold: 0.6
  routes:
    - {{name: chat, semantic: {{embedder: bow}}}}
    - {{name: unguarded, semantic: {{embedder: bow, guard: []}}}}
    - {{name: claude, semantic: {{embedder: bow}}}}
"#
    )
}

fn det(model: &str, text: &str, stream: bool) -> Value {
    let mut v = chat(model, text, stream);
    v["temperature"] = json!(0);
    v
}

struct Answer {
    status: u16,
    cache: Option<String>,
    similarity: Option<f64>,
    body: String,
}

async fn post(proxy: &ProxyProc, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
    let mut req = client().post(format!("{}{path}", proxy.url)).json(body);
    if path == "/v1/messages" {
        req = req.header("anthropic-version", "2023-06-01");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    Answer {
        status: resp.status().as_u16(),
        cache: header("x-tollgate-cache"),
        similarity: header("x-tollgate-cache-similarity").map(|s| s.parse().unwrap()),
        body: resp.text().await.unwrap(),
    }
}

type Headers = Vec<(&'static str, &'static str)>;

fn calls(m: &MockServer, path: &str) -> usize {
    m.requests().iter().filter(|r| r.path == path).count()
}

fn content(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap();
    v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_paraphrase_is_served_from_the_semantic_cache() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    let first = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "What is a toll road?", false),
        &[],
    )
    .await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    let second = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "what is a TOLL road", false),
        &[],
    )
    .await;
    assert_eq!(
        (second.status, second.cache.as_deref()),
        (200, Some("semantic-hit"))
    );
    assert!(
        second.similarity.unwrap() > 0.999,
        "{:?}",
        second.similarity
    );
    assert_eq!(content(&second.body), content(&first.body));
    assert_eq!(calls(&m, "/v1/chat/completions"), 1);
    // One embedding per lookup, sent with the provider's key.
    let embeds: Vec<_> = m
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/embeddings")
        .collect();
    assert_eq!(embeds.len(), 2);
    assert_eq!(
        embeds[0].header("authorization"),
        Some(format!("Bearer {OPENAI_KEY}").as_str())
    );
    assert_eq!(embeds[1].json()["input"], json!(["what is a TOLL road"]));
    let metrics = proxy.metrics().await;
    let lookups = |result: &str| {
        metric(
            &metrics,
            "tollgate_cache_lookups_total",
            &[("result", result), ("store", "semantic")],
        )
    };
    assert_eq!(lookups("semantic-hit"), Some(1.0));
    assert_eq!(lookups("miss"), Some(1.0));
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_embedding_duration_seconds_count",
            &[("embedder", "bow")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(&metrics, "tollgate_cache_semantic_entries", &[]),
        Some(1.0)
    );
    assert!(
        metric(
            &metrics,
            "tollgate_cache_saved_tokens_total",
            &[("type", "output")]
        )
        .unwrap()
            > 0.0
    );
}

#[tokio::test]
async fn a_text_embedded_once_is_not_embedded_again() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    // Two tenants ask the same question: two partitions, so two misses,
    // but one text, so one embedding.
    for tenant in ["a", "b"] {
        let r = post(
            &proxy,
            "/v1/chat/completions",
            &det("chat", "How are toll roads financed?", false),
            &[("x-tollgate-tenant", tenant)],
        )
        .await;
        assert_eq!((r.status, r.cache.as_deref()), (200, Some("miss")));
    }
    assert_eq!(calls(&m, "/v1/embeddings"), 1);
    assert_eq!(calls(&m, "/v1/chat/completions"), 2);
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_embeddings_reused_total",
            &[("embedder", "bow")]
        ),
        Some(1.0)
    );
    // Tenant b's answer was indexed with the kept vector: a paraphrase
    // from b is a hit, and costs one more embedding (a new text).
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "how are TOLL roads financed", false),
        &[("x-tollgate-tenant", "b")],
    )
    .await;
    assert_eq!(r.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(calls(&m, "/v1/embeddings"), 2);
}

#[tokio::test]
async fn the_guard_refuses_a_changed_number() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    for route in ["chat", "unguarded"] {
        let a = post(
            &proxy,
            "/v1/chat/completions",
            &det(route, "Is 7 a prime number?", false),
            &[],
        )
        .await;
        assert_eq!(a.cache.as_deref(), Some("miss"));
    }
    // Similar enough (0.8 ≥ 0.6), but another number: the guard says miss…
    let guarded = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "Is 8 a prime number?", false),
        &[],
    )
    .await;
    assert_eq!(guarded.cache.as_deref(), Some("miss"));
    // …and without it the same pair would have been a (wrong) hit.
    let unguarded = post(
        &proxy,
        "/v1/chat/completions",
        &det("unguarded", "Is 8 a prime number?", false),
        &[],
    )
    .await;
    assert_eq!(unguarded.cache.as_deref(), Some("semantic-hit"));
    let s = unguarded.similarity.unwrap();
    assert!((0.6..0.95).contains(&s), "{s}");
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_semantic_guard_refusals_total",
            &[("check", "numbers")]
        ),
        Some(1.0)
    );
    assert_eq!(calls(&m, "/v1/chat/completions"), 3);
}

#[tokio::test]
async fn every_scoping_field_still_has_to_match() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    let stored = det("chat", "How long is the Golden Gate Bridge?", false);
    assert_eq!(
        post(
            &proxy,
            "/v1/chat/completions",
            &stored,
            &[("x-tollgate-tenant", "t1")]
        )
        .await
        .cache
        .as_deref(),
        Some("miss")
    );
    let paraphrase = det("chat", "how long is the golden gate bridge", false);
    let variants: Vec<(&str, Value, Headers)> = vec![
        (
            "tenant",
            paraphrase.clone(),
            vec![("x-tollgate-tenant", "t2")],
        ),
        ("no tenant", paraphrase.clone(), vec![]),
        (
            "max_tokens",
            {
                let mut v = paraphrase.clone();
                v["max_tokens"] = json!(7);
                v
            },
            vec![("x-tollgate-tenant", "t1")],
        ),
        (
            "tools",
            {
                let mut v = paraphrase.clone();
                v["tools"] = json!([{"type": "function", "function": {"name": "measure", "parameters": {"type": "object"}}}]);
                v
            },
            vec![("x-tollgate-tenant", "t1")],
        ),
        (
            "another role",
            {
                let mut v = paraphrase.clone();
                v["messages"][0]["role"] = json!("developer");
                v
            },
            vec![("x-tollgate-tenant", "t1")],
        ),
        (
            "another route",
            det("unguarded", "how long is the golden gate bridge", false),
            vec![("x-tollgate-tenant", "t1")],
        ),
    ];
    for (what, body, headers) in &variants {
        let a = post(&proxy, "/v1/chat/completions", body, headers).await;
        assert_eq!(
            (a.status, a.cache.as_deref()),
            (200, Some("miss")),
            "{what} must miss"
        );
    }
    // The same paraphrase in the same scope is a hit.
    let hit = post(
        &proxy,
        "/v1/chat/completions",
        &paraphrase,
        &[("x-tollgate-tenant", "t1")],
    )
    .await;
    assert_eq!(hit.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(calls(&m, "/v1/chat/completions"), 1 + variants.len());
}

#[tokio::test]
async fn semantic_hits_are_replayed_as_streams_in_both_apis() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    // Stored from a stream, served whole to a paraphrase.
    let first = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "Name a famous toll bridge", true),
        &[],
    )
    .await;
    assert_eq!(first.cache.as_deref(), Some("miss"));
    let whole = wait_for(
        "stream stored and indexed",
        Duration::from_secs(10),
        || async {
            let a = post(
                &proxy,
                "/v1/chat/completions",
                &det("chat", "name a famous toll-bridge", false),
                &[],
            )
            .await;
            (a.cache.as_deref() == Some("semantic-hit")).then_some(a.body)
        },
    )
    .await;
    let streamed_text: String = first
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(String::from)
        })
        .collect();
    assert_eq!(content(&whole), streamed_text);
    // Anthropic: stored whole, a paraphrase streamed.
    let mut a = messages("claude", "Which river runs through Paris?", false);
    a["temperature"] = json!(0);
    let stored = post(&proxy, "/v1/messages", &a, &[]).await;
    assert_eq!(stored.cache.as_deref(), Some("miss"));
    let mut b = messages("claude", "which river runs through paris", true);
    b["temperature"] = json!(0);
    let sse = post(&proxy, "/v1/messages", &b, &[]).await;
    assert_eq!(sse.cache.as_deref(), Some("semantic-hit"));
    let text: String = sse
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| v["delta"]["text"].as_str().map(String::from))
        .collect();
    let w: Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(text, w["content"][0]["text"].as_str().unwrap());
    assert!(sse.body.contains("event: message_stop"));
    assert_eq!(calls(&m, "/v1/messages"), 1);
}

#[tokio::test]
async fn embedding_failures_and_timeouts_are_misses() {
    let m = mock().await;
    // A second provider for embeddings only: one that fails, then one that
    // is too slow.
    let embed = MockServer::start(Default::default()).await.unwrap();
    let cfg = |timeout: &str| {
        config(&m.url(), "", &routes("")).replace(
            "      - {name: bow, provider: openai, model: bag-of-words-1, timeout: 2s}\n",
            &format!("      - {{name: bow, provider: embed, model: bag-of-words-1, timeout: {timeout}}}\n"),
        )
        .replace(
            "routing:",
            &format!("  - name: embed\n    type: openai-compatible\n    baseUrl: {}/v1\n    credentials: {{file: KEYDIR/openai-key}}\n    models: [bag-of-words-1]\nrouting:", embed.url()),
        )
    };
    embed.set_defaults(Switches {
        status: Some(500),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&cfg("2s"));
    for text in ["What is a toll road?", "what is a toll road"] {
        let a = post(
            &proxy,
            "/v1/chat/completions",
            &det("chat", text, false),
            &[],
        )
        .await;
        assert_eq!((a.status, a.cache.as_deref()), (200, Some("miss")));
    }
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_embedding_errors_total",
            &[("embedder", "bow"), ("reason", "status")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_lookups_total",
            &[("result", "error"), ("store", "semantic")]
        ),
        Some(2.0)
    );
    drop(proxy);

    embed.set_defaults(Switches {
        latency_ms: Some(5_000),
        ..Default::default()
    });
    let proxy = ProxyProc::start(&cfg("100ms"));
    let started = std::time::Instant::now();
    let a = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "Is this slow?", false),
        &[],
    )
    .await;
    assert_eq!((a.status, a.cache.as_deref()), (200, Some("miss")));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let metrics = proxy.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_embedding_errors_total",
            &[("embedder", "bow"), ("reason", "timeout")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "tollgate_cache_lookups_total",
            &[("result", "timeout"), ("store", "semantic")]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn routes_that_did_not_opt_in_and_bypasses_never_embed() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    for text in ["What is a toll road?", "what is a toll road"] {
        let a = post(
            &proxy,
            "/v1/chat/completions",
            &det("plain", text, false),
            &[],
        )
        .await;
        assert_eq!(a.cache.as_deref(), Some("miss"));
    }
    let a = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "What is a toll road?", false),
        &[("x-tollgate-cache", "bypass")],
    )
    .await;
    assert_eq!(a.cache.as_deref(), Some("bypass"));
    // Sampled requests are not cached at all under deterministicOnly.
    let a = post(
        &proxy,
        "/v1/chat/completions",
        &chat("chat", "What is a toll road?", false),
        &[],
    )
    .await;
    assert_eq!(a.cache.as_deref(), Some("bypass"));
    // An exact hit needs no embedding either.
    let b = det("chat", "Exactly this", false);
    post(&proxy, "/v1/chat/completions", &b, &[]).await;
    let again = post(&proxy, "/v1/chat/completions", &b, &[]).await;
    assert_eq!(again.cache.as_deref(), Some("hit"));
    assert_eq!(calls(&m, "/v1/embeddings"), 1);
}

#[tokio::test]
async fn a_local_embedder_that_cannot_load_stops_the_start() {
    // A missing model folder (or, in default builds, the missing
    // `local-embeddings` feature) is an error at start, not a silent cache
    // that never hits.
    let m = mock().await;
    let cfg = config(&m.url(), "", &routes("")).replace(
        "      - {name: bow, provider: openai, model: bag-of-words-1, timeout: 2s}\n",
        "      - {name: bow, type: local, path: /nonexistent/model}\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, cfg.replace("KEYDIR", dir.path().to_str().unwrap())).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(proxy_bin())
            .args(["run", "--config"])
            .arg(&path)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("embedder `bow`"), "{stderr}");
}

#[tokio::test]
async fn a_refreshed_answer_is_indexed_too() {
    let m = mock().await;
    let proxy = ProxyProc::start(&config(&m.url(), "", &routes("")));
    let fresh = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "Where is the Brooklyn Bridge?", false),
        &[("x-tollgate-cache", "refresh")],
    )
    .await;
    assert_eq!(fresh.cache.as_deref(), Some("miss"));
    let hit = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "where is the brooklyn bridge", false),
        &[],
    )
    .await;
    assert_eq!(hit.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(content(&hit.body), content(&fresh.body));
    assert_eq!(calls(&m, "/v1/chat/completions"), 1);
}

/// Online verification: every semantic hit of `chat` is checked against a
/// fresh answer; when the provider's answers change, the route stops
/// serving semantic hits within one window, while exact hits go on.
#[tokio::test]
async fn a_route_whose_verified_answers_disagree_stops_serving_semantic_hits() {
    let mock = mock().await;
    let cfg = routes("").replace(
        "    - {name: chat, semantic: {embedder: bow}}",
        "    - {name: chat, semantic: {embedder: bow, verify: {share: 1, floor: 0.5, window: 4, minSamples: 2}}}",
    );
    let proxy = ProxyProc::start(&config(&mock.url(), "", &cfg));
    let first = "Toll roads are financed by bonds backed by future toll revenue and by private concessions that build and operate the road for a fixed term.";
    let changed = "Congestion pricing varies the price of a trip with the time of day so that drivers spread their journeys more evenly across the whole day.";
    mock.set_defaults(Switches {
        reply: Some(first.into()),
        ..Switches::default()
    });
    let no: Headers = vec![];
    let a = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "What is a toll road?", false),
        &no,
    )
    .await;
    assert_eq!(a.cache.as_deref(), Some("miss"));

    let verifications = |result: &'static str| {
        let proxy = &proxy;
        async move {
            let m = proxy.metrics().await;
            metric(
                &m,
                "tollgate_cache_semantic_verifications_total",
                &[("route", "chat"), ("result", result)],
            )
            .unwrap_or(0.0)
        }
    };
    // Same answers upstream: the hit is served and its verification agrees.
    let p1 = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "what is a toll road", false),
        &no,
    )
    .await;
    assert_eq!(p1.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(content(&p1.body), first);
    wait_for(
        "one agreeing verification",
        Duration::from_secs(10),
        || async { (verifications("agree").await == 1.0).then_some(()) },
    )
    .await;
    // The verification is a whole request to the route's target.
    assert_eq!(calls(&mock, "/v1/chat/completions"), 2);

    // The provider now answers otherwise: the cache still serves the old
    // answer, and each verification disagrees.
    mock.set_defaults(Switches {
        reply: Some(changed.into()),
        ..Switches::default()
    });
    for (n, text) in [(1.0, "What is a toll road"), (2.0, "what is a toll road?")] {
        let p = post(
            &proxy,
            "/v1/chat/completions",
            &det("chat", text, false),
            &no,
        )
        .await;
        assert_eq!(p.cache.as_deref(), Some("semantic-hit"));
        assert_eq!(content(&p.body), first);
        wait_for("the verification", Duration::from_secs(10), || async {
            (verifications("disagree").await == n).then_some(())
        })
        .await;
    }
    // Scores [1, ~0.1, ~0.1] (the two answers share a few words): below the
    // floor of 0.5 within the window of 4.
    let m = proxy.metrics().await;
    assert_eq!(
        metric(&m, "tollgate_cache_semantic_serving", &[("route", "chat")]),
        Some(0.0),
        "{m}"
    );
    let agreement = metric(
        &m,
        "tollgate_cache_semantic_agreement",
        &[("route", "chat")],
    )
    .unwrap();
    assert!(agreement < 0.5 && agreement > 1.0 / 3.0, "{agreement}");
    assert!(
        metric(
            &m,
            "tollgate_cache_semantic_verification_tokens_total",
            &[("route", "chat"), ("type", "output")]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        proxy.log().contains("semantic cache suspended"),
        "{}",
        proxy.log()
    );

    // Suspended: a paraphrase goes upstream and gets the provider's answer...
    let p4 = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "WHAT is a toll road?", false),
        &no,
    )
    .await;
    assert_eq!(p4.cache.as_deref(), Some("miss"));
    assert_eq!(content(&p4.body), changed);
    // ...while the exact cache goes on serving the same request.
    let again = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "What is a toll road?", false),
        &no,
    )
    .await;
    assert_eq!(again.cache.as_deref(), Some("hit"));
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_cache_lookups_total",
            &[("result", "suspended"), ("store", "semantic")]
        ),
        Some(1.0)
    );
}

/// The second stage: a route with a judge serves a semantic candidate only
/// when the judge model says the two prompts ask for the same thing.
#[tokio::test]
async fn a_judge_decides_whether_a_semantic_candidate_is_served() {
    let mock = mock().await;
    let cfg = routes("").replace(
        "    - {name: chat, semantic: {embedder: bow}}",
        "    - {name: chat, semantic: {embedder: bow, judge: {provider: openai, model: gpt-4o-mini, timeout: 2s}}}",
    );
    let proxy = ProxyProc::start(&config(&mock.url(), "", &cfg));
    let reply = "Toll roads are roads where drivers pay a fee that finances the road.";
    // The app's own answers come from this header; the judge (a request of
    // the proxy's, without it) answers the mock's default reply.
    let app: Headers = vec![("x-mock-reply", reply)];
    let judged = |verdict: &str| Switches {
        reply: Some(verdict.into()),
        ..Switches::default()
    };
    let a = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "What is a toll road?", false),
        &app,
    )
    .await;
    assert_eq!(a.cache.as_deref(), Some("miss"));

    mock.set_defaults(judged("No."));
    let p1 = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "what is a toll road", false),
        &app,
    )
    .await;
    assert_eq!(p1.cache.as_deref(), Some("miss"), "the judge said no");
    let judge_call = mock
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .find(|r| r.json()["messages"][0]["role"] == "system")
        .expect("the judge was asked");
    let asked = judge_call.json()["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        asked.contains("What is a toll road?") && asked.contains("what is a toll road"),
        "{asked}"
    );

    mock.set_defaults(judged("yes"));
    let p2 = post(
        &proxy,
        "/v1/chat/completions",
        &det("chat", "What is a toll road", false),
        &app,
    )
    .await;
    assert_eq!(
        p2.cache.as_deref(),
        Some("semantic-hit"),
        "the judge said yes"
    );
    assert_eq!(content(&p2.body), reply);

    let m = proxy.metrics().await;
    for (result, n) in [("same", 1.0), ("different", 1.0)] {
        assert_eq!(
            metric(
                &m,
                "tollgate_cache_semantic_judgments_total",
                &[("result", result)]
            ),
            Some(n),
            "{result}: {m}"
        );
    }
}
