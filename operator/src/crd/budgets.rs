//! `spec.budgets`: USD and token budgets, rate limits, prices and the
//! counter store. Same fields as the proxy's `budgets` section, except that
//! the Redis password and TLS files come from Secrets and the memory
//! store's file is the sidecar's own volume.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

pub use tollgate_config::raw::{
    BudgetStoreType, FailMode, LimitAction, MissingHeader, RawPricing as Pricing,
    RawRateLimit as RateLimit, RawReservation as Reservation, ScopeKind, WindowKind,
};

/// Budgets and rate limits.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new(
    "!has(self.rateLimits) || self.rateLimits.all(l, has(l.requestsPerMinute) || has(l.tokensPerMinute))"
).message("a rate limit needs requestsPerMinute, tokensPerMinute or both").field_path(".rateLimits"))]
pub struct Budgets {
    /// IANA time zone calendar windows align to. Default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    /// Where spend and rate counters live. Default: in the sidecar's memory,
    /// saved to its own volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<BudgetStore>,
    /// Prices used to turn tokens into USD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
    /// What an admitted request holds until its usage is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<Reservation>,
    /// USD and token budgets, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub limits: Vec<Limit>,
    /// Requests and tokens per minute, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub rate_limits: Vec<RateLimit>,
}

/// The counter store.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("!has(self.type) || self.type != 'redis' || has(self.redis)")
    .message("redis is required when type is redis"))]
#[x_kube(validation = Rule::new("!has(self.redis) || (has(self.type) && self.type == 'redis')")
    .message("redis is only valid when type is redis"))]
pub struct BudgetStore {
    /// `memory` (default) or `redis`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<BudgetStoreType>,
    /// Memory only: how often counters are saved to the sidecar's volume. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_interval: Option<String>,
    /// Redis only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisStore>,
    /// Redis only: `open` (default) admits requests while Redis is down, `closed` refuses them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
}

/// Redis connection.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("!has(self.tls) || self.url.startsWith('rediss://')")
    .message("tls needs a rediss:// url").field_path(".tls"))]
pub struct RedisStore {
    /// `redis://host:port/db` or `rediss://` for TLS. No password here.
    #[schemars(length(min = 1, max = 2048))]
    pub url: String,
    /// The Secret key holding the password; mounted into the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// ACL user (Redis 6+) the password belongs to; or the user in `url`,
    /// not both. Default: Redis' `default` user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub username: Option<String>,
    /// TLS for `rediss://`: a private CA and, for mutual TLS, a client
    /// certificate, each a Secret key mounted into the sidecar. Without it
    /// `rediss://` trusts the public web PKI roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RedisTls>,
    /// Prefix of every key. Default `tollgate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// Bound on every Redis call. Default `100ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// True: `url` and `nodes` are seed nodes of a Redis Cluster (budget
    /// keys then carry the key prefix as a hash tag, one slot per policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<bool>,
    /// More seed nodes of the cluster, besides `url`; with `sentinel`,
    /// more Sentinels.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub nodes: Vec<String>,
    /// Sentinel-managed Redis: `url` and `nodes` are Sentinels, asked for
    /// the current master of `masterName`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<Sentinel>,
}

/// The TLS material of a Redis connection, from Secrets in the policy's
/// namespace (a cert-manager Secret has `ca.crt`, `tls.crt` and `tls.key`).
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("has(self.certSecretRef) == has(self.keySecretRef)")
    .message("certSecretRef and keySecretRef go together (a client certificate and its key)"))]
pub struct RedisTls {
    /// The Secret key holding the PEM CA certificates that signed the
    /// servers' (instead of the public roots).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// The Secret key holding the PEM client certificate, for servers that
    /// ask for one (`tls-auth-clients yes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_secret_ref: Option<SecretKeyRef>,
    /// The Secret key holding the client certificate's PEM private key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_secret_ref: Option<SecretKeyRef>,
}

/// Which master the Sentinels are asked for.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Sentinel {
    /// The master's name in the Sentinels' configuration.
    #[schemars(length(min = 1, max = 253))]
    pub master_name: String,
}

/// One budget.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("has(self.usd) || has(self.tokens)").message("set usd, tokens or both"))]
#[x_kube(validation = Rule::new("self.scope != 'header' || has(self.header)").message("header is required with scope: header"))]
#[x_kube(validation = Rule::new("self.window != 'rolling' || has(self.rollingWindow)").message("rollingWindow is required with window: rolling"))]
#[x_kube(validation = Rule::new("!has(self.action) || self.action != 'downgrade' || has(self.downgradeTo)").message("downgradeTo is required with action: downgrade"))]
pub struct Limit {
    /// Unique; shown in metrics, logs, refusals and status.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// `policy`, `namespace`, `workload`, `model` or `header`.
    pub scope: ScopeKind,
    /// The header counted per, with `scope: header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// With `scope: header`: `bucket` (default) or `refuse`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing_header: Option<MissingHeader>,
    /// `minute`, `hour`, `day`, `month` or `rolling`.
    pub window: WindowKind,
    /// Length of a `rolling` window, a whole number of minutes (`90m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rolling_window: Option<String>,
    /// USD per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0").message("usd must be greater than 0"))]
    pub usd: Option<f64>,
    /// Tokens (input + output) per window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("tokens must be greater than 0"))]
    pub tokens: Option<u64>,
    /// `reject` (default), `downgrade` or `warn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<LimitAction>,
    /// Route that serves requests over budget, with `action: downgrade`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub downgrade_to: Option<String>,
    /// Shares of the budget, each in (0, 1], whose crossing is counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 10))]
    #[x_kube(validation = Rule::new("self.all(t, t > 0.0 && t <= 1.0)").message("each threshold must be in (0, 1]"))]
    pub thresholds: Option<Vec<f64>>,
}
