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
//!
//! The tests run one at a time ([`serial`]): each operator watches every
//! namespace, and one test restarts the API server.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod, Secret};
use kube::api::{DeleteParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Api, Client};
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;

mod budgets;
mod certs;
mod counting;
mod env_from;
mod leader;
mod lifecycle;
mod ownership;
mod restart;
mod secrets;
mod spend;
mod traces;
mod typed;

pub const WAIT: Duration = Duration::from_secs(60);

pub fn cluster() -> bool {
    if std::env::var_os("TOLLGATE_K8S_STATE").is_some() {
        return true;
    }
    if std::env::var("TOLLGATE_REQUIRE_K8S").as_deref() == Ok("1") {
        panic!("TOLLGATE_REQUIRE_K8S=1 but no cluster: run under tests/k8s/cluster.sh run");
    }
    eprintln!("skipped: no Kubernetes API server (run under tests/k8s/cluster.sh run -- ...)");
    false
}

/// Held by each test for its whole run.
pub async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

/// A port free now and never handed out before in this run: tests run
/// concurrently, and two operators given one port would answer each
/// other's webhooks.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

pub async fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::try_default()
        .await
        .expect("KUBECONFIG from cluster.sh")
}

/// An operator process, killed on drop.
pub struct Operator {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` of its admin listener.
    pub admin: String,
    /// The port of its webhook listener.
    pub webhook: u16,
}

impl Operator {
    /// Waits until it accepts connections on `ports`; false if it exited.
    async fn listening(&mut self, ports: &[u16]) -> bool {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let child = self.child.as_mut().expect("running");
            if child.try_wait().unwrap().is_some() {
                self.child = None;
                return false;
            }
            let mut all = true;
            for p in ports {
                all &= tokio::net::TcpStream::connect(("127.0.0.1", *p))
                    .await
                    .is_ok();
            }
            if all {
                return true;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "operator not listening within 60 s"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    /// Its `/metrics` text, or `None` while it does not answer.
    pub async fn metrics(&self) -> Option<String> {
        let r = reqwest::get(format!("{}/metrics", self.admin)).await.ok()?;
        r.text().await.ok()
    }

    /// The value of the series `name` (exact, labels included), if exported.
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await?;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// SIGTERM, as the kubelet sends on a rolling update; waits for the exit.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = c.id().to_string();
        tokio::task::spawn_blocking(move || {
            let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            assert!(sent.success());
            c.wait().unwrap()
        })
        .await
        .unwrap()
    }

    /// SIGSTOP: the process stops where it is, its connections left open,
    /// as one starved of CPU or paused would; [`Operator::thaw`] goes on.
    pub fn freeze(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Operator::freeze`].
    pub fn thaw(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        let sent = Command::new("kill").args([sig, &pid]).status().unwrap();
        assert!(sent.success(), "kill {sig} {pid}");
    }

    /// SIGKILL, as a crash or a node loss would: no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How to start an operator.
pub struct Launch<'a> {
    /// Lease name and webhook configuration names.
    pub tag: &'a str,
    /// The Lease's namespace.
    pub ns: &'a str,
    /// This replica's identity.
    pub pod_name: Option<&'a str>,
    pub lease_seconds: u64,
    /// Register webhook configurations (scoped to `ns`) that point at it.
    pub webhooks: bool,
    /// More flags.
    pub args: Vec<String>,
    /// More environment variables.
    pub env: Vec<(String, String)>,
    /// Where its stderr (its log) goes; `None`: the test's stderr.
    pub log: Option<std::path::PathBuf>,
}

impl<'a> Launch<'a> {
    pub fn new(tag: &'a str, ns: &'a str) -> Self {
        Launch {
            tag,
            ns,
            pod_name: None,
            lease_seconds: 15,
            webhooks: true,
            args: Vec::new(),
            env: Vec::new(),
            log: None,
        }
    }

    /// Starts it; with `webhooks`, creates the configurations first and the
    /// operator patches its generated certificate into them. A port found free can be taken by another process before the
    /// operator binds it (it then exits at once): up to five tries, each
    /// with new ports.
    pub async fn start(&self, client: &Client) -> Operator {
        for attempt in 1..=5 {
            let (port, admin) = (free_port(), free_port());
            if self.webhooks {
                if attempt > 1 {
                    delete_webhook_configs(client, self.tag).await;
                }
                webhook_configs(client, self.tag, self.ns, port).await;
            }
            let mut op = self.spawn(port, admin);
            if op.listening(&[port, admin]).await {
                return op;
            }
            eprintln!(
                "operator {} exited at start (try {attempt}); new ports",
                self.tag
            );
        }
        panic!("operator {} did not start in five tries", self.tag);
    }

    fn spawn(&self, port: u16, admin: u16) -> Operator {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tollgate-operator"));
        cmd.args(["run", "--namespace", self.ns, "--lease-name", self.tag])
            .args(["--admin-addr", &format!("127.0.0.1:{admin}")])
            .args(["--lease-seconds", &self.lease_seconds.to_string()])
            .args(["--webhook-addr", &format!("127.0.0.1:{port}")])
            .args(["--tls-san", "127.0.0.1"])
            .args(["--proxy-image", "example.test/tollgate-proxy:e2e"]);
        if let Some(p) = self.pod_name {
            cmd.args(["--pod-name", p]);
        }
        cmd.args(&self.args);
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        if self.webhooks {
            cmd.args([
                "--mutating-webhook-config",
                &format!("tollgate-{}", self.tag),
            ])
            .args([
                "--validating-webhook-config",
                &format!("tollgate-{}", self.tag),
            ]);
        }
        let child = cmd
            .stdout(match std::env::var_os("TOLLGATE_E2E_OPERATOR_LOG") {
                Some(_) => Stdio::inherit(),
                None => Stdio::null(),
            })
            .stderr(match &self.log {
                Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
                None => Stdio::inherit(),
            })
            .spawn()
            .unwrap();
        Operator {
            child: Some(child),
            admin: format!("http://127.0.0.1:{admin}"),
            webhook: port,
        }
    }
}

async fn webhook_configs(client: &Client, tag: &str, ns: &str, port: u16) {
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
}

/// Deletes what [`Launch::start`] and [`namespace`] created, so the suite
/// can run again on the same cluster.
pub async fn cleanup(client: &Client, tag: &str, ns: &str) {
    delete_webhook_configs(client, tag).await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(ns, &DeleteParams::default())
        .await;
}

async fn delete_webhook_configs(client: &Client, tag: &str) {
    let dp = DeleteParams::default();
    let name = format!("tollgate-{tag}");
    let _ = Api::<MutatingWebhookConfiguration>::all(client.clone())
        .delete(&name, &dp)
        .await;
    let _ = Api::<ValidatingWebhookConfiguration>::all(client.clone())
        .delete(&name, &dp)
        .await;
}

/// The full example policy, in `ns`.
pub fn policy(ns: &str) -> LlmPolicy {
    let mut p: LlmPolicy =
        serde_saphyr::from_str(include_str!("../../testdata/policy.yaml")).unwrap();
    p.metadata.namespace = Some(ns.into());
    p
}

/// A namespace with injection enabled, its default ServiceAccount, and the
/// `llm-keys` Secret.
pub async fn namespace(client: &Client, name: &str) {
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

/// `Ready=True`, and (with `hash`) a config hash other than `hash`.
pub fn ready(hash: Option<String>) -> impl Fn(Option<&LlmPolicy>) -> bool {
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

/// `Ready=True` for the policy's current generation.
pub fn ready_at(generation: i64) -> impl Fn(Option<&LlmPolicy>) -> bool {
    move |p: Option<&LlmPolicy>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.observed_generation == Some(generation)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }
}

/// Waits for `cond` on the policy `name`, failing after [`WAIT`].
pub async fn wait_policy(
    api: &Api<LlmPolicy>,
    name: &str,
    what: &str,
    cond: impl kube::runtime::wait::Condition<LlmPolicy>,
) -> LlmPolicy {
    wait_policy_within(api, name, what, cond, WAIT).await
}

/// [`wait_policy`], failing after `within`.
pub async fn wait_policy_within(
    api: &Api<LlmPolicy>,
    name: &str,
    what: &str,
    cond: impl kube::runtime::wait::Condition<LlmPolicy>,
    within: Duration,
) -> LlmPolicy {
    tokio::time::timeout(within, await_condition(api.clone(), name, cond))
        .await
        .unwrap_or_else(|_| panic!("{name}: {what} within {within:?}"))
        .unwrap()
        .unwrap_or_else(|| panic!("{name}: deleted while waiting for {what}"))
}

/// Polls `f` every 100 ms until it returns `Some`, failing after `within`.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A pod labelled `app: <app>` with one app container.
pub fn app_pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "example.test/app:1"}]},
    }))
    .unwrap()
}

/// The pod was admitted with the sidecar.
pub fn injected(p: &Pod) -> bool {
    p.spec
        .as_ref()
        .and_then(|s| s.init_containers.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.name == "tollgate-proxy"))
}

/// A condition of the policy: (status, reason, message).
pub fn condition(p: &LlmPolicy, type_: &str) -> Option<(String, String, String)> {
    let c = p
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)?;
    Some((c.status.clone(), c.reason.clone(), c.message.clone()))
}

/// The reasons of the Events about the policy `name` in `ns`.
pub async fn event_reasons(client: &Client, ns: &str, name: &str) -> Vec<String> {
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), ns);
    events
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// Creates the policy, retrying while the validating webhook is not yet
/// reachable (the operator is still starting).
pub async fn create_policy(api: &Api<LlmPolicy>, p: &LlmPolicy) {
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
