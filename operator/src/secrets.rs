//! The Secrets policies reference: read access where policies are, and a
//! watch that reconciles a policy as soon as a Secret it names changes.
//!
//! The operator holds no cluster-wide Secret permission. Given
//! `--secrets-role` (the chart's ClusterRole granting Secret reads, bound
//! nowhere), it binds that role to its own ServiceAccount with one
//! RoleBinding per namespace that has policies, owned by those policies so
//! that deleting the last one garbage-collects it. Secrets are then read in
//! those namespaces only: their keys (never kept or logged) to check what a
//! sidecar mounts, the Redis password for spend, and the key names of an
//! app's `envFrom` Secrets at injection.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::crd::{LlmPolicy, LlmPolicySpec};
use crate::reconcile::MANAGER;

/// The operator's own identity, to bind Secret reads to
/// (`--secrets-role`, `--service-account`, its namespace).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    /// ClusterRole granting `get`, `list`, `watch` on Secrets.
    pub role: String,
    pub service_account: String,
    pub namespace: String,
}

/// Names of the Secrets `spec` references, sorted.
pub fn referenced(spec: &LlmPolicySpec) -> BTreeSet<String> {
    let providers = spec
        .providers
        .iter()
        .filter_map(|p| p.credentials_secret_ref.as_ref());
    let redis = spec
        .budgets
        .as_ref()
        .and_then(|b| b.store.as_ref())
        .and_then(|s| s.redis.as_ref())
        .and_then(|r| r.password_secret_ref.as_ref());
    providers.chain(redis).map(|r| r.name.clone()).collect()
}

/// Server-side applies the RoleBinding that lets the operator read Secrets
/// in `ns`, owned by every policy of the namespace.
pub async fn bind(
    client: &Client,
    access: &Access,
    ns: &str,
    owners: &[&LlmPolicy],
) -> Result<(), kube::Error> {
    let owners: Vec<_> = owners
        .iter()
        .filter_map(|p| {
            let mut o = p.controller_owner_ref(&())?;
            o.controller = None;
            o.block_owner_deletion = None;
            Some(o)
        })
        .collect();
    let rb = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {
            "name": access.role,
            "namespace": ns,
            "labels": {"app.kubernetes.io/managed-by": MANAGER},
            "ownerReferences": owners,
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": access.role},
        "subjects": [{"kind": "ServiceAccount", "name": access.service_account, "namespace": access.namespace}],
    });
    let api: Api<RoleBinding> = Api::namespaced(client.clone(), ns);
    api.patch(
        &access.role,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&rb),
    )
    .await?;
    Ok(())
}

/// One metadata watch of Secrets per namespace with policies, run while
/// this replica leads. A Secret created, changed or deleted reconciles the
/// policies of its namespace that name it.
pub struct Watches {
    client: Client,
    policies: kube::runtime::reflector::Store<LlmPolicy>,
    tx: mpsc::UnboundedSender<ObjectRef<LlmPolicy>>,
    running: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Watches {
    /// The watches, and the stream of policies to reconcile that they feed.
    pub fn new(
        client: Client,
        policies: kube::runtime::reflector::Store<LlmPolicy>,
    ) -> (
        Arc<Watches>,
        impl futures_util::Stream<Item = ObjectRef<LlmPolicy>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Arc::new(Watches {
            client,
            policies,
            tx,
            running: Mutex::default(),
        });
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|r| (r, rx)) },
            );
        (w, stream)
    }

    /// Watches `ns` (once), and stops watching namespaces without policies.
    pub fn ensure(self: &Arc<Self>, ns: &str) {
        let with_policies: BTreeSet<String> = self
            .policies
            .state()
            .iter()
            .filter_map(|p| p.namespace())
            .collect();
        let mut running = self.running.lock().unwrap();
        running.retain(|n, task| {
            let keep = n == ns || with_policies.contains(n);
            if !keep {
                debug!(namespace = %n, "no policies left: Secret watch stopped");
                task.abort();
            }
            keep
        });
        if running.contains_key(ns) {
            return;
        }
        let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(self.client.clone(), ns);
        let me = Arc::downgrade(self);
        let namespace = ns.to_string();
        let task = tokio::spawn(async move {
            let mut events = watcher(api, watcher::Config::default())
                .default_backoff()
                .touched_objects()
                .boxed();
            while let Some(event) = events.next().await {
                let Some(me) = me.upgrade() else { return };
                match event {
                    Ok(secret) => me.touched(&namespace, &secret.name_any()),
                    Err(e) => warn!(namespace = %namespace, error = %e, "Secret watch"),
                }
            }
        });
        running.insert(ns.to_string(), task);
    }

    fn touched(&self, ns: &str, secret: &str) {
        for p in self.policies.state() {
            if p.namespace().as_deref() == Some(ns) && referenced(&p.spec).contains(secret) {
                let _ = self.tx.send(ObjectRef::from_obj(p.as_ref()));
            }
        }
    }
}

impl Drop for Watches {
    fn drop(&mut self) {
        for (_, task) in self.running.lock().unwrap().drain() {
            task.abort();
        }
    }
}

/// How long a reconcile waits for a RoleBinding it just created to take
/// effect (the API server's authorizer cache) before reading Secrets.
pub const GRANT_WAIT: Duration = Duration::from_secs(3);

/// Key names of each Secret, `None` for one that does not exist; read
/// once per name. Values are dropped at once.
pub async fn keys(
    client: &Client,
    ns: &str,
    names: &[String],
) -> Result<BTreeMap<String, Option<BTreeSet<String>>>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let mut out = BTreeMap::new();
    for name in names {
        if out.contains_key(name) {
            continue;
        }
        let found = api.get_opt(name).await?.map(|s| {
            s.data
                .into_iter()
                .flatten()
                .map(|(k, _)| k)
                .chain(s.string_data.into_iter().flatten().map(|(k, _)| k))
                .collect()
        });
        out.insert(name.clone(), found);
    }
    Ok(out)
}
