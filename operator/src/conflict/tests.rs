use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::json;

use super::*;

fn policy(name: &str, created_secs: Option<i64>, selector: serde_json::Value) -> LlmPolicy {
    let mut p: LlmPolicy =
        serde_saphyr::from_str(include_str!("../../testdata/policy.yaml")).unwrap();
    p.metadata.name = Some(name.into());
    p.metadata.namespace = Some("team-a".into());
    p.metadata.creation_timestamp =
        created_secs.map(|s| Time(k8s_openapi::jiff::Timestamp::from_second(s).unwrap()));
    p.spec.pod_selector = serde_json::from_value(selector).unwrap();
    p
}

fn pod(name: &str, labels: &[(&str, &str)], injected_by: Option<&str>) -> PodInfo {
    PodInfo {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: injected_by
            .map(|p| [(POLICY_ANNOTATION.to_string(), p.to_string())].into())
            .unwrap_or_default(),
        eligible: true,
    }
}

#[test]
fn oldest_wins_then_name() {
    let a = policy("a", Some(200), json!({}));
    let b = policy("b", Some(100), json!({}));
    let c = policy("c", Some(100), json!({}));
    let labels = BTreeMap::new();
    assert_eq!(winner([&a, &b, &c], &labels).unwrap().name_any(), "b");
    assert_eq!(winner([&c, &a, &b], &labels).unwrap().name_any(), "b");
    // Same age: by name.
    assert_eq!(winner([&c, &b], &labels).unwrap().name_any(), "b");
    // Not yet stored: last.
    let new = policy("0-new", None, json!({}));
    assert_eq!(winner([&new, &a], &labels).unwrap().name_any(), "a");
}

#[test]
fn only_matching_policies_compete() {
    let old = policy("old", Some(1), json!({"matchLabels": {"app": "batch"}}));
    let young = policy("young", Some(2), json!({"matchLabels": {"app": "chat"}}));
    let labels: BTreeMap<_, _> = [("app".to_string(), "chat".to_string())].into();
    assert_eq!(winner([&old, &young], &labels).unwrap().name_any(), "young");
    let none: BTreeMap<String, String> = [("app".into(), "web".into())].into();
    assert!(winner([&old, &young], &none).is_none());
}

#[test]
fn deleted_policies_do_not_win() {
    let mut old = policy("old", Some(1), json!({}));
    old.metadata.deletion_timestamp =
        Some(Time(k8s_openapi::jiff::Timestamp::from_second(5).unwrap()));
    let young = policy("young", Some(2), json!({}));
    assert_eq!(
        winner([&old, &young], &BTreeMap::new()).unwrap().name_any(),
        "young"
    );
}

#[test]
fn match_expressions() {
    let p = policy(
        "p",
        Some(1),
        json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gold", "silver"]}]}),
    );
    assert!(selects(&p, &[("tier".into(), "gold".into())].into()));
    assert!(!selects(&p, &[("tier".into(), "bronze".into())].into()));
}

#[test]
fn counts_matched_injected_uninjected_and_conflicts() {
    let old = policy("old", Some(1), json!({"matchLabels": {"team": "a"}}));
    let young = policy("young", Some(2), json!({}));
    let all = [&old, &young];
    let pods = [
        pod("a-1", &[("team", "a")], Some("old")),
        pod("a-2", &[("team", "a")], None),
        pod("b-2", &[("team", "b")], None),
        pod("b-1", &[("team", "b")], Some("young")),
        pod("b-3", &[("team", "b")], Some("someone-else")),
    ];
    let c = pod_counts(&old, &all, &pods);
    assert_eq!(c.matched, 2);
    assert_eq!(c.injected, 1);
    assert_eq!(c.uninjected, ["a-2"]);
    assert!(c.lost_to.is_empty());

    let c = pod_counts(&young, &all, &pods);
    assert_eq!(c.matched, 3);
    assert_eq!(c.injected, 1);
    assert_eq!(c.uninjected, ["b-2", "b-3"]);
    assert_eq!(c.lost_to, [("old".to_string(), WonBy::Age)].into());

    // Same second: the winner is not older, it wins by name.
    let a = policy("a", Some(5), json!({}));
    let b = policy("b", Some(5), json!({}));
    let c = pod_counts(&b, &[&a, &b], &[pod("p", &[], None)]);
    assert_eq!(c.lost_to, [("a".to_string(), WonBy::Name)].into());

    // A pod the webhook would not inject (opted out, excluded namespace) is
    // neither matched nor uninjected.
    let mut out = pod("b-4", &[("team", "b")], None);
    out.eligible = false;
    let c = pod_counts(&young, &all, &[out]);
    assert_eq!((c.matched, c.uninjected.len()), (0, 0));
}
