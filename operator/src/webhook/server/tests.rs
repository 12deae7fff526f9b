//! The `/validate` handler as the API server calls it: a review in, the
//! response that goes back (allowed, denied, warnings).

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector;
use serde_json::{json, Value};

use super::*;
use crate::cache::Synced;
use crate::context::{Settings, Stores};
use crate::metrics::Metrics;

/// A context whose client points nowhere: validation never calls the API.
fn context() -> Arc<Context> {
    let (policies, _) = reflector::store::<LlmPolicy>();
    let (namespaces, _) = reflector::store::<PartialObjectMeta<Namespace>>();
    let (pods, _) = reflector::store::<PartialObjectMeta<Pod>>();
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let stores = Stores {
        policies,
        pods: Arc::new(std::sync::RwLock::new(pods)),
        namespaces,
        synced: vec![Synced::already()],
    };
    Context::new(client, stores, Metrics::new(), Settings::default())
}

/// A CREATE review of the example policy with `budgets` replaced.
fn review(budgets: Value) -> Vec<u8> {
    let mut policy: Value =
        serde_yaml::from_str(include_str!("../../../testdata/policy.yaml")).unwrap();
    policy["metadata"]["namespace"] = json!("team-a");
    policy["spec"]["budgets"] = budgets;
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "00000000-0000-0000-0000-000000000001",
            "kind": {"group": "tollgate.dev", "version": "v1alpha1", "kind": "LlmPolicy"},
            "resource": {"group": "tollgate.dev", "version": "v1alpha1", "resource": "llmpolicies"},
            "name": "chat",
            "namespace": "team-a",
            "operation": "CREATE",
            "userInfo": {"username": "test"},
            "object": policy,
            "dryRun": false,
        },
    }))
    .unwrap()
}

fn limits() -> Value {
    json!([{"name": "daily", "scope": "policy", "window": "day", "usd": 10}])
}

#[tokio::test]
async fn per_pod_budgets_are_admitted_with_a_warning() {
    let ctx = context();
    let (result, resp) = validate(&review(json!({"limits": limits()})), &ctx);
    assert_eq!(result, "allowed");
    assert!(resp.allowed);
    let warnings = resp.warnings.clone().expect("a warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("spec.budgets: no shared store (spec.budgets.store is memory)")
            && warnings[0].contains("each replica enforces the full limits on its own"),
        "{warnings:?}"
    );
    // And it is in the review the API server reads.
    let review = serde_json::to_value(resp.into_review()).unwrap();
    assert_eq!(review["response"]["warnings"][0], json!(warnings[0]));
}

#[tokio::test]
async fn shared_or_absent_budgets_get_no_warning() {
    let ctx = context();
    let redis = json!({"store": {"type": "redis", "redis": {"url": "redis://redis:6379/0"}},
        "limits": limits()});
    for budgets in [redis, Value::Null] {
        let (result, resp) = validate(&review(budgets.clone()), &ctx);
        assert_eq!(result, "allowed", "{budgets}");
        assert_eq!(resp.warnings, None, "{budgets}");
    }
}

#[tokio::test]
async fn a_denied_policy_is_denied_as_before() {
    let ctx = context();
    let bad = json!({"timeZone": "Mars/Olympus", "limits": limits()});
    let (result, resp) = validate(&review(bad), &ctx);
    assert_eq!(result, "denied");
    assert!(!resp.allowed);
    assert!(
        resp.result.message.contains("spec.budgets"),
        "{}",
        resp.result.message
    );
}
