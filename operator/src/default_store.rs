//! The shared store the chart can point every policy at
//! (`--default-store`, the chart's `sharedStore` values): one Redis (a URL,
//! Cluster seeds or Sentinels) with the Secret keys of its password and TLS
//! files, applied to each policy that has budgets or a cache but no store
//! of its own. A policy's own `store`, `type: memory` included, wins.
//!
//! Each policy gets its own key prefix under the configured one
//! (`<keyPrefix>:<namespace>:<name>`), so policies never share counters
//! (a `header` or `model` budget's keys do not name the policy) nor cache
//! entries. The Secret is looked up in each policy's own namespace: a pod
//! mounts Secrets of its namespace only.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::crd::{
    BudgetStore, BudgetStoreType, CacheRedis, CacheStore, CacheStoreType, FailMode, LlmPolicySpec,
    RedisStore,
};
use crate::render::render;

/// The default store, as `--default-store` takes it (JSON).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultStore {
    /// The connection, as `spec.budgets.store.redis` writes it; its
    /// `keyPrefix` (default `tollgate`) is the base of every policy's.
    pub redis: RedisStore,
    /// Budgets while Redis is unreachable: `open` (default) or `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_mode: Option<FailMode>,
    /// Applied to budgets without a store. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budgets: Option<bool>,
    /// Applied to caches without a store. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<bool>,
}

/// The most a key prefix may hold (the proxy's limit).
const MAX_PREFIX: usize = 64;

impl DefaultStore {
    /// Parses and checks `--default-store`: the store must render into a
    /// config the proxy accepts.
    pub fn parse(json: &str) -> Result<DefaultStore, String> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let d: DefaultStore = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))?;
        let base = d.redis.key_prefix.as_deref().unwrap_or("tollgate");
        if base.len() > MAX_PREFIX - 17 {
            return Err(format!(
                "redis.keyPrefix: at most {} characters (each policy's prefix adds `:<namespace>:<name>` or a 16-digit hash)",
                MAX_PREFIX - 17
            ));
        }
        let mut probe: LlmPolicySpec = serde_json::from_value(serde_json::json!({
            "podSelector": {},
            "providers": [{"name": "p", "type": "openai", "passthrough": true, "models": ["m"]}],
            "budgets": {"limits": [{"name": "l", "scope": "policy", "window": "day", "usd": 1.0}]},
            "cache": {},
        }))
        .expect("probe spec");
        d.apply("default", "probe", &mut probe);
        render("default", "probe", &probe).map_err(|e| {
            e.to_string()
                .replace("spec.budgets.store.", "defaultStore.")
        })?;
        Ok(d)
    }

    /// Gives `spec` (of policy `namespace/name`) this store where it has
    /// budgets or a cache but no store of its own.
    pub fn apply(&self, namespace: &str, name: &str, spec: &mut LlmPolicySpec) {
        let mut redis = self.redis.clone();
        redis.key_prefix = Some(self.prefix_for(namespace, name));
        if self.budgets != Some(false) {
            if let Some(b) = spec.budgets.as_mut() {
                let counts = !b.limits.is_empty() || !b.rate_limits.is_empty();
                if b.store.is_none() && counts {
                    b.store = Some(BudgetStore {
                        kind: Some(BudgetStoreType::Redis),
                        persist_interval: None,
                        redis: Some(redis.clone()),
                        fail_mode: self.fail_mode,
                    });
                }
            }
        }
        if self.cache != Some(false) {
            if let Some(c) = spec.cache.as_mut() {
                if c.store.is_none() {
                    c.store = Some(CacheStore {
                        kind: Some(CacheStoreType::Redis),
                        redis: Some(cache_redis(redis)),
                    });
                }
            }
        }
    }

    /// `<base>:<namespace>:<name>`, or `<base>:<hash>` when that is too long.
    fn prefix_for(&self, namespace: &str, name: &str) -> String {
        let base = self.redis.key_prefix.as_deref().unwrap_or("tollgate");
        let readable = format!("{base}:{namespace}:{name}");
        if readable.len() <= MAX_PREFIX {
            return readable;
        }
        let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
        format!("{base}:{}", hex::encode(&digest[..8]))
    }
}

/// The same connection, in the cache's type.
fn cache_redis(r: RedisStore) -> CacheRedis {
    CacheRedis {
        url: r.url,
        password_secret_ref: r.password_secret_ref,
        password_file: None,
        username: r.username,
        tls: r.tls,
        key_prefix: r.key_prefix,
        timeout: r.timeout,
        cluster: r.cluster,
        nodes: r.nodes,
        sentinel: r.sentinel,
    }
}

#[cfg(test)]
mod tests;
