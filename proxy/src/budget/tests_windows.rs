//! Engine tests over time (fake clock, memory store): window rollover of
//! every kind, rate limits, persistence.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;

use super::fixtures::*;
use super::*;

fn at(rfc3339: &str) -> i64 {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp_millis()
}

/// Fills a one-request budget at `start`, checks the refusal's
/// `Retry-After` is `reset_ms`, then that the next window admits again.
async fn rolls_over(window: &str, tz: &str, start: &str, reset_ms: i64) {
    let clock = Arc::new(FakeClock::new(at(start)));
    let e = engine(
        &format!(
            "  timeZone: {tz}\n  limits: [{{name: w, scope: policy, {window}, usd: 0.003}}]\n"
        ),
        clock.clone(),
    )
    .await;
    let h = headers(&[]);
    e.admit(&req(&h))
        .await
        .unwrap()
        .settle("m1", &usage(PROMPT, MAX_OUT), false)
        .await;
    let Refusal::BudgetExceeded { retry_after, .. } = e.admit(&req(&h)).await.unwrap_err() else {
        panic!("expected a budget refusal")
    };
    assert_eq!(
        retry_after,
        Duration::from_millis(reset_ms as u64),
        "{window} {tz}"
    );
    clock.advance(reset_ms - 1);
    assert!(
        e.admit(&req(&h)).await.is_err(),
        "{window}: still the same window"
    );
    clock.advance(1);
    e.admit(&req(&h))
        .await
        .unwrap_or_else(|r| panic!("{window} {tz}: {r}"));
}

#[tokio::test]
async fn every_window_kind_rolls_over() {
    rolls_over("window: minute", "UTC", "2025-06-15T12:00:45Z", 15_000).await;
    rolls_over(
        "window: hour",
        "Asia/Kolkata",
        "2025-06-15T12:20:00Z",
        10 * 60_000,
    )
    .await;
    rolls_over(
        "window: day",
        "Europe/Berlin",
        "2025-06-15T21:00:00Z",
        3_600_000,
    )
    .await;
    // Berlin is already in February at 23:30 UTC on January 31st...
    rolls_over(
        "window: month",
        "Europe/Berlin",
        "2025-01-31T22:59:59Z",
        1_000,
    )
    .await;
    // ...and New York still in January at 03:00 UTC on February 1st.
    rolls_over(
        "window: month",
        "America/New_York",
        "2025-02-01T04:59:00Z",
        60_000,
    )
    .await;
    // A rolling hour frees spend an hour after the minute slot it fell in.
    rolls_over(
        "window: rolling, rollingWindow: 1h",
        "UTC",
        "2025-06-15T12:00:30Z",
        59 * 60_000 + 30_000,
    )
    .await;
}

#[tokio::test]
async fn rolling_window_forgets_spend_an_hour_later() {
    let clock = Arc::new(FakeClock::new(T0));
    let e = engine(
        "  limits: [{name: r, scope: policy, window: rolling, rollingWindow: 1h, usd: 0.004}]\n",
        clock.clone(),
    )
    .await;
    let h = headers(&[]);
    let spend = || async {
        e.admit(&req(&h))
            .await
            .unwrap()
            .settle("m1", &usage(PROMPT, MAX_OUT), false)
            .await
    };
    spend().await; // at 12:00
    clock.advance(30 * 60_000);
    spend().await; // at 12:30: 4M spent in the last hour
    assert!(e.admit(&req(&h)).await.is_err());
    clock.advance(30 * 60_000); // 13:00: the 12:00 slot left the window
    spend().await;
    assert!(e.admit(&req(&h)).await.is_err(), "12:30 and 13:00 remain");
}

#[tokio::test]
async fn a_settlement_after_the_window_ends_counts_in_the_new_window() {
    let clock = Arc::new(FakeClock::new(at("2025-06-15T23:59:59Z")));
    let e = engine(
        "  limits: [{name: d, scope: policy, window: day, usd: 0.004}]\n",
        clock.clone(),
    )
    .await;
    let h = headers(&[]);
    let a = e.admit(&req(&h)).await.unwrap();
    clock.advance(2_000);
    a.settle("m1", &usage(PROMPT, MAX_OUT), false).await;
    // The new day holds the 2M spent; the reservation was released.
    let b = e.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&b, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.000000"
    );
}

#[tokio::test]
async fn requests_per_minute() {
    let clock = Arc::new(FakeClock::new(T0));
    let e = engine(
        "  rateLimits: [{name: u, scope: header, header: x-user, requestsPerMinute: 3}]\n",
        clock.clone(),
    )
    .await;
    let h = headers(&[("x-user", "alice")]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert_eq!(header(&a, "x-ratelimit-limit-requests").unwrap(), "3");
    assert_eq!(header(&a, "x-ratelimit-remaining-requests").unwrap(), "2");
    assert_eq!(header(&a, "x-ratelimit-reset-requests").unwrap(), "20s");
    e.admit(&req(&h)).await.unwrap();
    let c = e.admit(&req(&h)).await.unwrap();
    assert_eq!(header(&c, "x-ratelimit-remaining-requests").unwrap(), "0");
    assert_eq!(header(&c, "x-ratelimit-reset-requests").unwrap(), "1m0s");
    let err = e.admit(&req(&h)).await.unwrap_err();
    assert_eq!(
        err,
        Refusal::RateLimited {
            limit: "u".into(),
            retry_after: Duration::from_secs(20)
        }
    );
    assert!(e.admit(&req(&headers(&[("x-user", "bob")]))).await.is_ok());
    clock.advance(20_000);
    assert!(e.admit(&req(&h)).await.is_ok());
    assert_eq!(
        metric(
            &e,
            "tollgate_ratelimit_refusals_total{kind=\"requests\",limit=\"u\",scope=\"header\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn tokens_per_minute_are_corrected_at_settlement() {
    let clock = Arc::new(FakeClock::new(T0));
    let e = engine(
        "  rateLimits: [{name: t, scope: policy, tokensPerMinute: 2000}]\n",
        clock.clone(),
    )
    .await;
    let h = headers(&[]);
    // Each request is estimated at 1500 tokens.
    let a = e.admit(&req(&h)).await.unwrap();
    assert_eq!(header(&a, "x-ratelimit-remaining-tokens").unwrap(), "500");
    assert!(matches!(
        e.admit(&req(&h)).await.unwrap_err(),
        Refusal::RateLimited { .. }
    ));
    // It used 300: the other 1200 come back.
    a.settle("m1", &usage(200, 100), false).await;
    let b = e.admit(&req(&h)).await.unwrap();
    assert_eq!(header(&b, "x-ratelimit-remaining-tokens").unwrap(), "200");
    // A release gives back the whole estimate.
    b.release().await;
    let c = e.admit(&req(&h)).await.unwrap();
    assert_eq!(header(&c, "x-ratelimit-remaining-tokens").unwrap(), "200");
    drop(c);
}

#[tokio::test]
async fn a_rate_refusal_reserves_no_budget() {
    let e = engine(
        "  limits: [{name: d, scope: policy, window: day, usd: 0.004}]\n  rateLimits: [{name: r, scope: policy, requestsPerMinute: 1}]\n",
        Arc::new(FakeClock::new(T0)),
    )
    .await;
    let h = headers(&[]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert!(matches!(
        e.admit(&req(&h)).await,
        Err(Refusal::RateLimited { .. })
    ));
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.002000"
    );
    let Store::Memory(m) = &e.inner().store else {
        unreachable!()
    };
    let resv = e.inner().reserved_key(
        &e.inner().cfg.limits[0],
        &tollgate_spend::keys::scope_hash(b"p"),
    );
    assert_eq!(
        m.reserved_for_test(&resv),
        (WORST, 0),
        "only the admitted request"
    );
}

#[tokio::test]
async fn persistence_round_trip_and_corrupt_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("budgets.json");
    let body = format!(
        "  store: {{type: memory, persistPath: {}, persistInterval: 1h}}\n  limits: [{{name: d, scope: header, header: x-team, window: day, usd: 0.004}}]\n",
        path.display()
    );
    let clock = Arc::new(FakeClock::new(T0));
    let h = headers(&[("x-team", "secret-team")]);
    {
        let e = engine(&body, clock.clone()).await;
        e.admit(&req(&h))
            .await
            .unwrap()
            .settle("m1", &usage(PROMPT, MAX_OUT), false)
            .await;
        e.persist().await.unwrap();
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains("secret-team"), "scope values are hashed");
    let e = engine(&body, clock.clone()).await;
    let a = e.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.000000"
    );
    drop(a);
    drop(e);

    // A window that ended while the proxy was down is not loaded back.
    clock.advance(86_400_000);
    let e = engine(&body, clock.clone()).await;
    let a = e.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.002000"
    );
    drop(a);
    drop(e);

    std::fs::write(&path, b"{not json").unwrap();
    let e = engine(&body, clock.clone()).await;
    assert!(e.admit(&req(&h)).await.is_ok(), "starts from zero");
    assert!(dir.path().join("budgets.json.corrupt").exists());
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_store_errors_total{op=\"load\",store=\"memory\"}"
        ),
        Some(1.0)
    );
}
