use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

fn event(kind: &str, name: &str, reason: &str, message: &str, at: i64) -> Event {
    Event {
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_timestamp: Some(Time(t(at))),
        involved_object: ObjectReference {
            kind: Some(kind.into()),
            name: Some(name.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

const PSA: &str = "Error creating: pods \"chat-1\" is forbidden: violates PodSecurity \"restricted:latest\": allowPrivilegeEscalation != false";

#[test]
fn recent_pod_security_refusals_one_per_workload_latest_first() {
    let now = t(10_000);
    let events = [
        event("ReplicaSet", "chat-1", "FailedCreate", "older", 9_000),
        event("ReplicaSet", "chat-1", "FailedCreate", PSA, 9_990),
        event("Job", "once", "FailedCreate", PSA, 9_500),
        // Not Pod Security: quota, a missing ServiceAccount.
        event(
            "ReplicaSet",
            "quota",
            "FailedCreate",
            "exceeded quota: compute",
            9_990,
        ),
        // Too old: fixed long ago.
        event(
            "ReplicaSet",
            "old",
            "FailedCreate",
            PSA,
            10_000 - RECENT.as_secs() as i64 - 1,
        ),
        event("ReplicaSet", "other", "SuccessfulCreate", PSA, 9_990),
    ];
    let got = pod_security_refusals(&events, now);
    assert_eq!(
        got,
        [
            ("Job".to_string(), "once".to_string(), PSA.to_string()),
            (
                "ReplicaSet".to_string(),
                "chat-1".to_string(),
                PSA.to_string()
            ),
        ]
    );
}

#[test]
fn an_event_without_any_time_is_left_out() {
    let mut e = event("ReplicaSet", "chat-1", "FailedCreate", PSA, 0);
    e.last_timestamp = None;
    assert!(pod_security_refusals(&[e], t(100)).is_empty());
}
