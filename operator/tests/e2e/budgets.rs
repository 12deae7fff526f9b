//! Budgets a policy counts per pod are said so plainly: the validating
//! webhook admits the policy with a warning the client receives (the API
//! server's `Warning` header, which kubectl prints), status has
//! `BudgetsShared=False` (`PerPodStore`, also in `kubectl get`'s `Budgets`
//! column) with a `PerPodBudgets` Warning Event; moved to a Redis store the
//! condition turns True (`SharedStore`), and without budgets it goes.

use http::{header, StatusCode};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Patch, PatchParams, PostParams};
use kube::client::Body;
use kube::{Api, Client};
use serde_json::{json, Value};
use tollgate_operator::crd::LlmPolicy;
use tollgate_operator::sharing;

use crate::*;

const NS: &str = "e2e-budgets";

/// The API server's answer to `req`: status, warnings and body.
async fn send(client: &Client, req: http::Request<Vec<u8>>) -> (StatusCode, Vec<String>, Value) {
    let resp = client.send(req.map(Body::from)).await.unwrap();
    let status = resp.status();
    let warnings = resp
        .headers()
        .get_all(header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let body = resp.into_body().collect_bytes().await.unwrap();
    (status, warnings, serde_json::from_slice(&body).unwrap())
}

/// Creates the policy, retrying while the validating webhook is not yet
/// reachable; the warnings of the create that succeeded.
async fn create_with_warnings(client: &Client, api: &Api<LlmPolicy>, p: &LlmPolicy) -> Vec<String> {
    let body = serde_json::to_vec(p).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let req = kube::core::Request::new(api.resource_url())
            .create(&PostParams::default(), body.clone())
            .unwrap();
        let (status, warnings, answer) = send(client, req).await;
        if status == StatusCode::CREATED {
            return warnings;
        }
        let starting = answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("failed calling webhook"));
        assert!(
            starting && tokio::time::Instant::now() < deadline,
            "create policy: {status} {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `BudgetsShared` is `status`/`reason` for the current generation.
fn budgets_shared(
    status: &'static str,
    reason: &'static str,
) -> impl Fn(Option<&LlmPolicy>) -> bool {
    move |p: Option<&LlmPolicy>| {
        p.is_some_and(|p| {
            p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                && condition(p, "BudgetsShared").is_some_and(|(s, r, _)| s == status && r == reason)
        })
    }
}

/// The cell of `kubectl get`'s column `column` for the policy, as the API
/// server prints it (a Table, from the CRD's printer columns).
async fn column(client: &Client, api: &Api<LlmPolicy>, name: &str, column: &str) -> Value {
    let mut req = kube::core::Request::new(api.resource_url())
        .get(name, &Default::default())
        .unwrap();
    req.headers_mut().insert(
        header::ACCEPT,
        "application/json;as=Table;v=v1;g=meta.k8s.io"
            .parse()
            .unwrap(),
    );
    let (status, _, table) = send(client, req).await;
    assert_eq!(status, StatusCode::OK, "{table}");
    let i = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c["name"] == column)
        .unwrap_or_else(|| panic!("no column {column}: {table}"));
    table["rows"][0]["cells"][i].clone()
}

/// The `PerPodBudgets` Events about the policy: (type, note), one per
/// occurrence (a repeated Event may be one object counting a series).
async fn per_pod_events(client: &Client, name: &str) -> Vec<(String, String)> {
    let events: Api<Event> = Api::namespaced(client.clone(), NS);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter(|e| e.reason.as_deref() == Some("PerPodBudgets"))
        .flat_map(|e| {
            let n = e.series.as_ref().map_or(1, |s| s.count.max(1)) as usize;
            std::iter::repeat_n((e.type_.unwrap_or_default(), e.note.unwrap_or_default()), n)
        })
        .collect()
}

#[tokio::test]
async fn per_pod_budgets_are_warned_about_and_reported() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    namespace(&client, NS).await;
    let _op = Launch::new("e2e-budgets", NS).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), NS);

    // The example policy: budgets and a rate limit in the memory store.
    let p = policy(NS);
    let want = sharing::warning(&p.spec).expect("the example counts per pod");
    let warnings = create_with_warnings(&client, &policies, &p).await;
    assert!(
        warnings.iter().any(|w| w.contains(&want)),
        "the client gets the webhook's warning: {warnings:?}"
    );

    let got = wait_policy(
        &policies,
        "chat",
        "BudgetsShared=False (PerPodStore)",
        budgets_shared("False", "PerPodStore"),
    )
    .await;
    let (_, _, message) = condition(&got, "BudgetsShared").unwrap();
    assert!(
        message.contains("each replica enforces the full limits on its own")
            && message.contains("lost when the pod goes"),
        "{message}"
    );
    assert_eq!(
        condition(&got, "Ready").map(|c| c.0).as_deref(),
        Some("True"),
        "per-pod budgets are reported, not refused"
    );
    assert_eq!(
        column(&client, &policies, "chat", "Budgets").await,
        json!("PerPodStore")
    );
    let events = eventually("a PerPodBudgets Event", WAIT, || async {
        let e = per_pod_events(&client, "chat").await;
        (!e.is_empty()).then_some(e)
    })
    .await;
    assert_eq!(events[0], ("Warning".to_string(), message.clone()));

    // Moved to Redis (the operator only renders its URL; nothing listens):
    // admitted without a warning, and shared.
    let patch = json!({"spec": {"budgets": {"store": {"type": "redis", "persistInterval": null,
        "redis": {"url": "redis://127.0.0.1:1/0"}}}}});
    let req = kube::core::Request::new(policies.resource_url())
        .patch("chat", &PatchParams::default(), &Patch::Merge(&patch))
        .unwrap();
    let (status, warnings, answer) = send(&client, req).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(
        !warnings.iter().any(|w| w.contains("spec.budgets")),
        "{warnings:?}"
    );
    let got = wait_policy(
        &policies,
        "chat",
        "BudgetsShared=True (SharedStore)",
        budgets_shared("True", "SharedStore"),
    )
    .await;
    assert!(
        condition(&got, "BudgetsShared")
            .unwrap()
            .2
            .contains("counted in Redis"),
        "{:?}",
        condition(&got, "BudgetsShared")
    );
    assert_eq!(
        column(&client, &policies, "chat", "Budgets").await,
        json!("SharedStore")
    );

    // No budgets: no condition, an empty column.
    let patch = json!({"spec": {"budgets": null}});
    policies
        .patch("chat", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let got = wait_policy(
        &policies,
        "chat",
        "no BudgetsShared",
        |p: Option<&LlmPolicy>| {
            p.is_some_and(|p| {
                p.status.as_ref().and_then(|s| s.observed_generation) == p.metadata.generation
                    && condition(p, "BudgetsShared").is_none()
            })
        },
    )
    .await;
    assert_eq!(
        condition(&got, "Ready").map(|c| c.0).as_deref(),
        Some("True")
    );
    // Turning True and going published no further PerPodBudgets Event.
    assert_eq!(per_pod_events(&client, "chat").await.len(), 1);

    cleanup(&client, "e2e-budgets", NS).await;
}
