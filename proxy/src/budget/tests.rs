//! Engine tests on the memory store with a fake clock: accounting,
//! concurrency, scopes, actions and prices.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::fixtures::*;
use super::*;
use crate::api::usage::Usage;

#[tokio::test]
async fn exact_accounting_in_nano_usd() {
    let e = engine(DAILY_1C, clock()).await;
    let h = headers(&[]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert!(a.is_reserved());
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.008000"
    );
    // 800 input + 100 output = 800 000 + 200 000 nano-USD.
    a.settle("m1", &usage(800, 100), false).await;
    let b = e.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&b, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.007000",
        "10M - 1M spent - 2M reserved"
    );
    b.release().await;
    let c = e.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&c, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.007000"
    );
    drop(c);
    assert_eq!(
        metric(&e, "tollgate_budget_reservations_in_flight"),
        Some(0.0)
    );
    assert_eq!(
        metric(&e, "tollgate_budget_spend_usd_total{model=\"m1\"}"),
        Some(0.001)
    );
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_settlements_total{estimated=\"false\",outcome=\"dropped\"}"
        ),
        Some(1.0)
    );
    // Per limit and scope kind, and how far the reservation was from the bill.
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_limit_spend_usd_total{limit=\"daily\",scope=\"policy\"}"
        ),
        Some(0.001)
    );
    assert_eq!(
        metric(&e, "tollgate_budget_settle_error_usd_count"),
        Some(1.0)
    );
    // Reserved 0.002, spent 0.001: an error of +0.001.
    assert_eq!(
        metric(&e, "tollgate_budget_settle_error_usd_sum"),
        Some(0.001)
    );
}

#[tokio::test]
async fn cache_prices_and_token_limits() {
    let e = engine(
        "  limits: [{name: t, scope: policy, window: day, usd: 1, tokens: 10000}]\n",
        clock(),
    )
    .await;
    let h = headers(&[]);
    let mut r = req(&h);
    r.models = &["m2"];
    let a = e.admit(&r).await.unwrap();
    // Worst case on m2: 1000 prompt at max(input 4, cacheWrite 5) + 500 × 8.
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.991000"
    );
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-tokens").unwrap(),
        "8500"
    );
    let u = Usage {
        input: 1_000,
        output: 10,
        cached_input: 600,
        cache_creation: 100,
        reasoning: 0,
    };
    a.settle("m2", &u, false).await;
    // 300 × 4 + 600 × 1 + 100 × 5 + 10 × 8 = 2380 micro-USD; 1010 tokens.
    let b = e.admit(&r).await.unwrap();
    assert_eq!(
        header(&b, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.988620"
    );
    assert_eq!(
        header(&b, "x-tollgate-budget-remaining-tokens").unwrap(),
        "7490"
    );
}

#[tokio::test]
async fn refuses_only_when_the_worst_case_does_not_fit() {
    let c = clock();
    let e = engine(DAILY_1C, c.clone()).await;
    let h = headers(&[]);
    // 10M budget, 2M worst case: exactly five fit.
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(e.admit(&req(&h)).await.unwrap());
    }
    let refused = e.admit(&req(&h)).await.unwrap_err();
    assert_eq!(
        refused,
        Refusal::BudgetExceeded {
            limit: "daily".into(),
            retry_after: Duration::from_secs(12 * 3600),
        }
    );
    assert_eq!(refused.status(), http::StatusCode::TOO_MANY_REQUESTS);
    held.pop().unwrap().release().await;
    held.push(e.admit(&req(&h)).await.unwrap());
    // Settling below the worst case frees the difference.
    for a in held.drain(..) {
        a.settle("m1", &usage(1_000, 0), false).await;
    }
    // Spent 5M; 2 more fit.
    let a1 = e.admit(&req(&h)).await.unwrap();
    let a2 = e.admit(&req(&h)).await.unwrap();
    assert!(e.admit(&req(&h)).await.is_err());
    drop((a1, a2));
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_admissions_total{outcome=\"budget_exceeded\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_refusals_total{limit=\"daily\",reason=\"exceeded\",scope=\"policy\"}"
        ),
        Some(2.0)
    );
}

#[tokio::test]
async fn overshoot_bound_is_tight() {
    let e = engine(DAILY_1C, clock()).await;
    let h = headers(&[]);
    let mut held = Vec::new();
    while let Ok(a) = e.admit(&req(&h)).await {
        held.push(a);
    }
    assert_eq!(held.len(), 5);
    // Every request bills 300 output tokens (600 000 nano-USD) over its
    // reservation: the window ends at the limit plus 5 × that.
    for a in held {
        a.settle("m1", &usage(PROMPT, MAX_OUT + 300), false).await;
    }
    let Store::Memory(m) = &e.inner().store else {
        unreachable!()
    };
    let l = &e.inner().cfg.limits[0];
    let span = Span::of(l.window, e.inner().cfg.time_zone, T0);
    let key = e
        .inner()
        .spent_key(l, &span, &tollgate_spend::keys::scope_hash(b"p"));
    assert_eq!(m.spent_for_test(&key), 10_000_000 + 5 * 600_000);
}

/// Many tasks admit and settle against one limit at once. With exact
/// estimates nothing overshoots, and the budget is used up to within one
/// worst case (nobody was refused while their worst case fit).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_admissions_never_overshoot_with_exact_estimates() {
    let e = Arc::new(
        engine(
            "  limits: [{name: d, scope: policy, window: day, usd: 1}]\n",
            clock(),
        )
        .await,
    );
    let spent = run_concurrently(&e, 32, 0).await;
    let limit = NANO_PER_USD_TEST;
    assert!(spent <= limit, "spent {spent} > limit {limit}");
    assert!(
        spent > limit - WORST,
        "spent {spent}: refused while room was left"
    );
    assert_eq!(
        metric(&e, "tollgate_budget_reservations_in_flight"),
        Some(0.0)
    );
}

/// When the provider bills more than the estimate, a window overshoots by
/// at most (requests in flight) × (excess per request).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overshoot_is_bounded_by_what_was_in_flight() {
    let e = Arc::new(
        engine(
            "  limits: [{name: d, scope: policy, window: day, usd: 1}]\n",
            clock(),
        )
        .await,
    );
    let tasks = 32;
    // Each settlement is 300 output tokens above its reservation: 600 000 nano.
    let excess = 300;
    let spent = run_concurrently(&e, tasks, excess).await;
    let bound = NANO_PER_USD_TEST + tasks as u64 * excess * 2_000;
    assert!(spent <= bound, "spent {spent} > bound {bound}");
    assert!(spent > NANO_PER_USD_TEST - WORST);
}

const NANO_PER_USD_TEST: u64 = 1_000_000_000;

/// Each task admits and settles until refused; returns the total settled.
async fn run_concurrently(e: &Arc<BudgetEngine>, tasks: usize, excess_output: u64) -> u64 {
    let total = Arc::new(AtomicU64::new(0));
    let mut handles = Vec::new();
    for t in 0..tasks {
        let e = e.clone();
        let total = total.clone();
        handles.push(tokio::spawn(async move {
            let h = headers(&[]);
            let mut n = 0u64;
            while let Ok(a) = e.admit(&req(&h)).await {
                if (t as u64 + n).is_multiple_of(3) {
                    tokio::task::yield_now().await;
                }
                let output = MAX_OUT + excess_output;
                a.settle("m1", &usage(PROMPT, output), false).await;
                total.fetch_add(PROMPT * 1_000 + output * 2_000, Ordering::SeqCst);
                n += 1;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    total.load(Ordering::SeqCst)
}

#[tokio::test]
async fn several_scopes_at_once() {
    let e = engine(
        r#"
  limits:
    - {name: team, scope: header, header: x-team, window: day, usd: 0.004}
    - {name: ns, scope: namespace, window: day, usd: 0.006}
    - {name: wl, scope: workload, window: day, tokens: 100000}
    - {name: per-model, scope: model, window: day, usd: 0.1}
"#,
        clock(),
    )
    .await;
    let (ha, hb) = (
        headers(&[("x-team", "alpha")]),
        headers(&[("x-team", "beta")]),
    );
    let a1 = e.admit(&req(&ha)).await.unwrap();
    let a2 = e.admit(&req(&ha)).await.unwrap();
    let err = e.admit(&req(&ha)).await.unwrap_err();
    assert!(matches!(&err, Refusal::BudgetExceeded { limit, .. } if limit == "team"));
    assert!(
        !err.to_string().contains("alpha"),
        "no header values in messages"
    );
    // Beta has its own team budget, but the namespace (6M) is shared.
    let b1 = e.admit(&req(&hb)).await.unwrap();
    let err = e.admit(&req(&hb)).await.unwrap_err();
    assert!(matches!(&err, Refusal::BudgetExceeded { limit, .. } if limit == "ns"));
    // A refusal reserves nothing: after releasing alpha's, beta fits again.
    a1.release().await;
    let b2 = e.admit(&req(&hb)).await.unwrap();
    assert_eq!(
        header(&b2, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.000000"
    );
    drop((a2, b1, b2));
    let text = String::from_utf8(e.metrics().encode()).unwrap();
    assert!(!text.contains("alpha") && !text.contains("beta"));
}

#[tokio::test]
async fn missing_header_buckets_or_refuses() {
    let e = engine(
        r#"
  limits:
    - {name: team, scope: header, header: x-team, window: day, usd: 0.004}
  rateLimits:
    - {name: user, scope: header, header: x-user, missingHeader: refuse, requestsPerMinute: 100}
"#,
        clock(),
    )
    .await;
    let err = e
        .admit(&req(&headers(&[("x-team", "a")])))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Refusal::MissingHeader {
            limit: "user".into(),
            header: "x-user".into()
        }
    );
    assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
    // Without x-team, requests share the `(missing)` bucket; an empty value
    // counts as missing.
    let (h1, h2) = (
        headers(&[("x-user", "u")]),
        headers(&[("x-user", "u"), ("x-team", "")]),
    );
    let _a = e.admit(&req(&h1)).await.unwrap();
    let _b = e.admit(&req(&h2)).await.unwrap();
    assert!(e.admit(&req(&h1)).await.is_err());
    assert!(e
        .admit(&req(&headers(&[("x-user", "u"), ("x-team", "t")])))
        .await
        .is_ok());
}

#[tokio::test]
async fn downgrade_and_warn_admit_over_budget() {
    let e = engine(
        r#"
  limits:
    - {name: soft, scope: policy, window: day, usd: 0.003, action: warn}
    - {name: cheap, scope: policy, window: day, usd: 0.005, action: downgrade, downgradeTo: chat-cheap}
"#,
        clock(),
    )
    .await;
    let h = headers(&[]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert_eq!(a.downgrade_to(), None);
    let b = e.admit(&req(&h)).await.unwrap();
    assert_eq!(b.downgrade_to(), None, "warn only");
    let c = e.admit(&req(&h)).await.unwrap();
    assert_eq!(c.downgrade_to(), Some("chat-cheap"));
    assert!(
        c.is_reserved(),
        "a downgraded request still holds its reservation"
    );
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_actions_total{action=\"warn\",limit=\"soft\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_actions_total{action=\"downgrade\",limit=\"cheap\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_admissions_total{outcome=\"downgraded\"}"
        ),
        Some(1.0)
    );
    drop((a, b, c));
}

#[test]
fn admission_ids_are_written_as_format_writes_them() {
    for (process, n) in [
        (0, 0),
        (1, 1),
        (u64::MAX, u64::MAX),
        (0x0123_4567_89ab_cdef, 15),
        (0xdead_beef, 16),
        (42, 0x1_0000_0000),
    ] {
        assert_eq!(
            super::admission::hex_id(process, n),
            format!("{process:016x}{n:x}")
        );
    }
}
