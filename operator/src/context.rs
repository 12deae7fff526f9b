//! State shared by the controller and the webhooks: the API client, the
//! watched stores, metrics and settings.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::Store;
use kube::Client;

use crate::cache::Synced;
use crate::crd::{LlmPolicy, Sidecar};
use crate::default_store::DefaultStore;
use crate::metrics::Metrics;
use crate::secrets::Watches;
use crate::webhook::mutate::trace_env::SidecarTracing;

/// Operator settings (flags).
#[derive(Debug, Clone)]
pub struct Settings {
    /// Proxy image injected unless a policy names its own.
    pub proxy_image: String,
    /// The name events are reported under.
    pub reporter: String,
    /// This replica's identity (pod name), for events and the Lease.
    pub instance: String,
    /// `spec.sidecar` fields a policy leaves unset (`--sidecar-defaults`).
    pub sidecar_defaults: Sidecar,
    /// Where Secret reads are bound (`--secrets-role`); `None`: the
    /// operator's own RBAC must allow them (tests run as cluster admin).
    pub secret_access: Option<crate::secrets::Access>,
    /// Namespaces the webhooks are not called for (`--excluded-namespace`):
    /// their pods are never injected nor counted as uninjected.
    pub excluded_namespaces: Vec<String>,
    /// Where injected sidecars send traces (`--sidecar-otlp-endpoint`);
    /// `None`: they get no OpenTelemetry variables.
    pub sidecar_tracing: Option<SidecarTracing>,
    /// The Redis of policies without a store of their own
    /// (`--default-store`).
    pub default_store: Option<DefaultStore>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            proxy_image: format!(
                "ghcr.io/tollgate-dev/tollgate-proxy:{}",
                env!("CARGO_PKG_VERSION")
            ),
            reporter: "tollgate-operator".into(),
            instance: "tollgate-operator".into(),
            sidecar_defaults: Sidecar::default(),
            excluded_namespaces: Vec::new(),
            secret_access: None,
            sidecar_tracing: None,
            default_store: None,
        }
    }
}

impl Settings {
    /// `policy` as the operator renders and injects it: its `spec.sidecar`
    /// completed with the sidecar defaults, and the default store given to
    /// budgets and a cache without a store (set the policy's namespace
    /// first: each policy gets its own key prefix).
    pub fn effective(&self, policy: &LlmPolicy) -> LlmPolicy {
        let mut p = policy.clone();
        let own = p.spec.sidecar.take().unwrap_or_default();
        let merged = own.or(&self.sidecar_defaults);
        p.spec.sidecar = (merged != Sidecar::default()).then_some(merged);
        if let Some(d) = &self.default_store {
            let ns = p.metadata.namespace.clone().unwrap_or_default();
            let name = p.metadata.name.clone().unwrap_or_default();
            d.apply(&ns, &name, &mut p.spec);
        }
        p
    }
}

/// Watched objects every replica keeps (the webhooks need them whether or
/// not this replica leads).
#[derive(Clone)]
pub struct Stores {
    pub policies: Store<LlmPolicy>,
    /// Pod metadata; replaced each time this replica starts leading.
    pub pods: Arc<std::sync::RwLock<Store<PartialObjectMeta<Pod>>>>,
    pub namespaces: Store<PartialObjectMeta<Namespace>>,
    /// Whether `policies` and `namespaces` are current (see [`crate::cache`]).
    pub synced: Vec<Synced>,
}

impl Stores {
    /// The webhooks' caches are current: decide from them.
    pub fn synced(&self) -> bool {
        self.synced.iter().all(Synced::get)
    }
}

/// Everything a reconcile or an admission review needs.
pub struct Context {
    pub client: Client,
    pub stores: Stores,
    pub metrics: Metrics,
    pub settings: Settings,
    /// Consecutive failures per policy (`namespace/name`), for backoff.
    pub failures: Mutex<HashMap<String, u32>>,
    /// The leader's Secret watches (held by the running controller: they
    /// stop with it).
    pub secret_watches: Mutex<Weak<Watches>>,
}

impl Context {
    pub fn new(client: Client, stores: Stores, metrics: Metrics, settings: Settings) -> Arc<Self> {
        Arc::new(Context {
            client,
            stores,
            metrics,
            settings,
            failures: Mutex::default(),
            secret_watches: Mutex::new(Weak::new()),
        })
    }

    pub fn reporter(&self) -> Reporter {
        Reporter {
            controller: self.settings.reporter.clone(),
            instance: Some(self.settings.instance.clone()),
        }
    }
}
