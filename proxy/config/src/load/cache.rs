//! Validation of `cache:`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::Validator;
use crate::model::{BudgetStore, Cache, CacheStore, FailMode, RouteCache};
use crate::raw::{CacheStoreType, RawCache};

impl Validator {
    pub(super) fn cache(&mut self, raw: &RawCache, routes: &HashSet<&str>) -> Cache {
        let d = Cache::default();
        if raw.is_empty() {
            return d;
        }
        let ttl = self.duration("cache.ttl", raw.ttl.as_deref(), d.ttl.as_secs());
        let max_entries = raw.max_entries.unwrap_or(d.max_entries);
        if max_entries == 0 {
            self.err("cache.maxEntries", "must be at least 1".into());
        }
        let max_bytes = self.bytes("cache.maxBytes", raw.max_bytes.as_ref(), d.max_bytes);
        let max_entry_bytes = self.bytes(
            "cache.maxEntryBytes",
            raw.max_entry_bytes.as_ref(),
            d.max_entry_bytes,
        );
        if max_entry_bytes == 0 || max_entry_bytes > max_bytes {
            self.err(
                "cache.maxEntryBytes",
                format!("must be between 1 and cache.maxBytes ({max_bytes})"),
            );
        }
        let tenant_header = raw.tenant_header.as_ref().map(|h| {
            if h.is_empty() || !super::is_token(h) {
                self.err(
                    "cache.tenantHeader",
                    format!("`{h}` is not a valid header name"),
                );
            }
            h.to_ascii_lowercase()
        });
        let store = match &raw.store {
            None => CacheStore::Memory,
            Some(s) => match (s.kind, &s.redis) {
                (CacheStoreType::Memory, None) => CacheStore::Memory,
                (CacheStoreType::Memory, Some(_)) => {
                    self.err("cache.store.redis", "only applies to `type: redis`".into());
                    CacheStore::Memory
                }
                (CacheStoreType::Redis, None) => {
                    self.err("cache.store.redis", "is required with `type: redis`".into());
                    CacheStore::Memory
                }
                (CacheStoreType::Redis, Some(r)) => {
                    match self.redis("cache.store.redis", r, FailMode::Open) {
                        BudgetStore::Redis(r) => CacheStore::Redis(r),
                        BudgetStore::Memory(_) => CacheStore::Memory,
                    }
                }
            },
        };
        let enabled = raw.enabled.unwrap_or(true);
        let mut by_route = BTreeMap::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let at = format!("cache.routes[{i}]");
            if !routes.contains(r.name.as_str()) {
                self.err(
                    &format!("{at}.name"),
                    format!("`{}` is not a route in routing.routes", r.name),
                );
            }
            let rc = RouteCache {
                enabled: r.enabled.unwrap_or(true),
                ttl: match &r.ttl {
                    None => ttl,
                    Some(t) => self.duration(&format!("{at}.ttl"), Some(t), ttl.as_secs()),
                },
            };
            if by_route.insert(r.name.clone(), rc).is_some() {
                self.err(
                    &format!("{at}.name"),
                    format!("`{}` is listed twice", r.name),
                );
            }
        }
        if ttl > Duration::from_secs(30 * 24 * 3600) {
            self.err("cache.ttl", "must be at most 30 days".into());
        }
        Cache {
            enabled,
            ttl,
            max_entries,
            max_bytes,
            max_entry_bytes,
            deterministic_only: raw.deterministic_only.unwrap_or(true),
            tenant_header,
            store,
            routes: by_route,
        }
    }
}
