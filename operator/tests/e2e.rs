//! End-to-end against a real kube-apiserver (and kube-controller-manager
//! for garbage collection), started by `tests/k8s/cluster.sh run`:
//!
//! ```sh
//! TOLLGATE_K8S_CRDS=crds tests/k8s/cluster.sh run -- cargo test -p tollgate-operator --test e2e
//! ```
//!
//! Without `TOLLGATE_K8S_STATE` (set by cluster.sh) every test passes after
//! printing that it was skipped, unless `TOLLGATE_REQUIRE_K8S=1` (CI), where
//! a missing cluster fails.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client, ResourceExt};
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

const WAIT: Duration = Duration::from_secs(60);

fn cluster() -> bool {
    if std::env::var_os("TOLLGATE_K8S_STATE").is_some() {
        return true;
    }
    if std::env::var("TOLLGATE_REQUIRE_K8S").as_deref() == Ok("1") {
        panic!("TOLLGATE_REQUIRE_K8S=1 but no cluster: run under tests/k8s/cluster.sh run");
    }
    eprintln!("skipped: no Kubernetes API server (run under tests/k8s/cluster.sh run -- ...)");
    false
}

/// The operator process, killed on drop.
struct Operator(Child);

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .expect("KUBECONFIG from cluster.sh")
}

/// Webhook configurations pointing at `port`, the operator started with a
/// generated certificate that it patches into them.
async fn start(client: &Client, tag: &str, ns: &str) -> Operator {
    let port = free_port();
    let scope = json!({"matchLabels": {"kubernetes.io/metadata.name": ns}});
    let mwc: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": format!("tollgate-{tag}")},
        "webhooks": [{
            "name": "inject.tollgate.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "reinvocationPolicy": "Never", "namespaceSelector": scope,
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/mutate")},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}],
        }],
    }))
    .unwrap();
    let vwc: ValidatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": {"name": format!("tollgate-{tag}")},
        "webhooks": [{
            "name": "validate.tollgate.dev", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "namespaceSelector": scope,
            "clientConfig": {"url": format!("https://127.0.0.1:{port}/validate")},
            "rules": [{"apiGroups": ["tollgate.dev"], "apiVersions": ["v1alpha1"],
                       "operations": ["CREATE", "UPDATE"], "resources": ["llmpolicies"]}],
        }],
    }))
    .unwrap();
    Api::<MutatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &mwc)
        .await
        .unwrap();
    Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .create(&PostParams::default(), &vwc)
        .await
        .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_tollgate-operator"))
        .args([
            "run",
            "--admin-addr",
            "127.0.0.1:0",
            "--namespace",
            ns,
            "--lease-name",
            tag,
        ])
        .args([
            "--webhook-addr",
            &format!("127.0.0.1:{port}"),
            "--tls-san",
            "127.0.0.1",
        ])
        .args(["--mutating-webhook-config", &format!("tollgate-{tag}")])
        .args(["--validating-webhook-config", &format!("tollgate-{tag}")])
        .args(["--proxy-image", "example.test/tollgate-proxy:e2e"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    Operator(child)
}

fn policy(ns: &str) -> LlmPolicy {
    let mut p: LlmPolicy = serde_yaml::from_str(include_str!("../testdata/policy.yaml")).unwrap();
    p.metadata.namespace = Some(ns.into());
    p
}

async fn namespace(client: &Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name,
        "labels": {"tollgate.dev/injection": "enabled"}}}))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    // The controller manager creates the default ServiceAccount pods need.
    let sa: Api<k8s_openapi::api::core::v1::ServiceAccount> = Api::namespaced(client.clone(), name);
    tokio::time::timeout(
        WAIT,
        await_condition(sa, "default", conditions::is_created()),
    )
    .await
    .expect("default ServiceAccount")
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "llm-keys"},
        "stringData": {"openai": "sk-test-openai", "anthropic": "sk-test-anthropic"}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), name)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
}

fn ready(hash: Option<String>) -> impl Fn(Option<&LlmPolicy>) -> bool {
    move |p: Option<&LlmPolicy>| {
        let Some(s) = p.and_then(|p| p.status.as_ref()) else {
            return false;
        };
        let ready = s
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready && (hash.is_none() || s.config_hash != hash)
    }
}

/// Creates the policy, retrying while the validating webhook is not yet
/// reachable (the operator is still starting).
async fn create_policy(api: &Api<LlmPolicy>, p: &LlmPolicy) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match api.create(&PostParams::default(), p).await {
            Ok(_) => return,
            Err(e)
                if tokio::time::Instant::now() < deadline
                    && e.to_string().contains("failed calling webhook") =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("create policy: {e}"),
        }
    }
}

#[tokio::test]
async fn policy_lifecycle_injection_and_validation() {
    if !cluster() {
        return;
    }
    let client = client().await;
    let ns = "e2e-lifecycle";
    namespace(&client, ns).await;
    let _op = start(&client, "e2e-lifecycle", ns).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);

    // A valid policy: ConfigMap + Ready=True.
    create_policy(&policies, &policy(ns)).await;
    let p = tokio::time::timeout(WAIT, await_condition(policies.clone(), "chat", ready(None)))
        .await
        .expect("Ready=True")
        .unwrap()
        .unwrap();
    let status = p.status.unwrap();
    let cm = cms.get("tollgate-chat").await.unwrap();
    let yaml = &cm.data.as_ref().unwrap()["config.yaml"];
    let config = tollgate_config::from_yaml_str(yaml).expect("the proxy accepts the ConfigMap");
    assert_eq!(Some(config.hash.clone()), status.config_hash);
    assert!(!yaml.contains("sk-test"), "keys are mounted, never copied");
    assert_eq!(cm.owner_references()[0].name, "chat");

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

    // The validating webhook refuses the rest, naming the field.
    let mut bad = policy(ns);
    bad.metadata.name = Some("bad-secret".into());
    bad.spec.providers[0]
        .credentials_secret_ref
        .as_mut()
        .unwrap()
        .name = "missing".into();
    bad.spec.routes[0].retry.as_mut().unwrap().initial_backoff = Some("soon".into());
    let err = policies
        .create(&PostParams::default(), &bad)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "spec.providers[0].credentialsSecretRef: Secret e2e-lifecycle/missing does not exist"
        ),
        "{err}"
    );
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

    // Leave the cluster as found, so the suite can run again on it.
    let dp = DeleteParams::default();
    let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete("tollgate-e2e-lifecycle", &dp)
        .await;
    let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete("tollgate-e2e-lifecycle", &dp)
        .await;
    let _ = Api::<Namespace>::all(client).delete(ns, &dp).await;
}
