//! Wiring: the watch caches every replica keeps, and the controller the
//! leader runs (policies, their ConfigMaps, pod metadata).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{Future, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Config;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{watcher, Controller, WatchStreamExt};
use kube::{Api, Client, ResourceExt};
use tracing::{info, warn};

use crate::cache::{cache, strip};
use crate::context::{Context, Stores};
use crate::crd::LlmPolicy;
use crate::reconcile::{error_policy, reconcile, MANAGER};
use crate::secrets::Watches;

/// How long triggers of one policy are collected before it reconciles.
const DEBOUNCE: Duration = Duration::from_millis(500);
/// Reconciles running at once.
const CONCURRENCY: u16 = 8;

/// Starts the always-on watch caches (policies and namespace metadata, for
/// the webhooks); returns the stores and the future that feeds them.
pub fn watch_caches(client: &Client) -> (Stores, impl Future<Output = ()> + Send + 'static) {
    let (policies, policies_synced, p) = cache("policies", Api::<LlmPolicy>::all(client.clone()));
    let (namespaces, namespaces_synced, n) = cache(
        "namespaces",
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
    );
    let (pods, _) = reflector::store::<PartialObjectMeta<Pod>>();
    let fut = async move {
        futures_util::future::join(p, n).await;
    };
    let stores = Stores {
        policies,
        pods: Arc::new(std::sync::RwLock::new(pods)),
        namespaces,
        synced: vec![policies_synced, namespaces_synced],
    };
    (stores, fut)
}

/// Runs the controller until the future is dropped (leadership lost).
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let (pods, pw) = reflector::store::<PartialObjectMeta<Pod>>();
    *ctx.stores.pods.write().unwrap() = pods;
    let pod_stream = reflector::reflector(
        pw,
        watcher(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(strip),
    )
    .default_backoff()
    .touched_objects();

    let by_namespace = {
        let store = ctx.stores.policies.clone();
        move |ns: Option<String>| -> Vec<ObjectRef<LlmPolicy>> {
            store
                .state()
                .iter()
                .filter(|p| p.namespace() == ns)
                .map(|p| ObjectRef::from_obj(p.as_ref()))
                .collect()
        }
    };
    let pods_to_policies = by_namespace.clone();
    let refusals_to_policies = by_namespace.clone();
    let siblings = by_namespace;

    // Held here, so the watches stop when this future is dropped.
    let (secret_watches, secret_triggers) = Watches::new(
        client.clone(),
        ctx.stores.policies.clone(),
        ctx.settings.clone(),
    );
    *ctx.secret_watches.lock().unwrap() = Arc::downgrade(&secret_watches);

    let owned =
        watcher::Config::default().labels(&format!("app.kubernetes.io/managed-by={MANAGER}"));
    info!("controller starting");
    let (policies, writer) = reflector::store::<LlmPolicy>();
    let policy_stream = reflector::reflector(
        writer,
        watcher(
            Api::<LlmPolicy>::all(client.clone()),
            watcher::Config::default(),
        )
        .modify(strip),
    )
    .default_backoff()
    .touched_objects();
    Controller::for_stream(policy_stream, policies)
        .owns(Api::<ConfigMap>::all(client.clone()), owned)
        .watches_stream(pod_stream, move |pod: PartialObjectMeta<Pod>| {
            pods_to_policies(pod.namespace())
        })
        // A workload whose pods are refused leaves no pod to watch, only
        // its controller's FailedCreate Event (see reconcile::refusals).
        .watches(
            Api::<Event>::all(client.clone()),
            watcher::Config::default().fields(crate::reconcile::refusals::FAILED_CREATE),
            move |e: Event| refusals_to_policies(e.metadata.namespace),
        )
        // A Secret a policy names was created, changed or deleted.
        .reconcile_on(secret_triggers)
        // Another policy's change can move pods between policies (conflicts).
        .watches(
            Api::<LlmPolicy>::all(client),
            watcher::Config::default(),
            move |p| siblings(p.namespace()),
        )
        .with_config(
            Config::default()
                // A burst of pod events (a rollout, a namespace of new pods)
                // requeues every policy of the namespace per event; within the
                // window they collapse into one reconcile each.
                .debounce(DEBOUNCE)
                // At start every policy is due at once; a bound keeps each
                // reconcile's API calls from queuing behind hundreds of others.
                .concurrency(CONCURRENCY),
        )
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                warn!(error = %e, "controller");
            }
        })
        .await;
}
