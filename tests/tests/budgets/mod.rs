//! Support for the budget suites: a real `redis-server` per test, budget
//! configs with round prices, readers for the budget metrics, and a
//! Sentinel failover under a budget (plain and over TLS).
//!
//! Prices are chosen so costs are exact: `gpt-4o-mini` costs nothing per
//! input token and $0.001 per output token, so a request whose reply is
//! capped at `max_tokens: 10` (and has at least 10 words) reserves and
//! spends exactly [`COST`] whatever the prompt estimate says.
#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use tollgate_tests::redis::RedisSentinel;

use crate::harness::*;

/// USD of one [`exact`] request.
pub(crate) const COST: f64 = 0.01;
/// Reply words the mock produces for [`exact`] requests (more than 10).
pub(crate) const REPLY: &str = "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12";

/// `budgets:` prices (USD per million tokens), indented for the section.
pub(crate) const PRICES: &str = r#"  pricing:
    models:
      gpt-4o-mini: {input: 0, output: 1000}
      claude-sonnet-4-5: {input: 1000, output: 2000}
      ft:cheap: {input: 0, output: 100}
"#;

/// A proxy config (the harness's two providers) with `budgets:` made of
/// [`PRICES`] and `body`, and `extra` top-level YAML (e.g. `routing:`).
pub(crate) fn config_with(mock: &MockServer, body: &str, extra: &str) -> String {
    config(
        &mock.url(),
        "",
        &format!("{extra}\nbudgets:\n{PRICES}{body}"),
    )
}

/// A chat request that costs exactly [`COST`] (with the mock's reply set
/// to [`REPLY`]).
pub(crate) fn exact(stream: bool) -> serde_json::Value {
    let mut v = chat("gpt-4o-mini", "spend some budget", stream);
    v["max_tokens"] = 10.into();
    v
}

/// A mock whose replies are [`REPLY`] and take `latency_ms`.
pub(crate) async fn exact_mock(latency_ms: u64) -> MockServer {
    let m = mock().await;
    m.set_defaults(tollgate_tests::mock::Switches {
        reply: Some(REPLY.into()),
        latency_ms: (latency_ms > 0).then_some(latency_ms),
        ..Default::default()
    });
    m
}

/// Sends `body` to `/v1/chat/completions` with extra headers.
pub(crate) async fn post_chat(
    c: &reqwest::Client,
    proxy: &ProxyProc,
    body: &serde_json::Value,
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let mut req = c
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

/// A header of a response as text.
pub(crate) fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The sum of every sample of `name` whose labels contain `labels`.
pub(crate) fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits until `proxy` has ended `n` admissions (settled or released) and
/// holds no reservation; returns its metrics text, scraped after that.
///
/// A scrape is not one snapshot: it reads its counters one by one, in no
/// fixed order, so the scrape that shows the settlement counted may have
/// read the token and spend counters just before the same settlement
/// raised them. The text returned is a scrape taken afterwards.
pub(crate) async fn settled(proxy: &ProxyProc, n: f64) -> String {
    wait_for("budget settlements", Duration::from_secs(20), || async {
        let m = proxy.metrics().await;
        let done = metric_sum(&m, "tollgate_budget_settlements_total", &[]);
        let held = metric(&m, "tollgate_budget_reservations_in_flight", &[]).unwrap_or(0.0);
        (done >= n && held == 0.0).then_some(())
    })
    .await;
    proxy.metrics().await
}

/// Settled USD on `proxy`, all models.
pub(crate) fn spend(metrics: &str) -> f64 {
    metric_sum(metrics, "tollgate_budget_spend_usd_total", &[])
}

/// A generous policy budget: admission and settlement run, nothing refuses.
pub(crate) const ROOMY: &str =
    "  limits:\n    - {name: policy, scope: policy, window: day, usd: 100}\n";

/// The JSON data events of an SSE response, without `[DONE]`.
pub(crate) async fn sse_datas(resp: reqwest::Response) -> Vec<Value> {
    let text = resp.text().await.unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

/// Sends `body` to `path` (with `anthropic-version` for `/v1/messages`).
pub(crate) async fn post(
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

/// Settled tokens of one model, type and estimate flag.
pub(crate) fn tokens(m: &str, model: &str, kind: &str, estimated: &str) -> f64 {
    metric_sum(
        m,
        "tollgate_budget_tokens_total",
        &[("model", model), ("type", kind), ("estimated", estimated)],
    )
}

/// `x-tollgate-budget-remaining-usd` as a number.
pub(crate) fn remaining(r: &reqwest::Response) -> f64 {
    header(r, "x-tollgate-budget-remaining-usd")
        .expect("budget header")
        .parse()
        .unwrap()
}

// === Redis ===

pub(crate) use tollgate_tests::redis::Redis;

/// Waits until the proxies together have ended `n` admissions, hold no
/// reservation and have no settlement queued; returns their total spend,
/// scraped afterwards (see [`settled`]: one scrape is not a snapshot).
pub(crate) async fn all_settled(proxies: &[ProxyProc], n: f64) -> f64 {
    wait_for(
        "settlements on every proxy",
        Duration::from_secs(30),
        || async {
            let mut done = 0.0;
            for p in proxies {
                let m = p.metrics().await;
                let busy = metric(&m, "tollgate_budget_reservations_in_flight", &[]).unwrap_or(0.0)
                    + metric(&m, "tollgate_budget_pending_settlements", &[]).unwrap_or(0.0);
                if busy > 0.0 {
                    return None;
                }
                done += metric_sum(&m, "tollgate_budget_settlements_total", &[]);
            }
            (done >= n).then_some(())
        },
    )
    .await;
    let mut usd = 0.0;
    for p in proxies {
        usd += spend(&p.metrics().await);
    }
    usd
}

/// Two proxies spend through the master the Sentinels of `sentinel` name
/// (`redis`: the store's `redis:` block, flow style, on them); the master
/// is killed (SIGKILL) and the Sentinels promote the replica; the proxies
/// ask again and go on counting from the spend the replica had (nothing
/// is reset, nothing counted twice).
pub(crate) async fn budget_follows_a_sentinel_failover(sentinel: &mut RedisSentinel, redis: &str) {
    let mock = exact_mock(0).await;
    let body = format!(
        "  store:\n    type: redis\n    failMode: closed\n    redis: {redis}\n  limits:\n    - {{name: team, scope: header, header: x-tollgate-team, window: day, usd: 1.0}}\n"
    );
    let cfg = config_with(&mock, &body, "");
    let proxies: Vec<ProxyProc> = (0..2).map(|_| ProxyProc::start(&cfg)).collect();
    let c = client();
    let team = [("x-tollgate-team", "a")];
    for i in 0..30 {
        let r = post_chat(&c, &proxies[i % 2], &exact(false), &team).await;
        assert_eq!(r.status(), 200);
    }
    let spent = all_settled(&proxies, 30.0).await;
    assert!((spent - 0.30).abs() < 1e-9, "spent ${spent}");
    sentinel.replicate().await;
    sentinel.kill_master().await;

    // Each proxy finds the new master (refusals while it looks: fail closed).
    let mut admitted = 30;
    for p in &proxies {
        wait_for(
            "a request served after the failover",
            Duration::from_secs(20),
            || async {
                let r = post_chat(&c, p, &exact(false), &team).await;
                match r.status().as_u16() {
                    200 => Some(()),
                    503 => None,
                    s => panic!("unexpected {s}"),
                }
            },
        )
        .await;
        admitted += 1;
    }
    // The counters moved with the data: what is left is $1.00 less every
    // admitted request, this one's reservation included.
    let r = post_chat(&c, &proxies[0], &exact(false), &team).await;
    assert_eq!(r.status(), 200);
    admitted += 1;
    let left = 1.0 - admitted as f64 * 0.01;
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some(format!("{left:.6}").as_str())
    );
}

/// A `store:` block (indented for `budgets:`) on a test Redis.
pub(crate) trait StoreBlock {
    fn store(&self, prefix: &str, fail_mode: &str, timeout: &str) -> String;
}

impl StoreBlock for Redis {
    fn store(&self, prefix: &str, fail_mode: &str, timeout: &str) -> String {
        format!(
            "  store:\n    type: redis\n    failMode: {fail_mode}\n    redis: {{url: \"{}\", keyPrefix: {prefix}, timeout: {timeout}}}\n",
            self.url()
        )
    }
}
