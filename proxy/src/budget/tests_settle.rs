//! Engine tests on the memory store with a fake clock: prices at
//! settlement, thresholds, reloads, and the prompt-bound retry.

use std::sync::atomic::{AtomicU64, Ordering};

use super::fixtures::*;
use super::*;

#[tokio::test]
async fn unknown_prices_refuse_or_use_the_default() {
    let limits = "  limits: [{name: d, scope: policy, window: day, usd: 1}]\n";
    let e = engine(limits, clock()).await;
    let h = headers(&[]);
    let mut r = req(&h);
    r.models = &["m1", "local-llama"];
    assert_eq!(
        e.admit(&r).await.unwrap_err(),
        Refusal::UnknownPrice {
            model: "local-llama".into()
        }
    );
    let e = engine(
        &format!("  pricing: {{defaultPrice: {{input: 10, output: 10}}, models: {{m1: {{input: 1, output: 2}}}}}}\n{limits}"),
        clock(),
    )
    .await;
    let a = e.admit(&r).await.unwrap();
    // The dearest model is reserved: 1500 tokens at $10/M.
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.985000"
    );
    a.settle("local-llama", &usage(100, 100), false).await;
    assert_eq!(
        metric(&e, "tollgate_budget_spend_usd_total{model=\"default\"}"),
        Some(0.002)
    );
    // Token-only limits never need a price.
    let e = engine(
        "  limits: [{name: t, scope: policy, window: day, tokens: 5000}]\n",
        clock(),
    )
    .await;
    assert!(e.admit(&r).await.is_ok());
}

#[tokio::test]
async fn settle_prices_the_serving_model_and_falls_back_to_the_reserved_price() {
    let e = engine(DAILY_1C, clock()).await;
    let h = headers(&[]);
    let mut r = req(&h);
    r.models = &["m1", "m2"];
    let a = e.admit(&r).await.unwrap();
    a.settle("m1", &usage(1_000, 0), false).await;
    let b = e.admit(&r).await.unwrap();
    // m2's price (reserved) is used for a model the table lacks.
    b.settle("mystery", &usage(100, 0), true).await;
    let text = String::from_utf8(e.metrics().encode()).unwrap();
    assert!(
        text.contains("tollgate_budget_spend_usd_total{model=\"m1\"} 0.001"),
        "{text}"
    );
    assert!(text.contains("tollgate_budget_spend_usd_total{model=\"reserved\"} 0.0004"));
    assert!(text.contains(
        "tollgate_budget_tokens_total{estimated=\"true\",model=\"reserved\",type=\"input\"} 100"
    ));
}

#[tokio::test]
async fn thresholds_are_counted_once_when_crossed() {
    let e = engine(DAILY_1C, clock()).await;
    let h = headers(&[]);
    // Six settlements of $0.0015 (1500 input tokens): 15%, 30%, ... 90%.
    for _ in 0..6 {
        let a = e.admit(&req(&h)).await.unwrap();
        a.settle("m1", &usage(1_500, 0), false).await;
    }
    let crossings = |t: &str| {
        metric(
            &e,
            &format!(
                "tollgate_budget_threshold_crossings_total{{limit=\"daily\",threshold=\"{t}\"}}"
            ),
        )
    };
    assert_eq!(crossings("0.5"), Some(1.0));
    assert_eq!(crossings("0.8"), Some(1.0));
    assert_eq!(crossings("1"), None);
    assert_eq!(
        metric(&e, "tollgate_budget_usage_ratio{limit=\"daily\"}"),
        Some(0.9)
    );
}

#[tokio::test]
async fn reload_keeps_the_store_and_late_settlements_count() {
    let c = clock();
    let e1 = engine(DAILY_1C, c.clone()).await;
    let h = headers(&[]);
    let a = e1.admit(&req(&h)).await.unwrap();
    // New config, same store: a bigger limit.
    let cfg = budgets("  limits: [{name: daily, scope: policy, window: day, usd: 0.02}]\n");
    let e2 = BudgetEngine::with_clock(&cfg, &identity(), Some(&e1), c.clone())
        .await
        .unwrap();
    drop(e1);
    a.settle("m1", &usage(3_000, 0), false).await;
    let b = e2.admit(&req(&h)).await.unwrap();
    assert_eq!(
        header(&b, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.015000"
    );
    assert_eq!(
        metric(
            &e2,
            "tollgate_budget_admissions_total{outcome=\"admitted\"}"
        ),
        Some(2.0),
        "metrics survive reloads"
    );
}

#[tokio::test]
async fn empty_engine_admits_everything() {
    let e = engine("  timeZone: UTC\n", clock()).await;
    assert!(e.is_empty());
    let h = headers(&[]);
    let a = e.admit(&req(&h)).await.unwrap();
    assert!(!a.is_reserved());
    assert!(a.headers().is_empty());
    a.settle("m1", &usage(1, 1), false).await;
}

#[tokio::test]
async fn a_refused_prompt_bound_is_tried_again_with_the_exact_count() {
    let e = engine(DAILY_1C, clock()).await;
    let h = headers(&[]);
    e.admit(&req(&h))
        .await
        .unwrap()
        .settle("m1", &usage(7_500, 0), false)
        .await;
    // $0.0025 left. The bound (2,000 prompt tokens) would reserve $0.003;
    // the exact count (1,000) reserves $0.002 and fits.
    let bound = AdmitRequest {
        prompt_tokens: 2 * PROMPT,
        ..req(&h)
    };
    let asked = AtomicU64::new(0);
    let exact = async {
        asked.fetch_add(1, Ordering::Relaxed);
        PROMPT
    };
    let a = e.admit_bounded(&bound, exact).await.unwrap();
    assert_eq!(asked.load(Ordering::Relaxed), 1);
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.000500",
        "reserved at the exact count"
    );
    // Admitted once, refused never: the first try is not counted.
    assert_eq!(
        metric(&e, "tollgate_budget_admissions_total{outcome=\"admitted\"}"),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_admissions_total{outcome=\"budget_exceeded\"}"
        ),
        None
    );
    // Now nothing fits, the exact count is taken and the refusal counted once.
    let r = e.admit_bounded(&bound, async { PROMPT }).await.unwrap_err();
    assert_eq!(r.refusal.code(), "budget_exceeded");
    assert_eq!(
        metric(
            &e,
            "tollgate_budget_admissions_total{outcome=\"budget_exceeded\"}"
        ),
        Some(1.0)
    );
    drop(a);

    // A bound that fits is reserved as it is, and the tokenizer never runs.
    let e = engine(DAILY_1C, clock()).await;
    let a = e
        .admit_bounded(&bound, async { panic!("no count needed") })
        .await
        .unwrap();
    assert_eq!(
        header(&a, "x-tollgate-budget-remaining-usd").unwrap(),
        "0.007000"
    );
}

#[tokio::test]
async fn a_request_rate_refusal_is_not_tried_again() {
    let e = engine(
        "  rateLimits: [{name: rpm, scope: policy, requestsPerMinute: 1}]\n",
        clock(),
    )
    .await;
    let h = headers(&[]);
    e.admit_bounded(&req(&h), async { panic!("fits as it is") })
        .await
        .unwrap();
    let r = e
        .admit_bounded(&req(&h), async {
            panic!("no count can help a request limit")
        })
        .await
        .unwrap_err();
    assert_eq!(r.refusal.code(), "rate_limit_exceeded");
}
