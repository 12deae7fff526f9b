//! `cache:`: the exact response cache, as written.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Quantity, RawRedisStore};

/// Response cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCache {
    /// Cache every route and directly requested model unless a `routes`
    /// entry says otherwise. Default `true` once the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long an entry is served. Default `1h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Memory store: most entries kept. Default 10000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entries: Option<u64>,
    /// Memory store: most bytes kept (`64Mi`). Default `64Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bytes: Option<Quantity>,
    /// Larger responses are not stored. Default `1Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_entry_bytes: Option<Quantity>,
    /// Only cache requests whose answer is deterministic: `temperature: 0`
    /// and a single choice. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deterministic_only: Option<bool>,
    /// Request header whose value partitions the cache (e.g.
    /// `x-tollgate-tenant`): tenants never share entries. A request without
    /// it shares the no-tenant partition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_header: Option<String>,
    /// Where entries are kept. Default in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<RawCacheStore>,
    /// Per-route overrides.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRouteCache>,
}

impl RawCache {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Which store keeps cache entries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum CacheStoreType {
    /// In the proxy's memory, bounded by entries and bytes.
    #[default]
    Memory,
    /// In Redis, shared by every proxy using the same key prefix; the
    /// memory store still answers first.
    Redis,
}

/// The entry store.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCacheStore {
    #[serde(default, rename = "type")]
    pub kind: CacheStoreType,
    /// Redis only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RawRedisStore>,
}

/// Cache settings of one route.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRouteCache {
    /// A route name from `routing.routes`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}
