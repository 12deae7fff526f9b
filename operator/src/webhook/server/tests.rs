//! The `/validate` handler as the API server calls it: a review in, the
//! response that goes back (allowed, denied, warnings).

use std::sync::Arc;

use serde_json::{json, Value};

use super::*;
use crate::context::Settings;
use crate::fixtures;
use crate::metrics::Metrics;

/// A context whose client points nowhere: validation never calls the API
/// (its namespace cache is current, and holds `team-a` with `labels`).
fn context() -> Arc<Context> {
    context_with(&[])
}

fn context_with(labels: &[(&str, &str)]) -> Arc<Context> {
    fixtures::context(labels, &[], true, None)
}

/// A CREATE review of the example policy with `budgets` replaced (and a
/// memory limit for its sidecar, so each test sees only the warnings it is
/// about).
fn review(budgets: Value) -> Vec<u8> {
    review_of(|p| p["spec"]["budgets"] = budgets)
}

/// A CREATE review of the example policy as `edit` leaves it.
fn review_of(edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut policy: Value =
        serde_saphyr::from_str(include_str!("../../../testdata/policy.yaml")).unwrap();
    policy["metadata"]["namespace"] = json!("team-a");
    policy["spec"]["sidecar"]["resources"]["limits"] = json!({"memory": "256Mi"});
    edit(&mut policy);
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
    let (result, resp) = validate(&review(json!({"limits": limits()})), &ctx).await;
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
        let (result, resp) = validate(&review(budgets.clone()), &ctx).await;
        assert_eq!(result, "allowed", "{budgets}");
        assert_eq!(resp.warnings, None, "{budgets}");
    }
}

#[tokio::test]
async fn a_denied_policy_is_denied_as_before() {
    let ctx = context();
    let bad = json!({"timeZone": "Mars/Olympus", "limits": limits()});
    let (result, resp) = validate(&review(bad), &ctx).await;
    assert_eq!(result, "denied");
    assert!(!resp.allowed);
    assert!(
        resp.result.message.contains("spec.budgets"),
        "{}",
        resp.result.message
    );
}

#[tokio::test]
async fn a_sidecar_without_a_memory_limit_is_admitted_with_a_warning() {
    let ctx = context();
    let body = review_of(|p| {
        p["spec"]["budgets"] = Value::Null;
        p["spec"]["sidecar"]["resources"] = json!({"requests": {"memory": "64Mi"}});
    });
    let (result, resp) = validate(&body, &ctx).await;
    assert_eq!(result, "allowed");
    let warnings = resp.warnings.expect("a warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("spec.sidecar.resources: no memory limit"),
        "{warnings:?}"
    );
    // The operator's sidecar defaults are the policy's unless it sets its own.
    let mut settings = Settings::default();
    settings.sidecar_defaults.resources =
        serde_json::from_value(json!({"limits": {"memory": "1Gi"}})).unwrap();
    let body = review_of(|p| {
        p["spec"]["budgets"] = Value::Null;
        p["spec"]["sidecar"]
            .as_object_mut()
            .unwrap()
            .remove("resources");
    });
    let (_, resp) = validate(&body, &ctx).await;
    assert_eq!(resp.warnings, None, "the default sidecar has a limit");
    let ctx = Context::new(
        ctx.client.clone(),
        ctx.stores.clone(),
        Metrics::new(),
        settings,
    );
    let (_, resp) = validate(&body, &ctx).await;
    assert_eq!(resp.warnings, None, "the defaults' limit");
}

#[tokio::test]
async fn no_pii_filtering_in_a_personal_data_namespace_is_admitted_with_a_warning() {
    // The example policy has no spec.pii.
    let body = review_of(|p| p["spec"]["budgets"] = Value::Null);
    let (result, resp) = validate(&body, &context()).await;
    assert_eq!((result, resp.warnings), ("allowed", None));

    let ctx = context_with(&[("tollgate.dev/personal-data", "true")]);
    let (result, resp) = validate(&body, &ctx).await;
    assert_eq!(result, "allowed");
    let warnings = resp.warnings.expect("a warning");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("spec.pii: no PII filtering (the section is not set) although the namespace is labelled tollgate.dev/personal-data=true"),
        "{warnings:?}"
    );
    // Filtering on: no warning.
    let body = review_of(|p| {
        p["spec"]["budgets"] = Value::Null;
        p["spec"]["pii"] = json!({"action": "mask"});
    });
    let (_, resp) = validate(&body, &ctx).await;
    assert_eq!(resp.warnings, None);
}

/// A CRD older than the operator (spec.cache free-form) lets a typo reach
/// the webhook: it is denied, named, as the proxy's own check denied it.
#[tokio::test]
async fn a_field_the_crd_lacks_is_denied() {
    let body = review_of(|p| p["spec"]["cache"] = json!({"ttl": "1m", "tll": "2m"}));
    let (result, resp) = validate(&body, &context()).await;
    assert_eq!(result, "denied");
    assert_eq!(resp.result.message, "unknown field \"spec.cache.tll\"");
}
