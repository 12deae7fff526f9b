//! Redis store tests against a real `redis-server` started per test on a
//! free port in a temporary directory (AOF on, so a restart keeps data).
//! Skipped, with a message, only when the `redis-server` binary is absent
//! and `TOLLGATE_REQUIRE_REDIS` is unset (CI sets it).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_tests::redis::Redis;

use crate::budget::fixtures::*;
use crate::budget::window::Span;
use crate::budget::*;

/// A multiplexed connection to the test server.
async fn conn(s: &Redis) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(s.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// A `store:` line; `extra` goes inside `redis:`.
fn store(url: &str, extra: &str) -> String {
    store_with(url, extra, "")
}

/// A `store:` line; `redis_extra` goes inside `redis:`, `store_extra` after it.
fn store_with(url: &str, redis_extra: &str, store_extra: &str) -> String {
    format!(
        "  store: {{type: redis, redis: {{url: \"{url}\", keyPrefix: t, timeout: 200ms{redis_extra}}}{store_extra}}}\n"
    )
}

async fn redis_engine(s: &Redis, body: &str, clock: Arc<dyn Clock>) -> BudgetEngine {
    engine(&format!("{}{body}", store(&s.url(), "")), clock).await
}

fn now_clock() -> Arc<FakeClock> {
    Arc::new(FakeClock::new(SystemClock.now_ms()))
}

fn pending(e: &BudgetEngine) -> usize {
    match &e.inner().store {
        Store::Redis(r) => r.pending_len(),
        Store::Memory(_) => 0,
    }
}

async fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const DAILY_1C: &str =
    "  limits: [{name: daily, scope: header, header: x-team, window: day, usd: 0.01}]\n";

#[tokio::test]
async fn exact_accounting_and_hashed_keys() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let e = redis_engine(&s, DAILY_1C, now_clock()).await;
    let h = headers(&[("x-team", "secret-team")]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert!(a.is_reserved());
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.008000"
    );
    a.settle("m1", &usage(800, 100), false).await;
    let b = e.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&b, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.007000"
    );
    b.release().await;

    let mut c = conn(&s).await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg("t:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.iter().all(|k| !k.contains("secret")), "{keys:?}");
    let spent = keys
        .iter()
        .find(|k| k.starts_with("t:spent:daily:header:day:"))
        .unwrap();
    let u: i64 = ::redis::cmd("HGET")
        .arg(spent)
        .arg("u")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(u, 1_000_000);
    let ttl: i64 = ::redis::cmd("PTTL")
        .arg(spent)
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(
        ttl > 0 && ttl <= 86_400_000 + 60_000,
        "expires with its window: {ttl}"
    );
    // Released reservations leave an empty hash, which Redis deletes.
    assert!(!keys.iter().any(|k| k.starts_with("t:resv:")), "{keys:?}");
}

#[tokio::test]
async fn refusals_are_all_or_nothing() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let body = "  limits:\n    - {name: d, scope: policy, window: day, usd: 0.01}\n    - {name: small, scope: header, header: x-team, window: day, usd: 0.004}\n";
    let e = redis_engine(&s, body, now_clock()).await;
    let (ha, hb) = (headers(&[("x-team", "a")]), headers(&[("x-team", "b")]));
    let mut held = vec![
        e.admit(&req(&ha)).await.unwrap(),
        e.admit(&req(&ha)).await.unwrap(),
    ];
    let err = e.admit(&req(&ha)).await.unwrap_err();
    assert!(matches!(&err, Refusal::BudgetExceeded { limit, .. } if limit == "small"));
    // The refusal reserved nothing on `d`: three more fit there.
    for _ in 0..2 {
        held.push(e.admit(&req(&hb)).await.unwrap());
    }
    held.push(e.admit(&req(&headers(&[("x-team", "c")]))).await.unwrap());
    let err = e
        .admit(&req(&headers(&[("x-team", "c")])))
        .await
        .unwrap_err();
    assert!(matches!(&err, Refusal::BudgetExceeded { limit, .. } if limit == "d"));
    for a in held {
        a.release().await;
    }
    assert!(e.admit(&req(&ha)).await.is_ok());
}

/// Two proxies (engines) share one Redis budget; many tasks each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_proxies_never_overshoot() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let body = "  limits: [{name: d, scope: policy, window: day, usd: 0.1}]\n";
    let engines = [
        Arc::new(redis_engine(&s, body, Arc::new(SystemClock)).await),
        Arc::new(redis_engine(&s, body, Arc::new(SystemClock)).await),
    ];
    let total = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let e = engines[i % 2].clone();
        let total = total.clone();
        tasks.push(tokio::spawn(async move {
            let h = headers(&[]);
            while let Ok(a) = e.admit(&req(&h)).await {
                a.settle("m1", &usage(PROMPT, MAX_OUT), false).await;
                total.fetch_add(WORST, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let spent = total.load(Ordering::SeqCst);
    assert!(spent <= 100_000_000, "{spent}");
    assert!(spent > 100_000_000 - WORST, "{spent}");
}

#[tokio::test]
async fn windows_roll_over_with_the_injected_clock() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let clock = now_clock();
    let body = "  timeZone: Europe/Berlin\n  limits:\n    - {name: d, scope: policy, window: day, usd: 0.002}\n    - {name: r, scope: policy, window: rolling, rollingWindow: 10m, usd: 0.004}\n";
    let e = redis_engine(&s, body, clock.clone()).await;
    let h = headers(&[]);
    e.admit(&req(&h))
        .await
        .unwrap()
        .settle("m1", &usage(PROMPT, MAX_OUT), false)
        .await;
    let Refusal::BudgetExceeded { limit, retry_after } = e.admit(&req(&h)).await.unwrap_err()
    else {
        panic!()
    };
    assert_eq!(limit, "d");
    let Span::Calendar { end_ms, .. } = Span::of(
        tollgate_config::Window::Day,
        chrono_tz::Europe::Berlin,
        clock.now_ms(),
    ) else {
        unreachable!()
    };
    assert_eq!(retry_after.as_millis() as i64, end_ms - clock.now_ms());
    clock.set(end_ms);
    // A new day, but the rolling 10 minutes still hold the first 2M.
    e.admit(&req(&h))
        .await
        .unwrap()
        .settle("m1", &usage(PROMPT, MAX_OUT), false)
        .await;
    clock.advance(1);
    let err = e.admit(&req(&h)).await.unwrap_err();
    assert!(matches!(&err, Refusal::BudgetExceeded { limit, .. } if limit == "d"));
    clock.advance(86_400_000);
    e.admit(&req(&h))
        .await
        .unwrap()
        .settle("m1", &usage(PROMPT, MAX_OUT), false)
        .await;
    clock.advance(60_000);
    // Day: 2M of 2M again. Rolling: only this spend remains.
    let err = e.admit(&req(&h)).await.unwrap_err();
    assert!(matches!(&err, Refusal::BudgetExceeded { limit, .. } if limit == "d"));
}

#[tokio::test]
async fn rate_limits_and_tpm_corrections() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let clock = now_clock();
    let body = "  rateLimits:\n    - {name: u, scope: header, header: x-user, requestsPerMinute: 3}\n    - {name: t, scope: policy, tokensPerMinute: 2000}\n";
    let e = redis_engine(&s, body, clock.clone()).await;
    let (ha, hb) = (headers(&[("x-user", "a")]), headers(&[("x-user", "b")]));
    let a = e.admit(&req(&ha)).await.unwrap();
    assert_eq!(header(&a, "x-ratelimit-remaining-requests").unwrap(), "2");
    assert_eq!(header(&a, "x-ratelimit-remaining-tokens").unwrap(), "500");
    let err = e.admit(&req(&hb)).await.unwrap_err();
    assert!(matches!(&err, Refusal::RateLimited { limit, .. } if limit == "t"));
    a.settle("m1", &usage(200, 100), false).await;
    let b = e.admit(&req(&hb)).await.unwrap();
    assert_eq!(header(&b, "x-ratelimit-remaining-tokens").unwrap(), "200");
    b.release().await;
    for _ in 0..2 {
        e.admit(&req(&ha)).await.unwrap().release().await;
    }
    let err = e.admit(&req(&ha)).await.unwrap_err();
    assert_eq!(
        err,
        Refusal::RateLimited {
            limit: "u".into(),
            retry_after: Duration::from_secs(20)
        }
    );
    clock.advance(20_000);
    assert!(e.admit(&req(&ha)).await.is_ok());
}

/// A proxy that dies with a request in flight never settles it; its
/// reservation stops holding budget after the lease timeout.
#[tokio::test]
async fn forgotten_reservations_expire_with_their_lease() {
    let Some(s) = Redis::start().await else {
        return;
    };
    let clock = now_clock();
    let body = "  reservation: {leaseTimeout: 4m}\n  limits: [{name: d, scope: policy, window: month, usd: 0.002}]\n";
    let e = redis_engine(&s, body, clock.clone()).await;
    let h = headers(&[]);
    std::mem::forget(e.admit(&req(&h)).await.unwrap());
    assert!(e.admit(&req(&h)).await.is_err());
    clock.advance(4 * 60_000);
    assert!(e.admit(&req(&h)).await.is_err(), "still within its lease");
    clock.advance(60_000 + 1);
    assert!(e.admit(&req(&h)).await.is_ok(), "lease expired");
}

mod faults;
