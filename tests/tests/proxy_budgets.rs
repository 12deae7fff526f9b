//! Black-box: budgets and rate limits on the request path of a real proxy
//! process — exact and estimated accounting on both APIs, refusals in both
//! error shapes, rate limits, several scopes, downgrade, window rollover,
//! in-memory persistence across a restart. The Redis-backed cases (three
//! proxies sharing one budget, Redis outages) are in `budgets/shared.rs`.

mod budgets;
mod harness;
#[path = "budgets/shared.rs"]
mod shared;

use std::time::{Duration, Instant};

use budgets::*;
use harness::*;
use serde_json::{json, Value};

/// A generous policy budget: admission and settlement run, nothing refuses.
const ROOMY: &str = "  limits:\n    - {name: policy, scope: policy, window: day, usd: 100}\n";

async fn sse_datas(resp: reqwest::Response) -> Vec<Value> {
    let text = resp.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

async fn post(
    proxy: &ProxyProc,
    path: &str,
    body: &Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = client().post(format!("{}{path}", proxy.url)).json(body);
    if path == "/v1/messages" {
        req = req.header("anthropic-version", "2023-06-01");
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

fn tokens(m: &str, model: &str, kind: &str, estimated: &str) -> f64 {
    metric_sum(
        m,
        "tollgate_budget_tokens_total",
        &[("model", model), ("type", kind), ("estimated", estimated)],
    )
}

fn remaining(r: &reqwest::Response) -> f64 {
    header(r, "x-tollgate-budget-remaining-usd")
        .expect("budget header")
        .parse()
        .unwrap()
}

#[tokio::test]
async fn usage_is_settled_exactly_on_both_apis_streamed_or_not() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config_with(&mock, ROOMY, ""));
    // The mock counts words: 3 prompt tokens, and the reply
    // "Mock reply from <model>: one two three" is 7.
    let text = "one two three";

    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, false),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let first = remaining(&r);
    r.bytes().await.unwrap();
    settled(&proxy, 1.0).await;
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, false),
        &[],
    )
    .await;
    // The same request reserves the same worst case: the difference is
    // exactly what the first one cost (7 output tokens at $0.001).
    assert!(
        (first - remaining(&r) - 0.007).abs() < 1e-9,
        "{first} then {}",
        remaining(&r)
    );
    r.bytes().await.unwrap();

    // Streamed without asking for usage: the proxy asks, and strips the chunk.
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, true),
        &[],
    )
    .await;
    let datas = sse_datas(r).await;
    assert!(datas.iter().all(|d| d["usage"].is_null()), "{datas:?}");
    // Streamed, asking: the app gets the usage chunk.
    let mut asked = chat("gpt-4o-mini", text, true);
    asked["stream_options"] = json!({"include_usage": true});
    let datas = sse_datas(post(&proxy, "/v1/chat/completions", &asked, &[]).await).await;
    let usage = &datas.last().unwrap()["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(3), Some(7))
    );

    let msgs = |stream| messages("claude-sonnet-4-5", text, stream);
    let r = post(&proxy, "/v1/messages", &msgs(false), &[]).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = post(&proxy, "/v1/messages", &msgs(true), &[]).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    let m = settled(&proxy, 6.0).await;
    assert_eq!(tokens(&m, "gpt-4o-mini", "input", "false"), 12.0);
    assert_eq!(tokens(&m, "gpt-4o-mini", "output", "false"), 28.0);
    assert_eq!(tokens(&m, "claude-sonnet-4-5", "input", "false"), 6.0);
    assert_eq!(tokens(&m, "claude-sonnet-4-5", "output", "false"), 14.0);
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("estimated", "true")]
        ),
        0.0,
        "every figure came from the provider"
    );
    let usd = |model| metric_sum(&m, "tollgate_budget_spend_usd_total", &[("model", model)]);
    assert!(
        (usd("gpt-4o-mini") - 0.028).abs() < 1e-9,
        "{}",
        usd("gpt-4o-mini")
    );
    // 6 input at $0.001 + 14 output at $0.002.
    assert!((usd("claude-sonnet-4-5") - 0.034).abs() < 1e-9);
}

#[tokio::test]
async fn missing_usage_cut_streams_and_departed_apps_are_estimated() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config_with(&mock, ROOMY, ""));
    let text = "one two three";
    let omit = [("x-mock-omit-usage", "true")];
    for (path, body) in [
        ("/v1/chat/completions", chat("gpt-4o-mini", text, false)),
        ("/v1/chat/completions", chat("gpt-4o-mini", text, true)),
        ("/v1/messages", messages("claude-sonnet-4-5", text, false)),
        ("/v1/messages", messages("claude-sonnet-4-5", text, true)),
    ] {
        let r = post(&proxy, path, &body, &omit).await;
        assert_eq!(r.status(), 200, "{path}");
        r.bytes().await.unwrap();
    }
    let m = settled(&proxy, 4.0).await;
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "settled"), ("estimated", "true")]
        ),
        4.0
    );
    // The tokenizer counts the prompt (with message framing) and the reply
    // actually sent; the mock's word counts are a floor.
    for model in ["gpt-4o-mini", "claude-sonnet-4-5"] {
        let (i, o) = (
            tokens(&m, model, "input", "true"),
            tokens(&m, model, "output", "true"),
        );
        assert!((6.0..=60.0).contains(&i), "{model} input {i}");
        assert!((12.0..=60.0).contains(&o), "{model} output {o}");
    }

    // A stream the provider cuts after two events, and one the app leaves.
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, true),
        &[("x-mock-reset-after-chunks", "3")],
    )
    .await;
    r.bytes().await.unwrap();
    let mut r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", "a long answer please", true),
        &[("x-mock-chunks", "20"), ("x-mock-chunk-interval-ms", "100")],
    )
    .await;
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    let m = settled(&proxy, 6.0).await;
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "settled"), ("estimated", "true")]
        ),
        6.0,
        "both ended early and were charged an estimate, once"
    );
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "released")]
        ),
        0.0
    );
    assert!(
        mock.wait_for(Duration::from_secs(5), |m| m.cancelled_streams() >= 1)
            .await
    );
}

#[tokio::test]
async fn refusals_are_429_with_retry_after_in_both_shapes() {
    let mock = mock().await;
    let body = "  limits:\n    - {name: tiny, scope: policy, window: day, usd: 0.000001}\n";
    let proxy = ProxyProc::start(&config_with(&mock, body, ""));

    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", "hi there", false),
        &[],
    )
    .await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&retry), "until the day ends: {retry}");
    assert_eq!(
        header(&r, "x-tollgate-error").as_deref(),
        Some("budget_exceeded")
    );
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.000001")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_exceeded");
    assert_eq!(v["error"]["type"], "insufficient_quota");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("`tiny`"),
        "{v}"
    );

    let r = post(
        &proxy,
        "/v1/messages",
        &messages("claude-sonnet-4-5", "hi there", true),
        &[],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "retry-after").is_some());
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "rate_limit_error");

    assert!(mock.requests().is_empty(), "nothing went upstream");
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_budget_refusals_total",
            &[("limit", "tiny"), ("reason", "exceeded")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &m,
            "tollgate_proxy_errors_total",
            &[("reason", "budget_exceeded")]
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn requests_per_minute_per_user() {
    let mock = mock().await;
    let body = "  rateLimits:\n    - {name: rpm, scope: header, header: x-tollgate-user, requestsPerMinute: 3}\n";
    let proxy = ProxyProc::start(&config_with(&mock, body, ""));
    let c = client();
    let alice = [("x-tollgate-user", "alice")];
    for left in ["2", "1", "0"] {
        let r = post_chat(&c, &proxy, &chat("gpt-4o-mini", "hi", false), &alice).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-ratelimit-limit-requests").as_deref(),
            Some("3")
        );
        assert_eq!(
            header(&r, "x-ratelimit-remaining-requests").as_deref(),
            Some(left)
        );
    }
    let r = post_chat(&c, &proxy, &chat("gpt-4o-mini", "hi", false), &alice).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=20).contains(&retry),
        "one emission interval at most: {retry}"
    );
    assert_eq!(
        header(&r, "x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "rate_limit_exceeded");
    let bob = post_chat(
        &c,
        &proxy,
        &chat("gpt-4o-mini", "hi", false),
        &[("x-tollgate-user", "bob")],
    )
    .await;
    assert_eq!(bob.status(), 200, "another user has its own limit");
    assert_eq!(mock.requests().len(), 4);
}

#[tokio::test]
async fn every_scope_of_a_request_must_admit_it() {
    let mock = exact_mock(0).await;
    let body = "  limits:
    - {name: team, scope: header, header: x-tollgate-team, missingHeader: refuse, window: day, usd: 0.03}
    - {name: policy, scope: policy, window: day, usd: 0.05}
";
    let proxy = ProxyProc::start(&config_with(&mock, body, ""));
    let c = client();
    let ask = |team: &'static str| {
        let (c, proxy) = (&c, &proxy);
        async move {
            let r = post_chat(c, proxy, &exact(false), &[("x-tollgate-team", team)]).await;
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, text)
        }
    };
    for _ in 0..3 {
        assert_eq!(ask("a").await.0, 200);
    }
    let (status, text) = ask("a").await;
    assert_eq!(status, 429);
    assert!(text.contains("`team`"), "team a spent its $0.03: {text}");
    for _ in 0..2 {
        assert_eq!(ask("b").await.0, 200, "team b has its own budget");
    }
    let (status, text) = ask("b").await;
    assert_eq!(status, 429);
    assert!(
        text.contains("`policy`"),
        "the policy's $0.05 is spent: {text}"
    );
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 400, "missingHeader: refuse");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "missing_budget_header");
    let m = settled(&proxy, 5.0).await;
    assert!((spend(&m) - 0.05).abs() < 1e-9, "{}", spend(&m));
    assert_eq!(mock.requests().len(), 5);
}

#[tokio::test]
async fn an_exhausted_downgrade_budget_moves_requests_to_the_cheaper_route() {
    let mock = exact_mock(0).await;
    let routing = "routing:
  routes:
    - name: chat
      targets: [{provider: openai, model: gpt-4o-mini}]
    - name: chat-cheap
      targets: [{provider: openai, model: ft:cheap}]
";
    let body = "  limits:\n    - {name: premium, scope: policy, window: day, usd: 0.02, action: downgrade, downgradeTo: chat-cheap}\n";
    let proxy = ProxyProc::start(&config_with(&mock, body, routing));
    let c = client();
    let mut body = exact(false);
    body["model"] = "chat".into();
    let mut routes = vec![];
    for _ in 0..4 {
        let r = post_chat(&c, &proxy, &body, &[]).await;
        assert_eq!(r.status(), 200);
        routes.push((
            header(&r, "x-tollgate-route").unwrap(),
            header(&r, "x-tollgate-budget-action"),
        ));
        r.bytes().await.unwrap();
        settled(&proxy, routes.len() as f64).await;
    }
    assert_eq!(routes[0], ("chat".into(), None));
    assert_eq!(routes[1], ("chat".into(), None));
    assert_eq!(routes[2], ("chat-cheap".into(), Some("downgrade".into())));
    let seen: Vec<String> = mock
        .requests()
        .iter()
        .map(|r| r.json()["model"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(seen, ["gpt-4o-mini", "gpt-4o-mini", "ft:cheap", "ft:cheap"]);
    let m = proxy.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_budget_actions_total",
            &[("limit", "premium"), ("action", "downgrade")]
        ),
        Some(2.0)
    );
    // The cheap route is priced on its own model: 10 tokens at $100/M.
    let cheap = metric_sum(
        &m,
        "tollgate_budget_spend_usd_total",
        &[("model", "ft:cheap")],
    );
    assert!((cheap - 0.002).abs() < 1e-9, "{cheap}");
}

#[tokio::test]
async fn a_minute_budget_frees_itself_when_the_window_rolls_over() {
    let mock = exact_mock(0).await;
    let body = "  limits:\n    - {name: per-minute, scope: policy, window: minute, usd: 0.01}\n";
    let proxy = ProxyProc::start(&config_with(&mock, body, ""));
    let c = client();
    assert_eq!(
        post_chat(&c, &proxy, &exact(false), &[]).await.status(),
        200
    );
    settled(&proxy, 1.0).await;
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let refused_at = Instant::now();
    // Polled four times a second: each refused try costs nothing.
    let r = loop {
        let r = post_chat(&c, &proxy, &exact(false), &[]).await;
        if r.status() == 200 {
            break r;
        }
        assert_eq!(r.status(), 429);
        assert!(
            refused_at.elapsed() < Duration::from_secs(70),
            "never admitted again"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let waited = refused_at.elapsed();
    assert!(
        waited + Duration::from_secs(1) >= Duration::from_secs(retry),
        "admitted after {waited:?}, Retry-After was {retry}s"
    );
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.000000")
    );
}

#[tokio::test]
async fn in_memory_spend_survives_a_restart() {
    let mock = exact_mock(0).await;
    let state = tempfile::tempdir().unwrap();
    let path = state.path().join("budget.json");
    let body = format!(
        "  store: {{type: memory, persistPath: \"{}\", persistInterval: 1s}}\n  limits:\n    - {{name: daily, scope: policy, window: day, usd: 0.05}}\n",
        path.display()
    );
    let cfg = config_with(&mock, &body, "");
    let c = client();

    // Saved on SIGTERM.
    let mut proxy = ProxyProc::start(&cfg);
    for _ in 0..2 {
        assert_eq!(
            post_chat(&c, &proxy, &exact(false), &[]).await.status(),
            200
        );
    }
    settled(&proxy, 2.0).await;
    proxy.sigterm();
    assert!(proxy.wait_exit(Duration::from_secs(15)).unwrap().success());
    assert!(path.exists(), "state written on shutdown");

    // Saved periodically: a proxy killed without warning loses nothing
    // older than the interval.
    let proxy = ProxyProc::start(&cfg);
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(
        (remaining(&r) - 0.02).abs() < 1e-9,
        "$0.02 spent before the restart, $0.01 held: {}",
        remaining(&r)
    );
    settled(&proxy, 1.0).await;
    wait_for(
        "a periodic save of $0.03",
        Duration::from_secs(10),
        || async {
            let saved: Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
            let nano: u64 = saved["calendar"]
                .as_array()?
                .iter()
                .filter_map(|c| c["usd"].as_u64())
                .sum();
            (nano == 30_000_000).then_some(())
        },
    )
    .await;
    drop(proxy); // SIGKILL

    let proxy = ProxyProc::start(&cfg);
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.010000")
    );
    assert_eq!(
        post_chat(&c, &proxy, &exact(false), &[]).await.status(),
        200
    );
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 429, "five requests of $0.01 spent the $0.05");
}

#[tokio::test]
async fn spend_survives_a_config_reload_and_the_new_limit_applies() {
    let mock = exact_mock(0).await;
    let limit = |usd: &str| {
        format!("  limits:\n    - {{name: daily, scope: policy, window: day, usd: {usd}}}\n")
    };
    let proxy = ProxyProc::start(&config_with(&mock, &limit("0.05"), ""));
    let c = client();
    for _ in 0..2 {
        assert_eq!(
            post_chat(&c, &proxy, &exact(false), &[]).await.status(),
            200
        );
    }
    settled(&proxy, 2.0).await;
    let before = proxy.config_hash().await;
    proxy.write_config(&config_with(&mock, &limit("0.04"), ""));
    wait_for("the reload", Duration::from_secs(10), || async {
        (proxy.config_hash().await != before).then_some(())
    })
    .await;
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.010000"),
        "$0.02 spent before the reload counts against the new $0.04"
    );
    assert_eq!(
        post_chat(&c, &proxy, &exact(false), &[]).await.status(),
        200
    );
    assert_eq!(
        post_chat(&c, &proxy, &exact(false), &[]).await.status(),
        429
    );
}
