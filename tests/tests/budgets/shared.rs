//! Black-box: budgets shared through a real `redis-server` — three proxy
//! processes under 300 concurrent requests, and Redis stopped and restarted
//! mid-run in both fail modes; the same through a Redis Cluster, and a
//! Sentinel failover.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::budgets::*;
use crate::harness::*;

/// `n` concurrent requests spread over `proxies`; (admitted, refused).
async fn storm(proxies: &[ProxyProc], n: usize, body: Value, team: &str) -> (usize, usize) {
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (c, body, team) = (c.clone(), body.clone(), team.to_string());
        let url = format!("{}/v1/chat/completions", proxies[i % proxies.len()].url);
        tasks.spawn(async move {
            let r = c
                .post(url)
                .header("x-tollgate-team", team)
                .json(&body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .expect("no request hangs or fails");
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, text)
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(res) = tasks.join_next().await {
        match res.unwrap() {
            (200, _) => ok += 1,
            (429, text) => {
                assert!(text.contains("budget_exceeded"), "{text}");
                refused += 1
            }
            (status, text) => panic!("unexpected {status}: {text}"),
        }
    }
    (ok, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_proxies_share_one_redis_budget_under_300_concurrent_requests() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    // Slow replies, so hundreds of requests are in flight at once.
    let mock = exact_mock(300).await;
    let body = format!(
        "{}  reservation: {{defaultMaxOutputTokens: 5}}\n  limits:\n    - {{name: team, scope: header, header: x-tollgate-team, window: day, usd: 1.0}}\n",
        redis.store("shared", "closed", "2s")
    );
    let cfg = config_with(&mock, &body, "");
    let proxies: Vec<ProxyProc> = (0..3).map(|_| ProxyProc::start(&cfg)).collect();

    // A: reservations equal the actual cost ($0.01 each): exactly $1.00 of
    // requests is admitted, however they interleave across the proxies.
    let started = Instant::now();
    let (ok, refused) = storm(&proxies, 300, exact(false), "a").await;
    let took = started.elapsed();
    let spent_a = all_settled(&proxies, ok as f64).await;
    eprintln!("exact reservations: {ok} admitted, {refused} refused, ${spent_a:.6} settled of $1.00 in {took:?}");
    assert_eq!(
        ok, 100,
        "no false rejection: every $0.01 of the $1.00 was used"
    );
    assert_eq!(refused, 200);
    assert!((spent_a - 1.0).abs() < 1e-9, "spent ${spent_a}");
    let c = client();
    let probe = post_chat(&c, &proxies[0], &exact(false), &[("x-tollgate-team", "a")]).await;
    assert_eq!(probe.status(), 429);
    assert_eq!(
        header(&probe, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.000000")
    );

    // B: no max_tokens, so each request reserves 5 output tokens ($0.005)
    // but the reply costs 12 ($0.012). The overshoot is bounded by what the
    // admitted requests cost beyond their reservations.
    let (ok, refused) = storm(
        &proxies,
        300,
        chat("gpt-4o-mini", "spend some budget", false),
        "b",
    )
    .await;
    let spent_b = all_settled(&proxies, 100.0 + ok as f64).await - spent_a;
    let overshoot = spent_b - 1.0;
    let bound = ok as f64 * (0.012 - 0.005);
    eprintln!("under-reserved: {ok} admitted, {refused} refused, ${spent_b:.6} settled of $1.00: overshoot ${overshoot:.6}, bound ${bound:.6}");
    assert!(
        (spent_b - ok as f64 * 0.012).abs() < 1e-9,
        "every admitted request settled exactly once"
    );
    assert!(
        overshoot <= bound + 1e-9,
        "overshoot {overshoot} > bound {bound}"
    );
    assert!(ok > 0 && refused > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_fails_open_or_closed_and_loses_no_settlement() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let mock = exact_mock(0).await;
    let limits = "  limits:\n    - {name: daily, scope: policy, window: day, usd: 1.0}\n";
    let open = ProxyProc::start(&config_with(
        &mock,
        &format!("{}{limits}", redis.store("open", "open", "200ms")),
        "",
    ));
    let closed = ProxyProc::start(&config_with(
        &mock,
        &format!("{}{limits}", redis.store("closed", "closed", "200ms")),
        "",
    ));
    let c = client();
    for p in [&open, &closed] {
        let r = post_chat(&c, p, &exact(false), &[]).await;
        assert_eq!(r.status(), 200);
        assert_eq!(
            header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
            Some("0.990000")
        );
    }

    // Three slow requests on each proxy, admitted while Redis is up, settle
    // while it is down.
    let mut slow = tokio::task::JoinSet::new();
    for p in [&open, &closed] {
        for _ in 0..3 {
            let (c, url) = (c.clone(), format!("{}/v1/chat/completions", p.url));
            slow.spawn(async move {
                c.post(url)
                    .header("x-mock-latency-ms", "1500")
                    .json(&exact(false))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            });
        }
    }
    mock.wait_for_requests(8, Duration::from_secs(10)).await;
    redis.stop();

    // Down: `open` admits (and counts), `closed` refuses at once.
    let t = Instant::now();
    let r = post_chat(&c, &open, &exact(false), &[]).await;
    assert_eq!(r.status(), 200);
    assert!(header(&r, "x-tollgate-budget-remaining-usd").is_none());
    let r = post_chat(&c, &closed, &exact(false), &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "retry-after").as_deref(), Some("1"));
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "budget_store_unavailable");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        t.elapsed()
    );
    while let Some(status) = slow.join_next().await {
        assert_eq!(status.unwrap(), 200);
    }
    // `closed` may also queue the release of its refused admission, if
    // that call was cut mid-way (the reservation may exist).
    for (p, queued) in [(&open, 4.0), (&closed, 3.0)] {
        wait_for("queued settlements", Duration::from_secs(10), || async {
            let m = p.metrics().await;
            metric(&m, "tollgate_budget_pending_settlements", &[])
                .is_some_and(|n| n >= queued)
                .then_some(())
        })
        .await;
    }
    let m = open.metrics().await;
    assert_eq!(
        metric(
            &m,
            "tollgate_budget_admissions_total",
            &[("outcome", "fail_open")]
        ),
        Some(1.0)
    );

    // Back: queued settlements are written, and `closed` admits again by itself.
    redis.restart().await;
    for p in [&open, &closed] {
        wait_for(
            "queued settlements written",
            Duration::from_secs(15),
            || async {
                let m = p.metrics().await;
                (metric(&m, "tollgate_budget_pending_settlements", &[]) == Some(0.0)).then_some(())
            },
        )
        .await;
    }
    let r = wait_for("closed admits again", Duration::from_secs(10), || async {
        let r = post_chat(&c, &closed, &exact(false), &[]).await;
        (r.status() == 200).then_some(r)
    })
    .await;
    // $0.04 before (1 + 3 slow), this one held: nothing was lost.
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.950000")
    );
    let r = post_chat(&c, &open, &exact(false), &[]).await;
    // $0.05 before (1 + 3 slow + 1 admitted while down), this one held.
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.940000")
    );
    for p in [&open, &closed] {
        let m = p.metrics().await;
        assert_eq!(
            metric(&m, "tollgate_budget_lost_settlements_total", &[]),
            Some(0.0)
        );
        assert!(reqwest::get(format!("{}/healthz", p.admin))
            .await
            .unwrap()
            .status()
            .is_success());
    }
}

/// A budget shared through a real Redis Cluster (three masters): every key
/// one admission touches carries the policy's hash tag, so its Lua script
/// runs on one node; three proxies admit exactly $1.00 of $0.01 requests
/// under 300 concurrent ones. The exact cache on the same cluster shares
/// its entries (keys spread over the nodes).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_proxies_share_a_budget_through_a_redis_cluster() {
    let Some(cluster) = tollgate_tests::redis::RedisCluster::start(3).await else {
        return;
    };
    let mock = exact_mock(100).await;
    let redis = cluster.store("keyPrefix: team-a, timeout: 2s");
    let body = format!(
        "  store:\n    type: redis\n    failMode: closed\n    redis: {redis}\n  reservation: {{defaultMaxOutputTokens: 5}}\n  limits:\n    - {{name: team, scope: header, header: x-tollgate-team, window: day, usd: 1.0}}\n"
    );
    let cfg = config_with(
        &mock,
        &body,
        &format!("cache:\n  ttl: 1h\n  store: {{type: redis, redis: {redis}}}\n"),
    );
    let proxies: Vec<ProxyProc> = (0..3).map(|_| ProxyProc::start(&cfg)).collect();

    let (ok, refused) = storm(&proxies, 300, exact(false), "a").await;
    let spent = all_settled(&proxies, ok as f64).await;
    assert_eq!((ok, refused), (100, 200), "exactly $1.00 admitted");
    assert!((spent - 1.0).abs() < 1e-9, "spent ${spent}");
    // Every budget key is in the policy's slot, so on one node.
    let budget_keys = cluster.keys("{team-a}:*").await;
    assert!(!budget_keys.is_empty());
    let nodes_used: std::collections::BTreeSet<&str> = budget_keys
        .iter()
        .map(|k| k.split_once(' ').unwrap().0)
        .collect();
    assert_eq!(nodes_used.len(), 1, "{budget_keys:?}");

    // The cache: a deterministic request answered by one proxy is a hit on
    // another, through the cluster.
    let c = client();
    let mut det = chat("gpt-4o-mini", "what does a toll road cost", false);
    det["temperature"] = 0.into();
    let first = post_chat(&c, &proxies[0], &det, &[("x-tollgate-team", "b")]).await;
    assert_eq!(header(&first, "x-tollgate-cache").as_deref(), Some("miss"));
    wait_for(
        "the entry in the cluster",
        Duration::from_secs(10),
        || async { (!cluster.keys("team-a:cache:*").await.is_empty()).then_some(()) },
    )
    .await;
    let second = post_chat(&c, &proxies[1], &det, &[("x-tollgate-team", "b")]).await;
    assert_eq!(header(&second, "x-tollgate-cache").as_deref(), Some("hit"));
}

/// Sentinel-managed Redis: a budget carries over a failover
/// ([`budget_follows_a_sentinel_failover`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_budget_follows_a_sentinel_failover() {
    let Some(mut sentinel) = tollgate_tests::redis::RedisSentinel::start().await else {
        return;
    };
    let redis = sentinel.store("keyPrefix: sent, timeout: 500ms");
    budget_follows_a_sentinel_failover(&mut sentinel, &redis).await;
}
