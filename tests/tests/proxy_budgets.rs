//! Black-box: budgets and rate limits on the request path of a real proxy
//! process — refusals in both error shapes, rate limits, several scopes,
//! downgrade, window rollover, in-memory persistence across a restart and
//! a reload. Accounting (exact and estimated usage on both APIs) is in
//! `budgets/accounting.rs`; the Redis-backed cases (three proxies sharing
//! one budget, Redis outages) in `budgets/shared.rs`.

#[path = "budgets/accounting.rs"]
mod accounting;
mod budgets;
mod harness;
#[path = "budgets/shared.rs"]
mod shared;

use std::time::{Duration, Instant};

use budgets::*;
use harness::*;
use serde_json::Value;

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
    // The spend and the refusal below must fall in one window (UTC
    // minutes): late in a minute, wait for the next one to begin.
    let into_minute = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 60;
    if into_minute >= 40 {
        tokio::time::sleep(Duration::from_secs(60 - into_minute)).await;
    }
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

#[tokio::test]
async fn shadow_traffic_is_budgeted_only_when_configured() {
    let mock = exact_mock(0).await;
    for counted in [false, true] {
        let routing = format!(
            "routing:\n  routes:\n    - name: chat\n      targets: [{{provider: openai, model: gpt-4o-mini}}]\n      shadow: {{provider: openai, model: \"ft:cheap\", share: 1.0, countAgainstBudget: {counted}}}\n"
        );
        let proxy = ProxyProc::start(&config_with(&mock, ROOMY, &routing));
        let mut body = exact(false);
        body["model"] = "chat".into();
        let r = post_chat(&client(), &proxy, &body, &[]).await;
        assert_eq!(r.status(), 200);
        // The primary always settles; the mirror adds a second settlement
        // only when it counts.
        wait_for("the mirror", Duration::from_secs(10), || async {
            let m = proxy.metrics().await;
            (metric_sum(&m, "tollgate_shadow_requests_total", &[("result", "ok")]) >= 1.0)
                .then_some(())
        })
        .await;
        let m = settled(&proxy, if counted { 2.0 } else { 1.0 }).await;
        let shadow_spend = metric_sum(
            &m,
            "tollgate_budget_spend_usd_total",
            &[("model", "ft:cheap")],
        );
        assert_eq!(shadow_spend > 0.0, counted, "countAgainstBudget: {counted}");
        let primary = metric_sum(
            &m,
            "tollgate_budget_spend_usd_total",
            &[("model", "gpt-4o-mini")],
        );
        assert!((primary - COST).abs() < 1e-9, "primary spend {primary}");
    }
}
