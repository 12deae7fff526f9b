//! Black-box: a Redis Cluster failover under traffic. Three masters with a
//! replica each; three proxies (two `failMode: closed`, one `open`) share a
//! budget whose keys live on one master; traffic runs throughout. That
//! master is killed (SIGKILL), its replica is promoted, and the proxies go
//! on without a restart. Every admitted request is settled exactly once,
//! nothing is counted twice in Redis, and the spend Redis holds stays
//! within the limit plus what the open proxy admitted while it could not
//! reach Redis; writes the replica had not received when its master died
//! are lost, and are reported. The connections each proxy keeps on every
//! node of one Redis, a Cluster and Sentinel-managed Redis, through a
//! restart or failover, are in `redis/connections.rs`.

mod budgets;
#[path = "redis/connections.rs"]
mod connections;
mod harness;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use budgets::*;
use harness::*;
use tollgate_tests::redis::RedisCluster;

/// The budget, in USD: 150 requests of $0.01.
const LIMIT: f64 = 1.5;
const PREFIX: &str = "failover";
/// Concurrent clients per proxy.
const WORKERS: usize = 2;

/// What the clients saw, per proxy.
#[derive(Default)]
struct Seen {
    ok: AtomicUsize,
    exhausted: AtomicUsize,
    unavailable: AtomicUsize,
}

impl Seen {
    fn total_ok(seen: &[Arc<Seen>]) -> usize {
        seen.iter().map(|s| s.ok.load(Ordering::SeqCst)).sum()
    }
}

/// Sends $0.01 requests to `url` until `stop`, counting the answers.
async fn client_loop(url: String, seen: Arc<Seen>, stop: Arc<AtomicBool>) {
    let c = client();
    while !stop.load(Ordering::SeqCst) {
        let r = c
            .post(format!("{url}/v1/chat/completions"))
            .json(&exact(false))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .expect("no request fails or hangs");
        let status = r.status().as_u16();
        let code = header(&r, "x-tollgate-error");
        match (status, code.as_deref()) {
            (200, _) => seen.ok.fetch_add(1, Ordering::SeqCst),
            (429, Some("budget_exceeded")) => seen.exhausted.fetch_add(1, Ordering::SeqCst),
            (503, Some("budget_store_unavailable")) => {
                seen.unavailable.fetch_add(1, Ordering::SeqCst)
            }
            _ => panic!("unexpected {status} {code:?}: {}", r.text().await.unwrap()),
        };
        if status != 200 {
            // Refusals are instant: pace them.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Admissions of `outcome` on `p`.
async fn admissions(p: &ProxyProc, outcome: &str) -> f64 {
    metric(
        &p.metrics().await,
        "tollgate_budget_admissions_total",
        &[("outcome", outcome)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_survives_a_cluster_failover_under_traffic() {
    let Some(mut cluster) = RedisCluster::start_replicated().await else {
        return;
    };
    let mock = exact_mock(30).await;
    let redis = cluster.store(&format!("keyPrefix: {PREFIX}, timeout: 500ms"));
    let config = |fail_mode: &str| {
        let body = format!(
            "  store:\n    type: redis\n    failMode: {fail_mode}\n    redis: {redis}\n  limits:\n    - {{name: daily, scope: policy, window: day, usd: {LIMIT}}}\n"
        );
        config_with(&mock, &body, "")
    };
    let proxies = [
        ProxyProc::start(&config("closed")),
        ProxyProc::start(&config("closed")),
        ProxyProc::start(&config("open")),
    ];
    let open = &proxies[2];
    let seen: Vec<Arc<Seen>> = proxies.iter().map(|_| Arc::default()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = tokio::task::JoinSet::new();
    for (p, s) in proxies.iter().zip(&seen) {
        for _ in 0..WORKERS {
            clients.spawn(client_loop(p.url.clone(), s.clone(), stop.clone()));
        }
    }

    // Traffic flows; then the budget's master dies under it.
    wait_for("40 admitted requests", Duration::from_secs(30), || async {
        (Seen::total_ok(&seen) >= 40).then_some(())
    })
    .await;
    let tag = format!("{{{PREFIX}}}");
    let killed_at = Instant::now();
    let ok_before = Seen::total_ok(&seen);
    let (old, new) = cluster.kill_master_of(&tag).await;
    let promoted_in = killed_at.elapsed();

    // Every proxy decides through the new master again, without a restart:
    // an admission, or a refusal because the budget is spent (the open
    // proxy's admissions meanwhile may have spent it).
    for p in &proxies {
        let answered =
            || async { admissions(p, "admitted").await + admissions(p, "budget_exceeded").await };
        let before = answered().await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while answered().await <= before {
            assert!(
                Instant::now() < deadline,
                "no answer from the promoted replica; the proxy's log ends:\n{}",
                tail(&p.log(), 15)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let recovered_in = killed_at.elapsed();
    let unavailable_during: usize = seen
        .iter()
        .map(|s| s.unavailable.load(Ordering::SeqCst))
        .sum();
    let fail_open_during = admissions(open, "fail_open").await;

    // Until the budget is spent: every proxy refuses for it.
    for p in &proxies {
        wait_for("the budget exhausted", Duration::from_secs(60), || async {
            let c = client();
            let r = post_chat(&c, p, &exact(false), &[]).await;
            match r.status().as_u16() {
                200 => {
                    seen[0].ok.fetch_add(1, Ordering::SeqCst);
                    None
                }
                429 => Some(()),
                _ => None,
            }
        })
        .await;
    }
    stop.store(true, Ordering::SeqCst);
    while let Some(r) = clients.join_next().await {
        r.unwrap();
    }

    // Every admitted request settled exactly once (from the proxies' side).
    let admitted = Seen::total_ok(&seen);
    let mut settled_usd = 0.0;
    let mut fail_open = 0.0;
    wait_for(
        "every settlement written",
        Duration::from_secs(30),
        || async {
            let mut usd = 0.0;
            for p in &proxies {
                let m = p.metrics().await;
                let busy = metric(&m, "tollgate_budget_reservations_in_flight", &[]).unwrap_or(0.0)
                    + metric(&m, "tollgate_budget_pending_settlements", &[]).unwrap_or(0.0);
                if busy > 0.0 {
                    return None;
                }
                usd += spend(&m);
            }
            (usd >= admitted as f64 * COST - 1e-9).then_some(usd)
        },
    )
    .await;
    for p in &proxies {
        let m = p.metrics().await;
        settled_usd += spend(&m);
        fail_open += admissions(p, "fail_open").await;
        assert_eq!(
            metric(&m, "tollgate_budget_lost_settlements_total", &[]),
            Some(0.0)
        );
    }
    assert!(
        (settled_usd - admitted as f64 * COST).abs() < 1e-9,
        "{admitted} admitted, ${settled_usd} settled"
    );

    // What Redis holds now, read with the proxy's own key and window code.
    let cfg = tollgate_config::from_yaml_str(&config("closed")).unwrap();
    let tollgate_config::BudgetStore::Redis(store) = &cfg.budgets.store else {
        unreachable!()
    };
    let mut conn = tollgate_spend::redis_conn::connect_lazy(store, &Default::default()).unwrap();
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let in_redis = tollgate_spend::read_spend(
        &mut conn,
        &cfg.budgets,
        &tollgate_spend::Identity::of(&cfg),
        now_ms,
    )
    .await
    .unwrap()[0]
        .unwrap()
        .usd as f64
        / 1e9;
    let lost = settled_usd - in_redis;
    eprintln!(
        "failover: master :{old} killed after {ok_before} admissions; replica :{new} promoted in {promoted_in:?}, every proxy answering from it again after {recovered_in:?}; \
         {unavailable_during} requests refused 503 (failMode closed) and {fail_open_during} admitted fail-open meanwhile ({fail_open} in all); \
         {admitted} admitted in all, ${settled_usd:.2} settled, ${in_redis:.2} in Redis (lost with the old master: ${lost:.2}), limit ${LIMIT}"
    );
    assert!(
        in_redis <= settled_usd + 1e-9,
        "Redis holds more than was settled: counted twice"
    );
    assert!(
        in_redis <= LIMIT + fail_open * COST + 1e-9,
        "${in_redis} in Redis beyond ${LIMIT} + {fail_open} fail-open admissions"
    );
    assert!(
        settled_usd <= LIMIT + fail_open * COST + lost + 1e-9,
        "overshoot beyond the bound"
    );
    assert!(
        lost <= (proxies.len() * WORKERS) as f64 * COST + 1e-9,
        "more lost than the requests in flight at the kill: ${lost}"
    );
}
