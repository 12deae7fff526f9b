//! A policy may be created before its Secret (any order works): it is
//! admitted, and status says what is missing — a Secret, then a key — with
//! an Event and `tollgate_operator_missing_secrets`, turning Ready as soon
//! as the Secret is complete and back when it is deleted. The operator
//! watches the Secrets policies name, so each change shows within seconds
//! rather than at the next periodic check (30 s).

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

/// Well under the 30 s recheck: only a watch-triggered reconcile makes it.
const WATCHED: Duration = Duration::from_secs(15);

fn missing(message: &'static str) -> impl Fn(Option<&LlmPolicy>) -> bool {
    move |p| {
        p.and_then(|p| condition(p, "Ready"))
            .is_some_and(|(s, r, m)| s == "False" && r == "SecretMissing" && m.contains(message))
    }
}

#[tokio::test]
async fn secrets_are_watched_and_reported_in_status() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-secrets";
    namespace(&client, ns).await;
    let op = Launch::new("e2e-secrets", ns).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), ns);

    // The policy first: admitted, Ready=False naming the Secret.
    let mut p = policy(ns);
    for provider in &mut p.spec.providers {
        provider.credentials_secret_ref.as_mut().unwrap().name = "late-keys".into();
    }
    create_policy(&policies, &p).await;
    wait_policy(
        &policies,
        "chat",
        "SecretMissing (no Secret)",
        missing("Secret e2e-secrets/late-keys does not exist"),
    )
    .await;
    let series = "tollgate_operator_missing_secrets{namespace=\"e2e-secrets\",policy=\"chat\"}";
    eventually("the missing Secret counted", WAIT, || async {
        (op.metric(series).await == Some(1.0)).then_some(())
    })
    .await;
    eventually("a SecretMissing Event", WAIT, || async {
        (event_reasons(&client, ns, "chat")
            .await
            .iter()
            .filter(|r| *r == "SecretMissing")
            .count()
            >= 1)
            .then_some(())
    })
    .await;

    // The Secret, one key short.
    let partial: Secret = serde_json::from_value(
        json!({"metadata": {"name": "late-keys"}, "stringData": {"openai": "sk-1"}}),
    )
    .unwrap();
    secrets
        .create(&PostParams::default(), &partial)
        .await
        .unwrap();
    wait_policy_within(
        &policies,
        "chat",
        "SecretMissing (no key)",
        missing("Secret e2e-secrets/late-keys has no key \"anthropic\""),
        WATCHED,
    )
    .await;

    // Complete: Ready.
    let patch = json!({"stringData": {"anthropic": "sk-2"}});
    secrets
        .patch("late-keys", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    wait_policy_within(
        &policies,
        "chat",
        "Ready once the key exists",
        ready(None),
        WATCHED,
    )
    .await;
    eventually("nothing missing", WAIT, || async {
        (op.metric(series).await == Some(0.0)).then_some(())
    })
    .await;

    // Deleted later: not Ready again.
    let before = event_reasons(&client, ns, "chat")
        .await
        .iter()
        .filter(|r| *r == "SecretMissing")
        .count();
    secrets
        .delete("late-keys", &DeleteParams::default())
        .await
        .unwrap();
    wait_policy_within(
        &policies,
        "chat",
        "SecretMissing after the delete",
        missing("Secret e2e-secrets/late-keys does not exist"),
        WATCHED,
    )
    .await;
    eventually("another SecretMissing Event", WAIT, || async {
        (event_reasons(&client, ns, "chat")
            .await
            .iter()
            .filter(|r| *r == "SecretMissing")
            .count()
            > before)
            .then_some(())
    })
    .await;

    cleanup(&client, "e2e-secrets", ns).await;
}
