//! The API server restarts under a running operator: its watches resume,
//! a policy created afterwards is validated and reconciled, and a change to
//! one created before is picked up.

use std::process::Command;

use kube::api::{Patch, PatchParams};
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

/// `tests/k8s/cluster.sh restart-apiserver` on the cluster of this run.
async fn restart_apiserver() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/k8s/cluster.sh");
    let status = tokio::task::spawn_blocking(move || {
        Command::new(script)
            .arg("restart-apiserver")
            .status()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(status.success(), "restart-apiserver: {status}");
}

/// How long the operator may take to notice the API server is back: its
/// watches retry with client-go's backoff (0.8 s doubling to 30 s, with
/// up to 100% jitter), so a watch that failed through the whole outage can
/// wait up to a minute before it reconnects; then the 500 ms debounce and
/// a reconcile.
const AFTER_RESTART: std::time::Duration = std::time::Duration::from_secs(150);

fn named(ns: &str, name: &str) -> LlmPolicy {
    let mut p = policy(ns);
    p.metadata.name = Some(name.into());
    // Its own pods, so the two policies do not conflict.
    p.spec.pod_selector = serde_json::from_value(json!({"matchLabels": {"app": name}})).unwrap();
    p
}

#[tokio::test]
async fn operator_recovers_when_the_api_server_restarts() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-restart";
    namespace(&client, ns).await;
    let op = Launch::new("e2e-restart", ns).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(&policies, &named(ns, "before")).await;
    wait_policy(&policies, "before", "Ready", ready(None)).await;

    restart_apiserver().await;

    // A new policy: the validating webhook answers (from the operator's
    // resumed policy cache) and the controller reconciles it.
    let mut bad = named(ns, "after");
    bad.spec.providers[0]
        .credentials_secret_ref
        .as_mut()
        .unwrap()
        .name = "missing".into();
    let err = eventually("the API server serves again", AFTER_RESTART, || async {
        match policies.create(&Default::default(), &bad).await {
            Err(kube::Error::Api(e)) if e.code == 400 || e.code == 403 => Some(e.message),
            _ => None,
        }
    })
    .await;
    assert!(
        err.contains("Secret e2e-restart/missing does not exist"),
        "{err}"
    );
    create_policy(&policies, &named(ns, "after")).await;
    wait_policy_within(&policies, "after", "Ready", ready(None), AFTER_RESTART).await;

    // A change to the policy from before the restart.
    let patch = json!({"spec": {"routeDefaults": {"timeouts": {"idle": "61s"}}}});
    let p = policies
        .patch("before", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = p.metadata.generation.unwrap();
    wait_policy_within(
        &policies,
        "before",
        "the new generation",
        ready_at(generation),
        AFTER_RESTART,
    )
    .await;
    // Reconciles failed while the API server was away must not have
    // killed the controller or left the operator unready.
    let ready = reqwest::get(format!("{}/readyz", op.admin)).await.unwrap();
    assert!(ready.status().is_success());

    cleanup(&client, "e2e-restart", ns).await;
}
