//! An app that takes its base URL and key through `envFrom` keeps them
//! (the injected `env` entries would otherwise win): the webhook reads the
//! ConfigMaps and Secrets the pod's containers name, as the README says.

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

use crate::*;

fn pod(name: &str, app: &str, env_from: serde_json::Value) -> Pod {
    let mut p = app_pod(name, app);
    p.spec.as_mut().unwrap().containers[0].env_from = serde_json::from_value(env_from).unwrap();
    p
}

/// The injected `env` of the pod's app container.
fn env(p: &Pod) -> std::collections::BTreeMap<String, String> {
    p.spec.as_ref().unwrap().containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn env_from_values_are_kept() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-env-from";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-env-from", ns).start(&client).await;
    let pp = PostParams::default();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "app-env"},
        "data": {"OPENAI_BASE_URL": "https://llm.example.test/v1"}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(client.clone(), ns)
        .create(&pp, &cm)
        .await
        .unwrap();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "app-secret"},
        "stringData": {"OPENAI_API_KEY": "sk-app-own"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&pp, &secret)
        .await
        .unwrap();

    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    create_policy(&policies, &policy(ns)).await;
    let mut overriding = policy(ns);
    overriding.metadata.name = Some("override".into());
    overriding.spec.pod_selector =
        serde_json::from_value(json!({"matchLabels": {"app": "override"}})).unwrap();
    overriding.spec.injection.as_mut().unwrap().override_app_env = Some(true);
    create_policy(&policies, &overriding).await;
    wait_policy(&policies, "override", "Ready", ready(None)).await;

    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    let both =
        json!([{"configMapRef": {"name": "app-env"}}, {"secretRef": {"name": "app-secret"}}]);

    // Kept: the app's own base URL and key; the rest injected.
    let p = pods
        .create(&pp, &pod("kept", "chat", both.clone()))
        .await
        .unwrap();
    let e = env(&p);
    assert!(
        !e.contains_key("OPENAI_BASE_URL") && !e.contains_key("OPENAI_API_KEY"),
        "{e:?}"
    );
    assert_eq!(
        e.get("ANTHROPIC_BASE_URL").map(String::as_str),
        Some("http://127.0.0.1:15800")
    );
    assert_eq!(
        e.get("ANTHROPIC_API_KEY").map(String::as_str),
        Some("tollgate-placeholder")
    );

    // overrideAppEnv: the base URL points at the sidecar; the key is the app's.
    let p = pods
        .create(&pp, &pod("overridden", "override", both))
        .await
        .unwrap();
    let e = env(&p);
    assert_eq!(
        e.get("OPENAI_BASE_URL").map(String::as_str),
        Some("http://127.0.0.1:15800/v1")
    );
    assert!(!e.contains_key("OPENAI_API_KEY"), "{e:?}");

    // With a prefix the app's variables are others: everything injected.
    let prefixed = json!([{"secretRef": {"name": "app-secret"}, "prefix": "MY_"}]);
    let p = pods
        .create(&pp, &pod("prefixed", "chat", prefixed))
        .await
        .unwrap();
    assert_eq!(
        env(&p).get("OPENAI_API_KEY").map(String::as_str),
        Some("tollgate-placeholder")
    );

    // A source that does not exist (yet) is not guessed: nothing it could
    // set is set; an optional one defines nothing.
    let missing = json!([{"secretRef": {"name": "not-yet"}}]);
    let p = pods
        .create(&pp, &pod("missing", "chat", missing))
        .await
        .unwrap();
    assert!(env(&p).is_empty(), "{:?}", env(&p));
    let optional = json!([{"secretRef": {"name": "not-yet", "optional": true}}]);
    let p = pods
        .create(&pp, &pod("optional", "chat", optional))
        .await
        .unwrap();
    assert_eq!(env(&p).len(), 4, "{:?}", env(&p));

    cleanup(&client, "e2e-env-from", ns).await;
}
