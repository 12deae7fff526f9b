use serde_json::json;

use super::*;
use crate::crd::LlmPolicy;

/// The example policy with `budgets` replaced.
fn spec(budgets: serde_json::Value) -> LlmPolicySpec {
    let mut p: LlmPolicy =
        serde_saphyr::from_str(include_str!("../../testdata/policy.yaml")).unwrap();
    p.spec.budgets = serde_json::from_value(budgets).unwrap();
    p.spec
}

fn limit() -> serde_json::Value {
    json!({"name": "daily", "scope": "policy", "window": "day", "usd": 10})
}

#[test]
fn no_budgets_no_sharing() {
    assert_eq!(Sharing::of(&spec(json!(null))), None);
    // Prices alone count nothing, whatever the store.
    let prices = spec(json!({"store": {"type": "memory"},
        "pricing": {"models": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}}}));
    assert_eq!(Sharing::of(&prices), None);
    assert_eq!(warning(&prices), None);
}

#[test]
fn the_memory_store_is_per_pod() {
    // The example's explicit memory store.
    let example: LlmPolicy =
        serde_saphyr::from_str(include_str!("../../testdata/policy.yaml")).unwrap();
    assert_eq!(Sharing::of(&example.spec), Some(Sharing::PerPod));
    // No store at all: `render` writes a memory store.
    let default = spec(json!({"limits": [limit()]}));
    assert_eq!(Sharing::of(&default), Some(Sharing::PerPod));
    // Rate limits alone are counted too.
    let rates =
        spec(json!({"rateLimits": [{"name": "rpm", "scope": "policy", "requestsPerMinute": 60}]}));
    assert_eq!(Sharing::of(&rates), Some(Sharing::PerPod));
    let s = Sharing::PerPod;
    assert_eq!((s.shared(), s.reason()), (false, "PerPodStore"));
    assert!(
        s.message()
            .contains("each replica enforces the full limits on its own"),
        "{}",
        s.message()
    );
    assert!(
        s.message().contains("lost when the pod goes"),
        "{}",
        s.message()
    );
}

#[test]
fn the_redis_store_is_shared() {
    let redis = spec(
        json!({"store": {"type": "redis", "redis": {"url": "redis://redis:6379/0"}},
        "limits": [limit()]}),
    );
    assert_eq!(Sharing::of(&redis), Some(Sharing::Shared));
    assert_eq!(warning(&redis), None);
    let s = Sharing::Shared;
    assert_eq!((s.shared(), s.reason()), (true, "SharedStore"));
}

#[test]
fn per_pod_budgets_are_warned_about_in_a_header_safe_line() {
    let w = warning(&spec(json!({"limits": [limit()]}))).expect("a warning");
    assert_eq!(
        w,
        "spec.budgets: no shared store (spec.budgets.store is memory): each replica enforces \
         the full limits on its own and spend is lost when a pod goes; use a Redis store for \
         budgets across replicas"
    );
    // The API server may cut warnings beyond 256 characters, and sends
    // them in a header.
    assert!(w.len() <= 256, "{} characters", w.len());
    assert!(w.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{w}");
    assert!(!w.contains('"') && !w.contains('\\'), "{w}");
}
