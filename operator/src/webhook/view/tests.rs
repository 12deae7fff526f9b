//! The pod webhook's decision against caches a moment behind, with a
//! scripted API server for the live reads.

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::fake_api::FakeApi;
use crate::fixtures;

const ENABLED: (&str, &str) = ("tollgate.dev/injection", "enabled");

/// The example policy (it selects `app: chat`), in `team-a`.
fn policy() -> Value {
    let mut p: Value =
        serde_saphyr::from_str(include_str!("../../../testdata/policy.yaml")).unwrap();
    p["metadata"]["namespace"] = json!("team-a");
    p
}

fn cached(policies: &[Value]) -> Vec<LlmPolicy> {
    policies
        .iter()
        .map(|p| serde_json::from_value(p.clone()).unwrap())
        .collect()
}

fn pod(labels: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "app-1", "namespace": "team-a", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]},
    }))
    .unwrap()
}

/// The policy the decision injects, or why none.
type Named = Result<String, &'static str>;

fn named(d: &Result<(LlmPolicy, Rendered), &'static str>) -> Named {
    d.as_ref().map(|(p, _)| p.name_any()).map_err(|why| *why)
}

/// What a case's caches hold: namespace labels, policies, whether current.
type Cache = (&'static [(&'static str, &'static str)], Vec<Value>, bool);

/// The decision for a pod labelled `app: chat` in `team-a`, whose caches
/// hold `cache`, when the API server holds an enabled `team-a` and `live`
/// policies: it must read them.
async fn decided_live(cache: Cache, live: Vec<Value>) -> Named {
    let mut api = FakeApi::start().await;
    let (labels, policies, current) = cache;
    let ctx: Arc<Context> = fixtures::context(
        labels,
        &cached(&policies),
        current,
        Some(api.client.clone()),
    );
    let pod = pod(json!({"app": "chat"}));
    let decision = tokio::spawn(async move { decide(&ctx, "team-a", &pod).await });

    let req = api.next().await;
    assert!(
        req.uri.path() == "/api/v1/namespaces" && req.query().contains("metadata.name%3Dteam-a"),
        "{}",
        req.uri
    );
    req.json(json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
        "metadata": {"resourceVersion": "7"},
        "items": [{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
                   "metadata": {"name": "team-a", "labels": {ENABLED.0: ENABLED.1}}}],
    }));
    let req = api.next().await;
    assert_eq!(
        req.uri.path(),
        "/apis/tollgate.dev/v1alpha1/namespaces/team-a/llmpolicies"
    );
    req.json(json!({
        "apiVersion": "tollgate.dev/v1alpha1", "kind": "LlmPolicyList",
        "metadata": {"resourceVersion": "7"}, "items": live,
    }));
    named(&decision.await.unwrap().expect("decided"))
}

#[tokio::test]
async fn a_no_a_late_cache_could_give_is_read_live() {
    let cases: [(&str, Cache, Vec<Value>, Named); 4] = [
        (
            "a policy the current cache lacks yet",
            (&[ENABLED], vec![], true),
            vec![policy()],
            Ok("chat".into()),
        ),
        (
            "a namespace the current cache sees disabled",
            (&[], vec![policy()], true),
            vec![policy()],
            Ok("chat".into()),
        ),
        (
            "a no the live read confirms stands",
            (&[ENABLED], vec![], true),
            vec![],
            Err("no_policy"),
        ),
        (
            "stale caches are not read at all",
            (&[ENABLED], vec![], false),
            vec![policy()],
            Ok("chat".into()),
        ),
    ];
    for (what, cache, live, want) in cases {
        assert_eq!(decided_live(cache, live).await, want, "{what}");
    }
}

/// Its client reaches nothing: these decisions come from the caches alone.
#[tokio::test]
async fn a_current_cache_decides_alone_when_a_late_event_cannot_matter() {
    let ctx = fixtures::context(&[ENABLED], &cached(&[policy()]), true, None);
    let injected = decide(&ctx, "team-a", &pod(json!({"app": "chat"})))
        .await
        .expect("no live read");
    assert_eq!(named(&injected), Ok("chat".into()));
    let opted_out = pod(json!({"app": "chat", "tollgate.dev/inject": "false"}));
    let skipped = decide(&ctx, "team-a", &opted_out)
        .await
        .expect("no live read");
    assert_eq!(named(&skipped), Err("opted_out"));
}

/// A pod is never admitted as it is on a "no" that could not be checked.
#[tokio::test]
async fn a_no_that_cannot_be_checked_is_no_answer() {
    let ctx = fixtures::context(&[ENABLED], &[], true, None);
    let decided = decide(&ctx, "team-a", &pod(json!({"app": "chat"}))).await;
    assert!(decided.is_err(), "{:?}", decided.map(|d| named(&d)));
}
