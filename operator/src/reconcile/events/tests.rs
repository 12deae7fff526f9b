use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

/// A valid policy's status after `prev`, its budgets counted as `sharing`.
fn status(prev: &LlmPolicyStatus, sharing: Option<Sharing>, now: i64) -> LlmPolicyStatus {
    let mut s = build_status(
        prev,
        Some(1),
        &Outcome::Applied { hash: "h".into() },
        &PodCounts::default(),
        "cm",
        t(now),
    );
    apply_budgets(&mut s, prev, sharing, t(now));
    s
}

fn reasons(events: &[(EventType, &'static str, String)]) -> Vec<&'static str> {
    events.iter().map(|(_, r, _)| *r).collect()
}

#[test]
fn per_pod_budgets_are_a_warning_when_the_condition_turns_false() {
    let first = status(&Default::default(), Some(Sharing::PerPod), 10);
    let events = due(&Default::default(), &first);
    let (type_, _, note) = events
        .iter()
        .find(|(_, r, _)| *r == "PerPodBudgets")
        .expect("a PerPodBudgets event");
    assert_eq!(*type_, EventType::Warning);
    assert_eq!(note, Sharing::PerPod.message());

    // Still False on the next status change: no second Event.
    let mut again = status(&first, Some(Sharing::PerPod), 20);
    again.matched_pods = Some(3);
    assert!(!reasons(&due(&first, &again)).contains(&"PerPodBudgets"));

    // Shared, then per pod again: a new transition, a new Event.
    let shared = status(&again, Some(Sharing::Shared), 30);
    assert!(!reasons(&due(&again, &shared)).contains(&"PerPodBudgets"));
    let back = status(&shared, Some(Sharing::PerPod), 40);
    assert!(reasons(&due(&shared, &back)).contains(&"PerPodBudgets"));
}

#[test]
fn shared_or_absent_budgets_publish_nothing() {
    for sharing in [None, Some(Sharing::Shared)] {
        let s = status(&Default::default(), sharing, 10);
        assert!(
            !reasons(&due(&Default::default(), &s)).contains(&"PerPodBudgets"),
            "{sharing:?}"
        );
    }
}
