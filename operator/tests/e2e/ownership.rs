//! What the operator writes is its own: a ConfigMap it did not create is
//! never adopted, overwritten or garbage-collected, and a policy whose
//! config a ConfigMap cannot hold is refused — by the webhook, and by status
//! when the webhook is not there — with no pod pointed at a missing config.

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

#[tokio::test]
async fn a_config_map_the_operator_did_not_create_is_left_alone() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-ownership";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-ownership", ns).start(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let theirs: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "tollgate-chat", "labels": {"team": "a"}},
        "data": {"mine": "keep me"},
    }))
    .unwrap();
    cms.create(&PostParams::default(), &theirs).await.unwrap();

    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(&policies, &policy(ns)).await;
    let p = wait_policy(
        &policies,
        "chat",
        "Ready=False ConfigMapNotOwned",
        |p: Option<&LlmPolicy>| {
            p.and_then(|p| condition(p, "Ready"))
                .is_some_and(|(s, r, _)| s == "False" && r == "ConfigMapNotOwned")
        },
    )
    .await;
    let (_, _, message) = condition(&p, "Ready").unwrap();
    assert!(
        message.contains("ConfigMap e2e-ownership/tollgate-chat already exists"),
        "{message}"
    );
    let (conflicted, reason, _) = condition(&p, "Conflicted").unwrap();
    assert_eq!(
        (conflicted.as_str(), reason.as_str()),
        ("True", "ConfigMapNotOwned")
    );
    assert_eq!(condition(&p, "Accepted").unwrap().0, "True");
    assert_eq!(p.status.as_ref().unwrap().config_hash, None);
    eventually("a ConfigMapNotOwned Event", WAIT, || async {
        event_reasons(&client, ns, "chat")
            .await
            .contains(&"ConfigMapNotOwned".to_string())
            .then_some(())
    })
    .await;

    // Untouched: no owner (so never garbage-collected with the policy), no
    // label, the user's data only.
    let cm = cms.get("tollgate-chat").await.unwrap();
    assert!(
        cm.owner_references().is_empty(),
        "{:?}",
        cm.owner_references()
    );
    assert_eq!(cm.labels().get("app.kubernetes.io/managed-by"), None);
    assert_eq!(
        cm.data.unwrap(),
        [("mine".to_string(), "keep me".to_string())].into()
    );

    // Its pods are not pointed at the user's ConfigMap.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let created = pods
        .create(&PostParams::default(), &app_pod("before", "chat"))
        .await
        .unwrap();
    assert!(
        created.spec.unwrap().init_containers.is_none(),
        "injected with a ConfigMap it does not own"
    );

    // The user deletes theirs: the policy writes its own and turns Ready.
    cms.delete("tollgate-chat", &DeleteParams::default())
        .await
        .unwrap();
    let p = wait_policy_within(
        &policies,
        "chat",
        "Ready after the ConfigMap is gone",
        ready(None),
        std::time::Duration::from_secs(60),
    )
    .await;
    assert_eq!(condition(&p, "Conflicted").unwrap().0, "False");
    let cm = cms.get("tollgate-chat").await.unwrap();
    assert_eq!(cm.owner_references()[0].uid, p.uid().unwrap());
    let created = pods
        .create(&PostParams::default(), &app_pod("after", "chat"))
        .await
        .unwrap();
    assert!(created.spec.unwrap().init_containers.is_some());

    cleanup(&client, "e2e-ownership", ns).await;
}

/// 50,000 dictionary terms of 20 bytes: a valid policy of about 1.2 MiB,
/// whose config a ConfigMap cannot hold (the API server stores the policy).
fn oversized(ns: &str) -> LlmPolicy {
    let mut p = policy(ns);
    p.metadata.name = Some("big".into());
    let terms: Vec<String> = (0..50_000).map(|i| format!("codename-{i:011}")).collect();
    p.spec.pii = Some(
        serde_json::from_value(json!({"custom": [{"name": "codenames", "terms": terms}]})).unwrap(),
    );
    p
}

#[tokio::test]
async fn a_config_too_large_for_a_config_map_is_refused_and_reported() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-oversized";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-oversized", ns).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);

    // The validating webhook refuses it, saying why.
    create_policy(&policies, &policy(ns)).await; // the webhook is up
    let err = policies
        .create(&PostParams::default(), &oversized(ns))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("more than the 1024 KiB a ConfigMap holds"),
        "{err}"
    );
    assert!(err.contains("largest: spec.pii"), "{err}");

    // Without the validating webhook it is stored; the status says why no
    // config exists and no pod is injected for it.
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete("tollgate-e2e-oversized", &DeleteParams::default())
        .await
        .unwrap();
    let mut big = oversized(ns);
    big.spec.pod_selector = serde_json::from_value(json!({"matchLabels": {"app": "big"}})).unwrap();
    eventually("the oversized policy stored", WAIT, || async {
        policies.create(&PostParams::default(), &big).await.ok()
    })
    .await;
    let p = wait_policy(
        &policies,
        "big",
        "Accepted=False",
        |p: Option<&LlmPolicy>| {
            p.and_then(|p| condition(p, "Accepted"))
                .is_some_and(|(s, _, _)| s == "False")
        },
    )
    .await;
    let (_, reason, message) = condition(&p, "Accepted").unwrap();
    assert_eq!(reason, "InvalidSpec");
    assert!(
        message.contains("more than the 1024 KiB a ConfigMap holds"),
        "{message}"
    );
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let mut pod = app_pod("big-app", "chat");
    pod.metadata.labels = Some([("app".to_string(), "big".to_string())].into());
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    assert!(
        created.spec.unwrap().init_containers.is_none(),
        "injected without a config"
    );
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    assert!(cms.get_opt("tollgate-big").await.unwrap().is_none());

    cleanup(&client, "e2e-oversized", ns).await;
}
