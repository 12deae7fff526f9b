//! Validated budgets and rate limits. Money is integer nano-USD so sums
//! never drift; prices are nano-USD per million tokens.

use std::path::PathBuf;
use std::time::Duration;

pub use crate::raw::{FailMode, MissingHeader};
pub use chrono_tz::Tz;

/// One US dollar in nano-USD.
pub const NANO_PER_USD: u64 = 1_000_000_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Budgets {
    /// Calendar windows align to this zone.
    pub time_zone: Tz,
    pub store: BudgetStore,
    pub pricing: Pricing,
    /// Output tokens reserved for a request without `max_tokens`.
    pub default_max_output_tokens: u64,
    /// Redis: how long an unsettled reservation holds budget.
    pub lease_timeout: Duration,
    pub limits: Vec<Limit>,
    pub rate_limits: Vec<RateLimit>,
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            time_zone: Tz::UTC,
            store: BudgetStore::Memory(MemoryStore {
                persist_path: None,
                persist_interval: Duration::from_secs(10),
            }),
            pricing: Pricing::default(),
            default_max_output_tokens: 4096,
            lease_timeout: Duration::from_secs(30 * 60),
            limits: Vec::new(),
            rate_limits: Vec::new(),
        }
    }
}

impl Budgets {
    /// No budgets and no rate limits: nothing to admit.
    pub fn is_empty(&self) -> bool {
        self.limits.is_empty() && self.rate_limits.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum BudgetStore {
    Memory(MemoryStore),
    Redis(RedisStore),
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryStore {
    pub persist_path: Option<PathBuf>,
    pub persist_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisStore {
    /// `redis://` or `rediss://` URL without a password.
    pub url: String,
    pub password_file: Option<PathBuf>,
    pub key_prefix: String,
    /// Bound on every call.
    pub timeout: Duration,
    pub fail_mode: FailMode,
    /// `url` and `nodes` are seeds of a Redis Cluster.
    pub cluster: bool,
    /// More cluster seeds, or more Sentinels.
    pub nodes: Vec<String>,
    /// With Sentinel: the master's name; `url` and `nodes` are Sentinels.
    pub sentinel_master: Option<String>,
    /// The ACL user: `username`, else the user in `url`.
    pub username: Option<String>,
    /// TLS files (the URLs are `rediss://`); boxed, as most stores have none.
    pub tls: Option<Box<RedisTls>>,
}

/// The files of a TLS connection to Redis; read when the store opens.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedisTls {
    /// CA certificates trusted instead of the public roots.
    pub ca_file: Option<PathBuf>,
    /// Client certificate and key, for mutual TLS.
    pub client: Option<ClientCertFiles>,
}

/// A client certificate (chain) and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

impl RedisStore {
    /// The password and TLS files it reads when it connects.
    pub fn secret_files(&self) -> impl Iterator<Item = &std::path::Path> {
        let tls = self.tls.as_deref();
        self.password_file
            .as_deref()
            .into_iter()
            .chain(tls.and_then(|t| t.ca_file.as_deref()))
            .chain(
                tls.and_then(|t| t.client.as_ref())
                    .into_iter()
                    .flat_map(|c| [c.cert_file.as_path(), c.key_file.as_path()]),
            )
    }

    /// The prefix of budget keys: in a cluster, a hash tag, so every key
    /// one admission or settlement touches is in one slot (one Lua script
    /// runs on one node). The cache's keys are independent and keep the
    /// plain prefix, spreading over the cluster.
    pub fn budget_key_prefix(&self) -> String {
        if self.cluster {
            format!("{{{}}}", self.key_prefix)
        } else {
            self.key_prefix.clone()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pricing {
    /// Price of models found nowhere; `None` refuses them where a USD budget
    /// applies.
    pub default_price: Option<Price>,
    /// Configured prices; they override the proxy's built-in table.
    pub models: Vec<(String, Price)>,
}

/// Nano-USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Price {
    pub input: u64,
    pub output: u64,
    /// Prompt tokens read from the provider's cache.
    pub cached_input: u64,
    /// Prompt tokens written to the provider's cache.
    pub cache_write: u64,
}

impl Price {
    /// From USD per million tokens (cache prices default to `input`).
    pub fn from_usd(
        input: f64,
        output: f64,
        cached_input: Option<f64>,
        cache_write: Option<f64>,
    ) -> Price {
        Price {
            input: usd_to_nano(input),
            output: usd_to_nano(output),
            cached_input: usd_to_nano(cached_input.unwrap_or(input)),
            cache_write: usd_to_nano(cache_write.unwrap_or(input)),
        }
    }
}

/// USD to nano-USD, rounded to the nearest nano-dollar. Callers check the
/// value is finite and non-negative.
pub fn usd_to_nano(usd: f64) -> u64 {
    (usd * NANO_PER_USD as f64).round() as u64
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub name: String,
    pub scope: Scope,
    pub window: Window,
    /// Nano-USD per window.
    pub usd: Option<u64>,
    /// Tokens (input + output) per window.
    pub tokens: Option<u64>,
    pub action: Action,
    /// Ascending, each in (0, 1].
    pub thresholds: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Policy,
    Namespace,
    Workload,
    /// The model the app requested.
    Model,
    Header {
        /// Lowercase.
        name: String,
        missing: MissingHeader,
    },
}

impl Scope {
    /// Label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Scope::Policy => "policy",
            Scope::Namespace => "namespace",
            Scope::Workload => "workload",
            Scope::Model => "model",
            Scope::Header { .. } => "header",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Minute,
    Hour,
    Day,
    Month,
    /// The last `Duration` (a whole number of minutes).
    Rolling(Duration),
}

impl Window {
    /// Label for metrics and part of store keys.
    pub fn kind(&self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Hour => "hour",
            Window::Day => "day",
            Window::Month => "month",
            Window::Rolling(_) => "rolling",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Reject,
    /// Serve over-budget requests with this route (a name in `routing.routes`).
    Downgrade {
        route: String,
    },
    Warn,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::Reject => "reject",
            Action::Downgrade { .. } => "downgrade",
            Action::Warn => "warn",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    pub name: String,
    pub scope: Scope,
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
}
