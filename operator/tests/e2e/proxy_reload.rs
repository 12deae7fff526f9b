//! The whole path of a policy change: the policy is updated, the operator
//! rewrites the ConfigMap, the kubelet projects it into the pod's volume,
//! and the running sidecar (a real `tollgate-proxy` in front of the mock
//! provider) reloads and enforces it.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::Api;
use serde_json::{json, Value};
use tollgate_operator::crd::LlmPolicy;
use tollgate_tests::mock::{MockConfig, MockServer};

use crate::kubelet::Kubelet;
use crate::*;

const CARD: &str = "my card is 4111 1111 1111 1111";

async fn chat(base_url: &str, model: &str, text: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base_url}/chat/completions"))
        .bearer_auth("tollgate-placeholder")
        .json(&json!({"model": model, "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_update_reaches_the_running_sidecar() {
    if !cluster() {
        return;
    }
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-reload";
    namespace(&client, ns).await;
    let _op = Launch::new("e2e-reload", ns).start(&client).await;
    let mock = MockServer::start(MockConfig {
        openai_key: Some("sk-test-openai".into()),
        ..Default::default()
    })
    .await
    .unwrap();

    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    let (port, admin_port) = (free_port(), free_port());
    let p: LlmPolicy = serde_json::from_value(json!({
        "apiVersion": "tollgate.dev/v1alpha1", "kind": "LlmPolicy",
        "metadata": {"name": "mock", "namespace": ns},
        "spec": {
            "podSelector": {"matchLabels": {"app": "chat"}},
            "providers": [{"name": "openai", "type": "openai", "baseUrl": format!("{}/v1", mock.url()),
                "credentialsSecretRef": {"name": "llm-keys", "key": "openai"}, "models": ["gpt-4o-mini"]}],
            "sidecar": {"port": port, "adminPort": admin_port},
        },
    }))
    .unwrap();
    create_policy(&policies, &p).await;
    let first = wait_policy(&policies, "mock", "Ready", ready(None)).await;
    let first_hash = first.status.unwrap().config_hash.unwrap();

    // The app's pod, injected by the webhook; the kubelet runs its sidecar.
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "app", "labels": {"app": "chat"}},
        "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]}}))
    .unwrap();
    let pod = Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .unwrap();
    let mut kubelet = Kubelet::new(&client, &pod).await;
    kubelet.run();
    assert_eq!(kubelet.config_hash().await, Some(kubelet.projected_hash()));
    // The app reaches the provider through the URL the webhook gave it,
    // with the key from the Secret the sidecar mounts.
    let env = &pod.spec.as_ref().unwrap().containers[0].env;
    let base_url = env
        .iter()
        .flatten()
        .find(|e| e.name == "OPENAI_BASE_URL")
        .and_then(|e| e.value.clone())
        .expect("OPENAI_BASE_URL injected");
    assert_eq!(chat(&base_url, "gpt-4o-mini", "hi").await.0, 200);
    assert_eq!(
        mock.requests()[0].header("authorization"),
        Some("Bearer sk-test-openai")
    );
    // Before the change: no `smart` alias, and card numbers pass.
    assert_eq!(chat(&base_url, "smart", "hi").await.0, 404);
    assert_eq!(chat(&base_url, "gpt-4o-mini", CARD).await.0, 200);

    // The change: an alias and a PII rule.
    let patch = json!({"spec": {
        "routes": [{"name": "smart", "targets": [{"provider": "openai", "model": "gpt-4o-mini"}]}],
        "pii": {"entities": {"credit_card": {"action": "block"}}},
    }});
    let updated = policies
        .patch("mock", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let generation = updated.metadata.generation.unwrap();
    let p = wait_policy(
        &policies,
        "mock",
        "Ready at the new generation",
        ready_at(generation),
    )
    .await;
    let hash = p.status.unwrap().config_hash.unwrap();
    assert_ne!(hash, first_hash);

    // The kubelet's next sync sees the new ConfigMap and swaps the volume;
    // the proxy notices the swap by itself.
    assert!(kubelet.sync().await, "the ConfigMap changed");
    let projected = kubelet.projected_hash();
    eventually("the proxy reloads", WAIT, || async {
        (kubelet.config_hash().await.as_deref() == Some(projected.as_str())).then_some(())
    })
    .await;
    mock.clear();
    let (status, _) = chat(&base_url, "smart", "hi").await;
    assert_eq!(status, 200, "log:\n{}", kubelet.log());
    assert_eq!(mock.requests()[0].json()["model"], "gpt-4o-mini");
    let (status, body) = chat(&base_url, "gpt-4o-mini", CARD).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("pii_blocked"))
    );
    assert_eq!(mock.requests().len(), 1, "the blocked request never left");

    cleanup(&client, "e2e-reload", ns).await;
}
