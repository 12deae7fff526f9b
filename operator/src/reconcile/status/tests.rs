use std::time::Duration;

use super::*;
use crate::reconcile::backoff;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn cond<'a>(
    s: &'a LlmPolicyStatus,
    t: &str,
) -> &'a k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    s.conditions.iter().find(|c| c.type_ == t).unwrap()
}

#[test]
fn applied_is_accepted_and_ready() {
    let counts = PodCounts {
        matched: 3,
        injected: 2,
        uninjected: vec!["p".into()],
        ..Default::default()
    };
    let s = build_status(
        &Default::default(),
        Some(4),
        &Outcome::Applied {
            hash: "abcdef0123456789".into(),
        },
        &counts,
        "tollgate-chat",
        t(10),
    );
    assert_eq!(cond(&s, "Accepted").status, "True");
    assert_eq!(cond(&s, "Ready").status, "True");
    assert_eq!(
        cond(&s, "Ready").message,
        "ConfigMap tollgate-chat holds config abcdef012345; 2 of 3 selected pods run the sidecar"
    );
    assert_eq!(cond(&s, "Conflicted").status, "False");
    assert_eq!(cond(&s, "Ready").observed_generation, Some(4));
    assert_eq!(s.observed_generation, Some(4));
    assert_eq!(s.config_hash.as_deref(), Some("abcdef0123456789"));
    assert_eq!(
        (s.matched_pods, s.injected_pods, s.uninjected_pods),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(s.uninjected_pod_names, ["p"]);
}

#[test]
fn transition_times_survive_unchanged_conditions() {
    let counts = PodCounts::default();
    let a = build_status(
        &Default::default(),
        Some(1),
        &Outcome::Applied { hash: "h1".into() },
        &counts,
        "cm",
        t(10),
    );
    let b = build_status(
        &a,
        Some(2),
        &Outcome::Applied { hash: "h2".into() },
        &counts,
        "cm",
        t(20),
    );
    assert_eq!(cond(&b, "Ready").last_transition_time.0, t(10));
    let c = build_status(
        &b,
        Some(3),
        &Outcome::Invalid("bad".into()),
        &counts,
        "cm",
        t(30),
    );
    assert_eq!(cond(&c, "Ready").last_transition_time.0, t(30));
    // Re-running with the same inputs changes nothing (no status write, no event).
    let d = build_status(
        &c,
        Some(3),
        &Outcome::Invalid("bad".into()),
        &counts,
        "cm",
        t(40),
    );
    assert_eq!(c, d);
}

#[test]
fn invalid_keeps_the_last_good_hash() {
    let counts = PodCounts::default();
    let a = build_status(
        &Default::default(),
        Some(1),
        &Outcome::Applied {
            hash: "good".into(),
        },
        &counts,
        "cm",
        t(10),
    );
    let b = build_status(
        &a,
        Some(2),
        &Outcome::Invalid("spec.routes[0].retry.initialBackoff: bad".into()),
        &counts,
        "cm",
        t(20),
    );
    assert_eq!(cond(&b, "Accepted").status, "False");
    assert_eq!(cond(&b, "Accepted").reason, "InvalidSpec");
    assert_eq!(
        cond(&b, "Accepted").message,
        "spec.routes[0].retry.initialBackoff: bad"
    );
    assert_eq!(cond(&b, "Ready").status, "False");
    assert!(cond(&b, "Ready")
        .message
        .contains("keeps the last valid config good"));
    assert_eq!(b.config_hash.as_deref(), Some("good"));
}

#[test]
fn conflicts_name_the_winner() {
    let counts = PodCounts {
        matched: 1,
        lost_to: [("old".to_string(), WonBy::Age)].into(),
        ..Default::default()
    };
    let s = build_status(
        &Default::default(),
        Some(1),
        &Outcome::Applied { hash: "h".into() },
        &counts,
        "cm",
        t(1),
    );
    assert_eq!(cond(&s, "Conflicted").status, "True");
    assert!(cond(&s, "Conflicted")
        .message
        .contains("policy old (older)"));
    assert_eq!(cond(&s, "Ready").status, "True", "it still wins a pod");
    let counts = PodCounts {
        matched: 0,
        lost_to: [("old".to_string(), WonBy::Age)].into(),
        ..Default::default()
    };
    let s = build_status(
        &Default::default(),
        Some(1),
        &Outcome::Applied { hash: "h".into() },
        &counts,
        "cm",
        t(1),
    );
    assert_eq!(cond(&s, "Ready").status, "False");
    assert_eq!(cond(&s, "Ready").reason, "Conflicted");
    // A same-second tie is not "older".
    let counts = PodCounts {
        lost_to: [("a-first".to_string(), WonBy::Name)].into(),
        ..Default::default()
    };
    let s = build_status(
        &Default::default(),
        Some(1),
        &Outcome::Applied { hash: "h".into() },
        &counts,
        "cm",
        t(1),
    );
    let m = &cond(&s, "Conflicted").message;
    assert!(
        m.contains("a-first (created in the same second, wins the tie by name)")
            && !m.contains("older"),
        "{m}"
    );
}

#[test]
fn backoff_doubles_up_to_five_minutes() {
    assert_eq!(backoff(1), Duration::from_secs(1));
    assert_eq!(backoff(2), Duration::from_secs(2));
    assert_eq!(backoff(5), Duration::from_secs(16));
    assert_eq!(backoff(9), Duration::from_secs(256));
    assert_eq!(
        backoff(30),
        Duration::from_secs(256).min(Duration::from_secs(300))
    );
}

/// A valid policy's status at `gen`, `now`, after `prev`, with `sharing`.
fn with_budgets(
    prev: &LlmPolicyStatus,
    gen: i64,
    sharing: Option<Sharing>,
    now: Timestamp,
) -> LlmPolicyStatus {
    let mut s = build_status(
        prev,
        Some(gen),
        &Outcome::Applied { hash: "h".into() },
        &PodCounts::default(),
        "cm",
        now,
    );
    apply_budgets(&mut s, prev, sharing, now);
    s
}

#[test]
fn per_pod_budgets_are_not_shared() {
    let s = with_budgets(&Default::default(), 2, Some(Sharing::PerPod), t(10));
    let c = cond(&s, "BudgetsShared");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("False", "PerPodStore")
    );
    assert!(
        c.message
            .contains("each replica enforces the full limits on its own")
            && c.message.contains("lost when the pod goes"),
        "{}",
        c.message
    );
    assert_eq!(c.observed_generation, Some(2));
    // The other conditions are still there.
    assert_eq!(cond(&s, "Ready").status, "True");
}

#[test]
fn redis_budgets_are_shared_and_the_turn_is_a_transition() {
    let a = with_budgets(&Default::default(), 1, Some(Sharing::PerPod), t(10));
    let b = with_budgets(&a, 2, Some(Sharing::Shared), t(20));
    let c = cond(&b, "BudgetsShared");
    assert_eq!(
        (c.status.as_str(), c.reason.as_str()),
        ("True", "SharedStore")
    );
    assert_eq!(c.last_transition_time.0, t(20));
    // Unchanged: the transition time stays, and a re-run writes nothing new.
    let d = with_budgets(&b, 2, Some(Sharing::Shared), t(30));
    assert_eq!(cond(&d, "BudgetsShared").last_transition_time.0, t(20));
    assert_eq!(b, d);
}

#[test]
fn without_budgets_the_condition_goes() {
    let none = with_budgets(&Default::default(), 1, None, t(10));
    assert!(
        none.conditions.iter().all(|c| c.type_ != "BudgetsShared"),
        "{:?}",
        none.conditions
    );
    // Budgets removed from a policy that had them: removed from status.
    let had = with_budgets(&Default::default(), 1, Some(Sharing::PerPod), t(10));
    let mut s = had.clone();
    apply_budgets(&mut s, &had, None, t(20));
    assert!(
        s.conditions.iter().all(|c| c.type_ != "BudgetsShared"),
        "{:?}",
        s.conditions
    );
}

#[test]
fn an_invalid_spec_keeps_the_running_configs_sharing() {
    let a = with_budgets(&Default::default(), 1, Some(Sharing::PerPod), t(10));
    let mut b = build_status(
        &a,
        Some(2),
        &Outcome::Invalid("bad".into()),
        &PodCounts::default(),
        "cm",
        t(20),
    );
    keep_budgets(&mut b, &a);
    assert_eq!(cond(&b, "BudgetsShared"), cond(&a, "BudgetsShared"));
    // A policy that had no budgets gets no condition from an invalid spec.
    let none = with_budgets(&Default::default(), 1, None, t(10));
    let mut c = none.clone();
    keep_budgets(&mut c, &none);
    assert!(c.conditions.iter().all(|c| c.type_ != "BudgetsShared"));
}
