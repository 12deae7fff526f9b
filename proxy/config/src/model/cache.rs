//! The validated response cache settings.

use std::collections::BTreeMap;
use std::time::Duration;

use super::RedisStore;

#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    /// Default for routes without an override and for direct models.
    pub enabled: bool,
    pub ttl: Duration,
    pub max_entries: u64,
    pub max_bytes: u64,
    pub max_entry_bytes: u64,
    pub deterministic_only: bool,
    /// Lower-case header name.
    pub tenant_header: Option<String>,
    pub store: CacheStore,
    pub routes: BTreeMap<String, RouteCache>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CacheStore {
    Memory,
    /// Memory in front of Redis. `fail_mode` is unused: a Redis failure is
    /// always a miss.
    Redis(RedisStore),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteCache {
    pub enabled: bool,
    pub ttl: Duration,
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            enabled: false,
            ttl: Duration::from_secs(3600),
            max_entries: 10_000,
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            deterministic_only: true,
            tenant_header: None,
            store: CacheStore::Memory,
            routes: BTreeMap::new(),
        }
    }
}

impl Cache {
    /// The TTL for a request on `route` (None: a direct model), or None
    /// when caching is off for it.
    pub fn ttl_for(&self, route: Option<&str>) -> Option<Duration> {
        match route.and_then(|r| self.routes.get(r)) {
            Some(r) => r.enabled.then_some(r.ttl),
            None => self.enabled.then_some(self.ttl),
        }
    }

    /// True when any request may be cached.
    pub fn is_active(&self) -> bool {
        self.enabled || self.routes.values().any(|r| r.enabled)
    }
}
