//! The runtime built from one validated config, and the shared handle that
//! swaps it atomically on reload.
//!
//! A request loads the current [`Runtime`] once, at its start, and keeps that
//! `Arc` to the end: requests in flight finish on the config they started
//! with while new ones see the new config.

use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tollgate_config::{Config, CredentialSource};

use crate::budget::{BudgetEngine, BudgetError, Identity};
use crate::credentials::Credential;
use crate::metrics::Metrics;
use crate::pipeline::budget::SettleTasks;
use crate::routing::targets::Targets;
use crate::routing::Table;
use crate::upstream::{Client, ClientError};

/// Why a runtime could not be built from a valid config.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("budgets: {0}")]
    Budget(#[from] BudgetError),
    #[error("cache: {0}")]
    Cache(#[from] crate::cache::CacheError),
}

/// Everything derived from one config.
pub struct Runtime {
    pub config: Arc<Config>,
    /// Same order as `config.providers`; `None` for passthrough-only providers.
    pub credentials: Vec<Option<Arc<Credential>>>,
    pub routes: Table,
    pub client: Client,
    /// Clients for routes whose connect timeout differs from the default.
    pub route_clients: Vec<(std::time::Duration, Client)>,
    /// Budget admission and settlement; its store (and the spend in it)
    /// carries over from the previous runtime.
    pub budget: Arc<BudgetEngine>,
    /// The response cache; its entries carry over while its bounds and
    /// store are unchanged.
    pub cache: Arc<crate::cache::ResponseCache>,
    /// The PII policy and prompt guard, compiled; `None` when off.
    pub pii: Option<Arc<crate::pii::Engine>>,
    pub loaded_at: std::time::SystemTime,
}

impl Runtime {
    /// Builds a runtime, reusing the previous one's client (and its warm
    /// connection pool), credential readers and budget store where their
    /// settings are unchanged.
    pub async fn build(config: Config, previous: Option<&Runtime>) -> Result<Runtime, BuildError> {
        let client = match previous {
            Some(prev) if prev.client.settings() == &config.upstream => prev.client.clone(),
            _ => Client::new(&config.upstream)?,
        };
        let mut route_clients: Vec<(std::time::Duration, Client)> = Vec::new();
        let connects = std::iter::once(&config.routing.defaults)
            .chain(config.routing.routes.iter().map(|r| &r.policy))
            .map(|p| p.timeouts.connect)
            .filter(|&c| c != config.upstream.connect_timeout);
        for connect in connects {
            if route_clients.iter().any(|(c, _)| *c == connect) {
                continue;
            }
            let reuse = previous.and_then(|prev| {
                prev.route_clients
                    .iter()
                    .find(|(c, cl)| {
                        *c == connect
                            && cl.settings().extra_ca_file == config.upstream.extra_ca_file
                    })
                    .map(|(_, cl)| cl.clone())
            });
            let client = match reuse {
                Some(c) => c,
                None => {
                    let mut settings = config.upstream.clone();
                    settings.connect_timeout = connect;
                    Client::new(&settings)?
                }
            };
            route_clients.push((connect, client));
        }
        let credentials = config
            .providers
            .iter()
            .map(|p| {
                let source = p.credentials.as_ref()?;
                let reused = previous.and_then(|prev| {
                    prev.credentials
                        .iter()
                        .flatten()
                        .find(|c| c.source() == source)
                        .cloned()
                });
                Some(match reused {
                    Some(c) => {
                        c.refresh();
                        c
                    }
                    None => Arc::new(Credential::load(source.clone())),
                })
            })
            .collect();
        let budget = BudgetEngine::new(
            &config.budgets,
            &Identity::of(&config),
            previous.map(|p| p.budget.as_ref()),
        )
        .await?;
        let owner = crate::cache::semantic::shared::Owner {
            policy: config.name.as_deref().unwrap_or(""),
            providers: &config.providers,
        };
        let cache = crate::cache::ResponseCache::new(
            &config.cache,
            owner,
            previous.map(|p| &p.cache),
            previous
                .map(|p| p.cache.metrics().clone())
                .unwrap_or_default(),
        )
        .await?;
        Ok(Runtime {
            routes: Table::new(&config),
            pii: crate::pii::Engine::new(&config.pii),
            config: Arc::new(config),
            credentials,
            client,
            route_clients,
            budget: Arc::new(budget),
            cache,
            loaded_at: std::time::SystemTime::now(),
        })
    }

    /// The client whose connect timeout is `connect`.
    pub fn client_for(&self, connect: std::time::Duration) -> &Client {
        self.route_clients
            .iter()
            .find(|(c, _)| *c == connect)
            .map(|(_, c)| c)
            .unwrap_or(&self.client)
    }

    /// Why the proxy is not ready, if it is not: providers whose
    /// credentials cannot be read.
    pub fn unready_reasons(&self) -> Vec<String> {
        self.config
            .providers
            .iter()
            .zip(&self.credentials)
            .filter_map(|(p, c)| {
                let c = c.as_ref()?;
                match c.get().as_ref() {
                    Ok(_) => None,
                    Err(reason) => Some(format!("provider `{}`: {reason}", p.name)),
                }
            })
            .collect()
    }

    /// Credential files to watch for changes.
    pub fn credential_files(&self) -> Vec<std::path::PathBuf> {
        self.credentials
            .iter()
            .flatten()
            .filter_map(|c| match c.source() {
                CredentialSource::File(p) => Some(p.clone()),
                CredentialSource::Env(_) => None,
            })
            .collect()
    }

    /// The password and TLS files the Redis stores (budgets, cache) read
    /// when they connect.
    pub fn redis_secret_files(&self) -> Vec<std::path::PathBuf> {
        use tollgate_config::{BudgetStore, CacheStore};
        let budgets = match &self.config.budgets.store {
            BudgetStore::Redis(r) => Some(r),
            BudgetStore::Memory(_) => None,
        };
        let cache = match &self.config.cache.store {
            CacheStore::Redis(r) => Some(r),
            CacheStore::Memory => None,
        };
        budgets
            .into_iter()
            .chain(cache)
            .flat_map(|r| r.secret_files())
            .map(std::path::Path::to_path_buf)
            .collect()
    }

    /// Re-reads every credential; returns true if any changed.
    pub fn refresh_credentials(&self) -> bool {
        let mut changed = false;
        for c in self.credentials.iter().flatten() {
            changed |= c.refresh();
        }
        changed
    }
}

/// State shared by every connection.
pub struct Shared {
    pub runtime: ArcSwap<Runtime>,
    pub metrics: Arc<Metrics>,
    /// Requests currently admitted (streams until their last byte).
    pub in_flight: Arc<AtomicUsize>,
    /// Set once SIGTERM has been received.
    pub draining: AtomicBool,
    /// Per-target health and balancing state; survives config reloads.
    pub targets: Targets,
    /// Shadow traffic slots.
    pub mirrors: crate::shadow::Mirrors,
    /// Budget settlements still running; drain waits for them.
    pub settlements: SettleTasks,
    /// Picks the successful requests the access log writes.
    pub(crate) access_sampler: Arc<crate::pipeline::settle::access::Sampler>,
    /// Request traces; `None` while tracing is off.
    pub(crate) tracer: Option<crate::trace::Tracer>,
    /// Per-route verification of semantic hits; survives reloads.
    pub(crate) verifiers: crate::pipeline::cache::Verifiers,
}

impl Shared {
    pub fn new(runtime: Runtime, metrics: Arc<Metrics>) -> Arc<Shared> {
        Shared::with_tracer(runtime, metrics, None)
    }

    /// [`Shared::new`] with request traces going to `tracer`.
    pub(crate) fn with_tracer(
        runtime: Runtime,
        metrics: Arc<Metrics>,
        tracer: Option<crate::trace::Tracer>,
    ) -> Arc<Shared> {
        metrics.set_active_config(
            &runtime.config.hash,
            runtime.config.name.as_deref().unwrap_or(""),
        );
        let shared = Arc::new(Shared {
            runtime: ArcSwap::from_pointee(runtime),
            metrics,
            in_flight: Arc::new(AtomicUsize::new(0)),
            draining: AtomicBool::new(false),
            targets: Targets::default(),
            mirrors: Default::default(),
            settlements: SettleTasks::default(),
            access_sampler: Arc::default(),
            tracer,
            verifiers: Default::default(),
        });
        shared.publish_credential_state();
        shared
    }

    /// Updates the credentials-ready gauge from the active runtime.
    pub fn publish_credential_state(&self) {
        let rt = self.runtime.load();
        self.metrics.credentials_ready.reset();
        for (p, c) in rt.config.providers.iter().zip(&rt.credentials) {
            if let Some(c) = c {
                let ok = c.get().is_ok();
                self.metrics
                    .credentials_ready
                    .with_label_values(&[&p.name])
                    .set(ok as i64);
            }
        }
    }
}
