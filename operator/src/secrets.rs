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
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::context::Settings;
use crate::crd::{LlmPolicy, LlmPolicySpec, RedisTls, SecretKeyRef};
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
    let budgets = spec
        .budgets
        .as_ref()
        .and_then(|b| b.store.as_ref())
        .and_then(|s| s.redis.as_ref())
        .map(|r| redis_refs(r.password_secret_ref.as_ref(), r.tls.as_ref()));
    let cache = spec
        .cache
        .as_ref()
        .and_then(|c| c.store.as_ref())
        .and_then(|s| s.redis.as_ref())
        .map(|r| redis_refs(r.password_secret_ref.as_ref(), r.tls.as_ref()));
    providers
        .chain(budgets.into_iter().flatten())
        .chain(cache.into_iter().flatten())
        .map(|r| r.name.clone())
        .collect()
}

/// The Secret keys a Redis store is authenticated with.
fn redis_refs<'a>(
    password: Option<&'a SecretKeyRef>,
    tls: Option<&'a RedisTls>,
) -> impl Iterator<Item = &'a SecretKeyRef> {
    let tls = tls.into_iter().flat_map(|t| {
        [&t.ca_secret_ref, &t.cert_secret_ref, &t.key_secret_ref]
            .into_iter()
            .flatten()
    });
    password.into_iter().chain(tls)
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
    /// Policies name Secrets as the operator applies them (the default
    /// store's Secret included).
    settings: Settings,
    tx: mpsc::UnboundedSender<ObjectRef<LlmPolicy>>,
    running: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl Watches {
    /// The watches, and the stream of policies to reconcile that they feed.
    pub fn new(
        client: Client,
        policies: kube::runtime::reflector::Store<LlmPolicy>,
        settings: Settings,
    ) -> (
        Arc<Watches>,
        impl futures_util::Stream<Item = ObjectRef<LlmPolicy>> + Send + 'static,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Arc::new(Watches {
            client,
            policies,
            settings,
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
    /// With `granted_by_binding` (the operator reads Secrets through the
    /// RoleBinding it has just applied), a new watch starts only once the API
    /// server's authorizer grants it ([`await_grant`]): started earlier, its
    /// first list would be refused and logged as a 403 in the audit log.
    pub async fn ensure(self: &Arc<Self>, ns: &str, granted_by_binding: bool) {
        if self.stop_stale_and_check(ns) {
            return;
        }
        if granted_by_binding && !await_grant(&self.client, ns).await {
            warn!(namespace = %ns, "Secret reads not granted yet: Secret watch not started");
            return;
        }
        let mut running = self.running.lock().unwrap();
        if running.contains_key(ns) {
            return; // another reconcile of the namespace started it meanwhile
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

    /// Stops the watches of namespaces left without policies; whether `ns`
    /// is watched already.
    fn stop_stale_and_check(&self, ns: &str) -> bool {
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
        running.contains_key(ns)
    }

    fn touched(&self, ns: &str, secret: &str) {
        for p in self.policies.state() {
            if p.namespace().as_deref() == Some(ns)
                && referenced(&self.settings.effective(&p).spec).contains(secret)
            {
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

/// Waits, at most [`GRANT_WAIT`], until the API server's authorizer lets
/// this operator list Secrets in `ns`; whether it does. A RoleBinding takes
/// effect once the authorizer's cache has seen it, a few milliseconds to
/// seconds after it is written; a SelfSubjectAccessReview asks that same
/// authorizer, so a request made after a yes is not refused (on one API
/// server; with several, each has its cache, and Secret reads still retry a
/// 403 for [`GRANT_WAIT`]). A review the API server does not answer (the
/// chart grants `create` on SelfSubjectAccessReviews, as Kubernetes' default
/// `system:basic-user` role does) counts as a yes: the watch then starts and
/// retries on its own, as it would without this wait.
pub async fn await_grant(client: &Client, ns: &str) -> bool {
    let deadline = tokio::time::Instant::now() + GRANT_WAIT;
    loop {
        match may_list(client, ns).await {
            Ok(true) => return true,
            Ok(false) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Ok(false) => return false,
            Err(e) => {
                debug!(namespace = %ns, error = %e, "SelfSubjectAccessReview");
                return true;
            }
        }
    }
}

/// Asks the authorizer whether this operator may list Secrets in `ns`.
async fn may_list(client: &Client, ns: &str) -> Result<bool, kube::Error> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(ns.to_string()),
                verb: Some("list".into()),
                resource: Some("secrets".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &review).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

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

#[cfg(test)]
mod tests;
