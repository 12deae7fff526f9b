//! Memory store tests at the plan level.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::budget::clock::FakeClock;

fn op(key: &str, limit: u64, usd: u64, enforce: bool, span: Span) -> BudgetOp {
    BudgetOp {
        spent_key: format!("spent:{key}"),
        reserved_key: format!("resv:{key}"),
        span,
        limit_usd: Some(limit),
        limit_tokens: None,
        usd,
        tokens: 0,
        enforce,
    }
}

const DAY: Span = Span::Calendar {
    start_ms: 0,
    end_ms: 86_400_000,
};

async fn store(path: Option<PathBuf>, interval: Duration) -> Arc<MemoryStore> {
    MemoryStore::open(
        path,
        interval,
        Arc::new(FakeClock::new(1_000)),
        Arc::new(BudgetMetrics::new()),
    )
    .await
}

fn settle_op(b: &BudgetOp, usd: u64) -> SettleOp {
    SettleOp {
        spent_key: b.spent_key.clone(),
        reserved_key: b.reserved_key.clone(),
        span: b.span,
        lease_epoch: 0,
        reserved_usd: b.usd,
        reserved_tokens: 0,
        usd,
        tokens: 0,
    }
}

#[tokio::test]
async fn all_or_nothing() {
    let s = store(None, Duration::from_secs(60)).await;
    let a = op("a", 100, 60, true, DAY);
    let b = op("b", 50, 60, true, DAY);
    let plan = AdmitPlan {
        id: String::new(),
        now_ms: 1_000,
        lease_epoch: 0,
        budgets: vec![a.clone(), b.clone()],
        rates: vec![],
    };
    let r = s.admit(&plan);
    assert!(!r.admitted);
    assert_eq!((r.budgets[0].fits, r.budgets[1].fits), (true, false));
    assert_eq!(s.reserved_for_test("resv:a"), (0, 0), "nothing reserved");
    // Not enforced: admitted, and both reserved.
    let plan = AdmitPlan {
        id: String::new(),
        budgets: vec![a.clone(), op("b", 50, 60, false, DAY)],
        ..plan
    };
    assert!(s.admit(&plan).admitted);
    assert_eq!(s.reserved_for_test("resv:a"), (60, 0));
    assert_eq!(s.reserved_for_test("resv:b"), (60, 0));
    let totals = s.settle(&SettlePlan {
        id: String::new(),
        now_ms: 2_000,
        budgets: vec![settle_op(&a, 7)],
        rates: vec![],
    });
    assert_eq!(totals, [Totals { usd: 7, tokens: 0 }]);
    assert_eq!(s.reserved_for_test("resv:a"), (0, 0));
}

#[tokio::test]
async fn rolling_slots_prune_and_report_the_oldest() {
    let s = store(None, Duration::from_secs(60)).await;
    let at = |slot| Span::Rolling {
        slot,
        slot_ms: 1_000,
    };
    let b = op("r", 100, 0, true, at(10));
    for slot in [10, 10, 30] {
        s.settle(&SettlePlan {
            id: String::new(),
            now_ms: slot * 1_000,
            budgets: vec![SettleOp {
                span: at(slot),
                ..settle_op(&b, 5)
            }],
            rates: vec![],
        });
    }
    let check = |slot| {
        s.admit(&AdmitPlan {
            id: String::new(),
            now_ms: slot * 1_000,
            lease_epoch: 0,
            budgets: vec![op("r", 100, 0, true, at(slot))],
            rates: vec![],
        })
        .budgets[0]
    };
    let st = check(40);
    assert_eq!((st.spent_usd, st.oldest_slot), (15, Some(10)));
    let st = check(70);
    assert_eq!((st.spent_usd, st.oldest_slot), (5, Some(30)));
    s.lock().prune(200_000);
    assert!(s.lock().rolling.is_empty());
}

#[tokio::test]
async fn background_task_saves_periodically_and_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    let s = store(Some(path.clone()), Duration::from_millis(20)).await;
    let b = op("a", 100, 10, true, DAY);
    s.settle(&SettlePlan {
        id: String::new(),
        now_ms: 1_000,
        budgets: vec![settle_op(&b, 3)],
        rates: vec![],
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !path.exists() {
        assert!(std::time::Instant::now() < deadline, "never saved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Dropping the last handle saves too (a reload retired the store).
    s.settle(&SettlePlan {
        id: String::new(),
        now_ms: 1_000,
        budgets: vec![settle_op(&b, 4)],
        rates: vec![],
    });
    drop(s);
    let s = store(Some(path.clone()), Duration::from_secs(60)).await;
    let st = s.admit(&AdmitPlan {
        id: String::new(),
        now_ms: 1_000,
        lease_epoch: 0,
        budgets: vec![op("a", 100, 0, true, DAY)],
        rates: vec![],
    });
    assert_eq!(st.budgets[0].spent_usd, 7);
}
