//! `budgets:`: USD and token budgets per scope, request and token rate
//! limits, the prices they are computed with, and where the counters live,
//! as written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Token and USD budgets, rate limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawBudgets {
    /// IANA time zone that calendar windows (minute, hour, day, month) align
    /// to, e.g. `Europe/Berlin`. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Where spend and rate counters are kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<RawBudgetStore>,
    /// Prices used to turn tokens into USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<RawPricing>,
    /// How much an admitted request holds until its usage is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<RawReservation>,
    /// USD and token budgets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub limits: Vec<RawLimit>,
    /// Requests and tokens per minute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RawRateLimit>,
}

impl RawBudgets {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Which store keeps the counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BudgetStoreType {
    /// In the proxy's memory, optionally persisted to a file.
    #[default]
    Memory,
    /// In Redis, shared by every proxy that uses the same keys.
    Redis,
}

/// What admission does when the store cannot be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailMode {
    /// Admit the request, count it, log.
    #[default]
    Open,
    /// Refuse the request with 503.
    Closed,
}

/// The counter store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawBudgetStore {
    /// `memory` (default) or `redis`.
    #[serde(default, rename = "type")]
    pub kind: BudgetStoreType,
    /// Memory only: file the counters are saved to every `persistInterval`
    /// and on shutdown, and loaded from at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_path: Option<String>,
    /// Memory only: how often the file is written. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_interval: Option<String>,
    /// Redis only: where and how to connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RawRedisStore>,
    /// Redis only: `open` (default) admits requests while Redis is
    /// unreachable, `closed` refuses them with 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
}

/// Redis connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRedisStore {
    /// `redis://host:port/db` or `rediss://` for TLS. No password here.
    pub url: String,
    /// File holding the password (a mounted Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_file: Option<String>,
    /// ACL user (Redis 6+) the password belongs to; or the user in `url`
    /// (`redis://tollgate@host:6379`), not both. Default: Redis' `default`
    /// user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TLS files for `rediss://` URLs: a private CA and, for mutual TLS, a
    /// client certificate. Without it `rediss://` trusts the public web
    /// PKI roots and sends no client certificate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RawRedisTls>,
    /// Prefix of every key. Default `tollgate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Bound on every Redis call, connecting included. Default `100ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Default false. True: `url` (and `nodes`) are seed nodes of a Redis
    /// Cluster; the client follows its slots (`MOVED`/`ASK`) and failovers.
    /// A budget's keys carry the key prefix as a hash tag (`{tollgate}:...`)
    /// so one admission's keys share a slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<bool>,
    /// More seed nodes of the cluster (`redis://host:port`), besides `url`;
    /// with `sentinel`, more Sentinels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// Sentinel-managed Redis: `url` (and `nodes`) are Sentinels, asked for
    /// the current master of `masterName`; after a failover the next call
    /// asks again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<RawSentinel>,
}

/// The files of a TLS connection to Redis (mounted Secrets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRedisTls {
    /// PEM file of the CA certificates that signed the servers' (instead
    /// of the public roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// PEM file of the client certificate (and its chain), for servers
    /// that ask for one (`tls-auth-clients yes`); with `keyFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// PEM file of the client certificate's private key (PKCS#8, PKCS#1 or
    /// SEC1); with `certFile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
}

/// Which master the Sentinels are asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawSentinel {
    /// The master's name in the Sentinels' configuration (`mymaster`).
    pub master_name: String,
}

/// What an unknown model costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownModelPrice {
    /// Refuse requests that a USD budget applies to (400).
    Refuse,
    /// Price them at `defaultPrice`.
    Default,
}

/// Prices.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPricing {
    /// For models with no price: `refuse` or `default`. Default: `default`
    /// when `defaultPrice` is set, `refuse` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_model: Option<UnknownModelPrice>,
    /// Price of unknown models with `unknownModel: default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_price: Option<RawPrice>,
    /// Prices by model name, over the built-in table of well-known models.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub models: BTreeMap<String, RawPrice>,
}

/// A model's price in USD per million tokens.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPrice {
    pub input: f64,
    pub output: f64,
    /// Prompt tokens read from the provider's cache. Default `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    /// Prompt tokens written to the provider's cache. Default `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

/// Reservation settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawReservation {
    /// Output tokens reserved when a request sets no `max_tokens`. Default 4096.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_output_tokens: Option<u64>,
    /// Redis: a reservation never settled (its proxy died) stops holding
    /// budget after this long. Default `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_timeout: Option<String>,
}

/// What a budget or rate limit is counted per.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ScopeKind {
    /// The whole policy (one counter).
    Policy,
    /// `metadata.namespace`.
    Namespace,
    /// `metadata.workload`.
    Workload,
    /// The model the app requested.
    Model,
    /// A request header's value (`header`).
    Header,
}

/// A request without the scope header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum MissingHeader {
    /// Count it in a shared `(missing)` bucket.
    #[default]
    Bucket,
    /// Refuse it (400).
    Refuse,
}

/// Budget window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WindowKind {
    Minute,
    Hour,
    Day,
    Month,
    /// The last `rollingWindow`.
    Rolling,
}

/// What happens when a budget is exhausted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LimitAction {
    /// Refuse with 429 and `Retry-After`.
    #[default]
    Reject,
    /// Serve the request with route `downgradeTo`.
    Downgrade,
    /// Admit, count and log.
    Warn,
}

/// One budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLimit {
    /// Unique; shown in metrics, logs and refusals.
    pub name: String,
    pub scope: ScopeKind,
    /// The header counted per, with `scope: header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// With `scope: header`: `bucket` (default) or `refuse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_header: Option<MissingHeader>,
    pub window: WindowKind,
    /// Length of a `rolling` window, a whole number of minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_window: Option<String>,
    /// USD per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    /// Tokens (input + output) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// `reject` (default), `downgrade` or `warn`.
    #[serde(default)]
    pub action: LimitAction,
    /// Route that serves requests over budget, with `action: downgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub downgrade_to: Option<String>,
    /// Shares of the budget, in (0, 1], whose crossing is counted in metrics.
    /// Default `[0.5, 0.8, 1.0]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thresholds: Option<Vec<f64>>,
}

/// One rate limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRateLimit {
    /// Unique among rate limits; shown in metrics, logs and refusals.
    pub name: String,
    pub scope: ScopeKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_header: Option<MissingHeader>,
    /// At least one of `requestsPerMinute` and `tokensPerMinute`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    /// Prompt plus maximum output tokens at admission, corrected to the
    /// actual usage when the request ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
}
