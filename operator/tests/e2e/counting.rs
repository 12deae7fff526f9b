//! Which pods a policy counts: only those the webhook would inject. Pods
//! that opted out, and pods in namespaces the webhooks are never called for,
//! are not "uninjected" (else `TollgateSidecarMissing` fires for good).
//! A dry-run admission is not an injection.

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

fn pod(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> Pod {
    let mut p = app_pod(name, "chat");
    p.metadata.labels = serde_json::from_value(labels).unwrap();
    p.metadata.annotations = serde_json::from_value(annotations).unwrap();
    p
}

#[tokio::test]
async fn opted_out_and_excluded_pods_are_not_uninjected() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-counting";
    // Enabled too, but excluded (as the chart excludes its own namespace and
    // kube-system): the webhooks, scoped to `ns`, never see its pods.
    let excluded = "e2e-counting-excluded";
    namespace(&client, ns).await;
    namespace(&client, excluded).await;
    let mut launch = Launch::new("e2e-counting", ns);
    launch.args = vec![format!("--excluded-namespace={excluded}")];
    let op = launch.start(&client).await;
    for n in [ns, excluded] {
        create_policy(&Api::namespaced(client.clone(), n), &policy(n)).await;
    }

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pp = PostParams::default();
    let chat = json!({"app": "chat"});
    let out = pods
        .create(
            &pp,
            &pod(
                "opted-out-label",
                json!({"app": "chat", "tollgate.dev/inject": "false"}),
                json!({}),
            ),
        )
        .await
        .unwrap();
    assert!(out.spec.unwrap().init_containers.is_none());
    pods.create(
        &pp,
        &pod(
            "opted-out-annotation",
            chat.clone(),
            json!({"tollgate.dev/inject": "false"}),
        ),
    )
    .await
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), excluded)
        .create(&pp, &pod("elsewhere", chat.clone(), json!({})))
        .await
        .unwrap();
    let injected = pods
        .create(&pp, &pod("app", chat.clone(), json!({})))
        .await
        .unwrap();
    assert!(injected.spec.unwrap().init_containers.is_some());
    // A dry run (`kubectl apply --dry-run=server`) is answered the same but
    // is not an injection.
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let shown = pods
        .create(&dry, &pod("dry", chat, json!({})))
        .await
        .unwrap();
    assert!(shown.spec.unwrap().init_containers.is_some());
    let series = |result: &str| {
        format!(
            "tollgate_operator_admission_requests_total{{result=\"{result}\",webhook=\"mutate\"}}"
        )
    };
    assert_eq!(op.metric(&series("injected_dry_run")).await, Some(1.0));
    assert_eq!(op.metric(&series("injected")).await, Some(1.0));
    assert_eq!(
        op.metric("tollgate_operator_injections_total").await,
        Some(1.0)
    );

    let api: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    let p = wait_policy(
        &api,
        "chat",
        "the injected pod counted",
        |p: Option<&LlmPolicy>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.injected_pods == Some(1))
        },
    )
    .await;
    let s = p.status.unwrap();
    assert_eq!(
        (s.matched_pods, s.uninjected_pods),
        (Some(1), Some(0)),
        "{:?}",
        s.uninjected_pod_names
    );
    let other: Api<LlmPolicy> = Api::namespaced(client.clone(), excluded);
    let p = wait_policy(&other, "chat", "Ready", ready(None)).await;
    assert_eq!(p.status.unwrap().uninjected_pods, Some(0));
    for n in [ns, excluded] {
        let series =
            format!("tollgate_operator_uninjected_pods{{namespace=\"{n}\",policy=\"chat\"}}");
        eventually(&series, WAIT, || async {
            (op.metric(&series).await == Some(0.0)).then_some(())
        })
        .await;
    }

    let _ = Api::<Namespace>::all(client.clone())
        .delete(excluded, &DeleteParams::default())
        .await;
    cleanup(&client, "e2e-counting", ns).await;
}

/// Creation times have second precision: two policies created in the same
/// second tie, and the first by name wins. The loser is told so, not that
/// the winner is older.
#[tokio::test]
async fn a_same_second_tie_is_won_by_name() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-tie";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-tie", ns).start(&client).await;
    let api: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    // Until a pair lands in one second (each try takes milliseconds).
    // A pair that straddles a second is deleted before the next try, so
    // only the tied pair selects the pod below.
    let mut attempt = 0;
    let (winner, loser) = eventually("two policies created in one second", WAIT, || {
        attempt += 1;
        let api = api.clone();
        async move {
            let names = (format!("tie-{attempt}-a"), format!("tie-{attempt}-b"));
            for name in [&names.1, &names.0] {
                let mut p = policy(ns);
                p.metadata.name = Some(name.clone());
                create_policy(&api, &p).await;
            }
            let at = |name: &str| {
                let api = api.clone();
                let name = name.to_string();
                async move { api.get(&name).await.unwrap().metadata.creation_timestamp }
            };
            if at(&names.0).await == at(&names.1).await {
                return Some(names);
            }
            for name in [&names.0, &names.1] {
                api.delete(name, &DeleteParams::default()).await.unwrap();
            }
            None
        }
    })
    .await;
    // A pod both select, so the two conflict over it.
    let pod = app_pod("both", "chat");
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let tie = format!("{winner} (created in the same second, wins the tie by name)");
    let p = wait_policy(
        &api,
        &loser,
        "Conflicted by the tie",
        |p: Option<&LlmPolicy>| {
            p.and_then(|p| condition(p, "Conflicted"))
                .is_some_and(|(s, _, m)| s == "True" && m.contains(&tie))
        },
    )
    .await;
    let (_, _, message) = condition(&p, "Conflicted").unwrap();
    assert!(!message.contains("(older)"), "{message}");

    cleanup(&client, "e2e-tie", ns).await;
}
