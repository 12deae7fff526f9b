//! A policy's life: Ready with its ConfigMap, refused by CEL and by the
//! validating webhook, pods injected once and counted, updated, deleted
//! (the ConfigMap is garbage-collected through its owner reference).

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, ResourceExt};
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

#[tokio::test]
async fn policy_lifecycle_injection_and_validation() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-lifecycle";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-lifecycle", ns).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);

    // A valid policy: ConfigMap + Ready=True.
    create_policy(&policies, &policy(ns)).await;
    let p = tokio::time::timeout(WAIT, await_condition(policies.clone(), "chat", ready(None)))
        .await
        .expect("Ready=True")
        .unwrap()
        .unwrap();
    let status = p.status.clone().unwrap();
    let cm = cms.get("tollgate-chat").await.unwrap();
    let yaml = &cm.data.as_ref().unwrap()["config.yaml"];
    let config = tollgate_config::from_yaml_str(yaml).expect("the proxy accepts the ConfigMap");
    assert_eq!(Some(config.hash.clone()), status.config_hash);
    assert!(!yaml.contains("sk-test"), "keys are mounted, never copied");
    // Owned by the policy (uid and all), so deleting it collects the ConfigMap.
    let owner = &cm.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), Some(&owner.uid)),
        ("LlmPolicy", "chat", p.metadata.uid.as_ref())
    );
    assert_eq!(owner.controller, Some(true));

    // CEL refuses what the schema can say.
    let mut bad = policy(ns);
    bad.metadata.name = Some("bad-weight".into());
    bad.spec.routes[0].targets[0].weight = Some(0);
    let err = policies
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("weight must be greater than 0"), "{err}");
    // The webhook names the exact target whose provider does not exist.
    let mut bad = policy(ns);
    bad.metadata.name = Some("bad-provider".into());
    bad.spec.routes[0].targets[1].provider = "anthropc".into();
    let err = policies
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.routes[0].targets[1].provider: no provider is named `anthropc`"),
        "{err}"
    );

    // The validating webhook refuses the rest, naming the field (a missing
    // Secret is not its business: see secrets.rs).
    let mut bad = policy(ns);
    bad.metadata.name = Some("bad-backoff".into());
    bad.spec.routes[0].retry.as_mut().unwrap().initial_backoff = Some("soon".into());
    let err = policies
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.routes[0].retry.initialBackoff"), "{err}");

    // A pod in the enabled namespace gets the sidecar, once.
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "app", "labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]}}),
    )
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let spec = created.spec.as_ref().unwrap();
    let inits = spec.init_containers.as_ref().expect("injected");
    assert_eq!(inits.len(), 1);
    assert_eq!(inits[0].name, "tollgate-proxy");
    assert_eq!(inits[0].restart_policy.as_deref(), Some("Always"));
    assert_eq!(
        inits[0].image.as_deref(),
        Some("example.test/tollgate-proxy:dev")
    );
    let sc = inits[0].security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.run_as_non_root, Some(true));
    let env: Vec<(String, String)> = spec.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect();
    assert!(
        env.contains(&("OPENAI_BASE_URL".into(), "http://127.0.0.1:15800/v1".into())),
        "{env:?}"
    );
    assert_eq!(created.annotations()["tollgate.dev/policy"], "chat");
    assert_eq!(
        Some(&created.annotations()["tollgate.dev/config-hash"]),
        status.config_hash.as_ref()
    );
    // Re-created (same spec, already injected): not injected twice.
    let again: Pod = serde_json::from_value({
        let mut v = serde_json::to_value(&created).unwrap();
        let m = v["metadata"].as_object_mut().unwrap();
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
        ] {
            m.remove(k);
        }
        m.insert("name".into(), json!("app-again"));
        v.as_object_mut().unwrap().remove("status");
        v
    })
    .unwrap();
    let again = pods.create(&PostParams::default(), &again).await.unwrap();
    assert_eq!(again.spec.unwrap().init_containers.unwrap().len(), 1);

    // The status counts the pods.
    tokio::time::timeout(
        WAIT,
        await_condition(policies.clone(), "chat", |p: Option<&LlmPolicy>| {
            p.and_then(|p| p.status.as_ref())
                .is_some_and(|s| s.injected_pods == Some(2) && s.matched_pods == Some(2))
        }),
    )
    .await
    .expect("pod counts")
    .unwrap();

    // Update → ConfigMap follows, with a new hash.
    let mut p = policies.get("chat").await.unwrap();
    p.spec.routes[0].targets[0].weight = Some(5);
    policies
        .replace("chat", &PostParams::default(), &p)
        .await
        .unwrap();
    let p = tokio::time::timeout(
        WAIT,
        await_condition(policies.clone(), "chat", ready(status.config_hash.clone())),
    )
    .await
    .expect("new hash")
    .unwrap()
    .unwrap();
    let cm = cms.get("tollgate-chat").await.unwrap();
    let uid = cm.uid().unwrap();
    let config = tollgate_config::from_yaml_str(&cm.data.unwrap()["config.yaml"]).unwrap();
    assert_eq!(Some(config.hash), p.status.unwrap().config_hash);

    // Delete → the ConfigMap is garbage-collected.
    policies
        .delete("chat", &DeleteParams::default())
        .await
        .unwrap();
    tokio::time::timeout(
        Duration::from_secs(90),
        await_condition(cms, "tollgate-chat", conditions::is_deleted(&uid)),
    )
    .await
    .expect("ConfigMap collected")
    .unwrap();

    cleanup(&client, "e2e-lifecycle", ns).await;
}
