use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateWaiting, ContainerStatus, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;

fn t(s: i64) -> Timestamp {
    Timestamp::from_second(s).unwrap()
}

/// A pod injected by `policy`, created at t=0, whose sidecar is in `state`.
fn pod(name: &str, policy: &str, state: Option<ContainerState>, started: bool) -> Pod {
    let mut p = Pod::default();
    p.metadata.name = Some(name.into());
    p.metadata.creation_timestamp = Some(Time(t(0)));
    p.metadata.annotations = Some(BTreeMap::from([(POLICY_ANNOTATION.into(), policy.into())]));
    p.status = Some(PodStatus {
        phase: Some("Pending".into()),
        init_container_statuses: state.map(|s| {
            vec![ContainerStatus {
                name: SIDECAR_NAME.into(),
                state: Some(s),
                started: Some(started),
                ..Default::default()
            }]
        }),
        ..Default::default()
    });
    p
}

fn waiting(reason: &str, message: &str) -> Option<ContainerState> {
    Some(ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: Some(message.into()),
        }),
        ..Default::default()
    })
}

fn running() -> Option<ContainerState> {
    Some(ContainerState {
        running: Some(ContainerStateRunning::default()),
        ..Default::default()
    })
}

#[test]
fn image_pull_failures_and_crashes_are_named_at_once() {
    let pods = [
        pod(
            "b",
            "chat",
            waiting("ImagePullBackOff", "Back-off pulling image \"x:1\""),
            false,
        ),
        pod(
            "a",
            "chat",
            waiting("CrashLoopBackOff", "back-off 10s"),
            false,
        ),
        pod(
            "c",
            "chat",
            waiting("ErrImageNeverPull", "not present"),
            false,
        ),
    ];
    let (bad, starting) = assess(&pods, "chat", t(5));
    assert!(!starting);
    let got: Vec<_> = bad
        .iter()
        .map(|u| (u.pod.as_str(), u.reason, u.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("a", "SidecarFailing", "back-off 10s"),
            ("b", "ImagePullFailed", "Back-off pulling image \"x:1\""),
            ("c", "ImagePullFailed", "not present"),
        ]
    );
}

#[test]
fn a_slow_start_counts_only_after_the_grace() {
    let pods = [pod("a", "chat", waiting("PodInitializing", ""), false)];
    let (bad, starting) = assess(&pods, "chat", t(10));
    assert!(bad.is_empty() && starting);
    let late = t(STARTUP_GRACE.as_secs() as i64 + 1);
    let (bad, starting) = assess(&pods, "chat", late);
    assert!(!starting);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].reason, "SidecarNotStarting");
    assert!(
        bad[0].message.starts_with("PodInitializing after 91s"),
        "{}",
        bad[0].message
    );
    // No status at all yet (volumes not mounted): the same.
    let (bad, _) = assess(&[pod("a", "chat", None, false)], "chat", late);
    assert!(
        bad[0].message.starts_with("not started after"),
        "{}",
        bad[0].message
    );
}

#[test]
fn healthy_other_policies_finished_and_deleting_pods_are_left_out() {
    let mut done = pod("done", "chat", waiting("ImagePullBackOff", "x"), false);
    done.status.as_mut().unwrap().phase = Some("Succeeded".into());
    let mut going = pod("going", "chat", waiting("ImagePullBackOff", "x"), false);
    going.metadata.deletion_timestamp = Some(Time(t(1)));
    let pods = [
        pod("ok", "chat", running(), true),
        pod("other", "other", waiting("ImagePullBackOff", "x"), false),
        done,
        going,
    ];
    let (bad, starting) = assess(&pods, "chat", t(1000));
    assert!(bad.is_empty(), "{bad:?}");
    assert!(!starting);
}

#[test]
fn a_running_sidecar_whose_startup_probe_fails_is_not_started() {
    let pods = [pod("a", "chat", running(), false)];
    let (bad, _) = assess(&pods, "chat", t(1000));
    assert_eq!(bad[0].reason, "SidecarNotStarting");
}

#[test]
fn missing_secrets_and_keys_are_named() {
    let want = |secret: &str| SecretVolume {
        volume: "v".into(),
        secret: secret.into(),
        keys: vec!["anthropic".into(), "openai".into()],
        mount_path: "/m".into(),
    };
    let keys = |ks: &[&str]| Some(ks.iter().map(|k| k.to_string()).collect());
    let mut found = BTreeMap::from([
        ("llm-keys".to_string(), keys(&["openai"])),
        ("gone".to_string(), None),
    ]);
    assert_eq!(
        missing("team-a", &[want("llm-keys"), want("gone")], &found),
        [
            "Secret team-a/llm-keys has no key \"anthropic\"",
            "Secret team-a/gone does not exist"
        ]
    );
    found.insert("llm-keys".into(), keys(&["openai", "anthropic", "extra"]));
    assert!(missing("team-a", &[want("llm-keys")], &found).is_empty());
}

#[test]
fn reasons_are_counted() {
    let u = |r| Unhealthy {
        pod: "p".into(),
        reason: r,
        message: String::new(),
    };
    let n = by_reason(&[
        u("ImagePullFailed"),
        u("ImagePullFailed"),
        u("SidecarFailing"),
    ]);
    assert_eq!(
        n,
        BTreeMap::from([("ImagePullFailed", 2), ("SidecarFailing", 1)])
    );
    assert!(n.keys().all(|r| REASONS.contains(r)));
}
