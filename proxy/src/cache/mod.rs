//! The exact response cache.
//!
//! A request whose answer is deterministic (by default: `temperature: 0`,
//! one choice) is looked up by a hash of everything that can change the
//! answer ([`key`]). A hit is served without going upstream: whole, or
//! replayed as a stream ([`replay`]). A successful, complete answer is
//! stored — a streamed one once it has been assembled ([`assemble`]); an
//! error or a cut stream never is.
//!
//! Entries live in memory (bounded by bytes and entries, per-entry TTL) and,
//! with `store.type: redis`, also in Redis, so replicas share them. Memory
//! answers first; a Redis hit is copied into memory. Redis errors and
//! timeouts are misses and skipped stores, counted, never failed requests.
//!
//! Routes that opt in also get the [`semantic`] cache: an exact miss may be
//! answered with the stored answer of a prompt that means the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache as Moka;
use moka::Expiry;
use tollgate_config::{Cache as CacheConfig, CacheStore};

pub(crate) mod assemble;
pub(crate) mod entry;
pub mod key;
mod metrics;
mod redis;
pub(crate) mod replay;
pub mod semantic;
#[cfg(test)]
mod tests;

pub(crate) use entry::Entry;
pub use key::{Key, Scope};
pub use metrics::CacheMetrics;

use self::redis::RedisCache;
use self::semantic::SemanticCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid Redis settings: {0}")]
    RedisConfig(String),
    #[error("cannot read the Redis password file {path}: {source}")]
    PasswordFile {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(String),
    #[error("embedder `{name}`: {reason}")]
    LocalModel { name: String, reason: String },
}

impl CacheError {
    fn label(&self) -> &'static str {
        match self {
            CacheError::Timeout(_) => "timeout",
            _ => "error",
        }
    }
}

/// What the app asked of the cache in its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Directive {
    /// Serve a hit, store a miss.
    Normal,
    /// `x-tollgate-cache: refresh` or `Cache-Control: no-cache`: skip the
    /// lookup, store the fresh answer.
    Refresh,
    /// `x-tollgate-cache: bypass` or `Cache-Control: no-store`: neither.
    Bypass,
}

impl Directive {
    pub(crate) fn from_headers(h: &http::HeaderMap) -> Directive {
        if let Some(v) = h.get("x-tollgate-cache").and_then(|v| v.to_str().ok()) {
            match v.trim().to_ascii_lowercase().as_str() {
                "bypass" => return Directive::Bypass,
                "refresh" => return Directive::Refresh,
                _ => {}
            }
        }
        let mut d = Directive::Normal;
        for v in h.get_all(http::header::CACHE_CONTROL) {
            for part in v.to_str().unwrap_or("").split(',') {
                match part.trim().to_ascii_lowercase().as_str() {
                    "no-store" => return Directive::Bypass,
                    "no-cache" => d = Directive::Refresh,
                    _ => {}
                }
            }
        }
        d
    }
}

/// Per-entry TTL.
struct Ttl;

impl Expiry<Key, Arc<Stored>> for Ttl {
    fn expire_after_create(&self, _: &Key, v: &Arc<Stored>, _: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

struct Stored {
    entry: Entry,
    ttl: Duration,
}

/// The cache. Share it in an `Arc`; it survives config reloads when its
/// store settings are unchanged.
pub struct ResponseCache {
    cfg: CacheConfig,
    memory: Moka<Key, Arc<Stored>>,
    redis: Option<RedisCache>,
    semantic: SemanticCache,
    metrics: Arc<CacheMetrics>,
}

impl ResponseCache {
    /// Builds from config, keeping `previous`'s entries (and Redis
    /// connection) when the bounds and store are unchanged.
    pub async fn new(
        cfg: &CacheConfig,
        previous: Option<&Arc<ResponseCache>>,
        metrics: Arc<CacheMetrics>,
    ) -> Result<Arc<ResponseCache>, CacheError> {
        let password = match &cfg.store {
            CacheStore::Redis(r) => match &r.password_file {
                None => None,
                Some(path) => Some(
                    tokio::fs::read_to_string(path)
                        .await
                        .map_err(|source| CacheError::PasswordFile {
                            path: path.clone(),
                            source,
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                ),
            },
            CacheStore::Memory => None,
        };
        let same_bounds = previous.is_some_and(|p| {
            p.cfg.max_bytes == cfg.max_bytes && p.cfg.max_entries == cfg.max_entries
        });
        let memory = match previous {
            Some(p) if same_bounds => p.memory.clone(),
            _ => {
                // Each entry weighs at least max_bytes / max_entries, so the
                // byte bound also bounds the number of entries.
                let floor = (cfg.max_bytes / cfg.max_entries.max(1)).max(1);
                Moka::builder()
                    .max_capacity(cfg.max_bytes)
                    .weigher(move |_: &Key, v: &Arc<Stored>| {
                        v.entry.weight().max(floor).min(u32::MAX as u64) as u32
                    })
                    .expire_after(Ttl)
                    .build()
            }
        };
        let redis = match &cfg.store {
            CacheStore::Memory => None,
            CacheStore::Redis(r) => match previous.and_then(|p| p.redis.as_ref()) {
                Some(old) if old.same(r, password.as_deref()) => Some(old.clone()),
                _ => Some(RedisCache::open(r, password)?),
            },
        };
        let semantic = SemanticCache::new(
            &cfg.semantic,
            previous.map(|p| &p.semantic),
            metrics.clone(),
        )
        .await?;
        Ok(Arc::new(ResponseCache {
            cfg: cfg.clone(),
            memory,
            redis,
            semantic,
            metrics,
        }))
    }

    pub fn config(&self) -> &CacheConfig {
        &self.cfg
    }

    pub fn metrics(&self) -> &Arc<CacheMetrics> {
        &self.metrics
    }

    pub fn semantic(&self) -> &SemanticCache {
        &self.semantic
    }

    /// The entry under `key` (memory, then Redis) for a semantic match:
    /// not counted as a lookup of its own.
    pub async fn fetch(&self, key: &Key) -> Option<Entry> {
        if let Some(s) = self.memory.get(key) {
            return Some(s.entry.clone());
        }
        match self.redis.as_ref()?.get(key).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "semantic cache answer from Redis failed; treated as a miss");
                None
            }
        }
    }

    /// Counts a semantic lookup by its result.
    pub fn semantic_lookup(&self, result: &str, started: Instant) {
        self.observe(result, "semantic", started);
    }

    /// Looks `key` up: memory, then Redis.
    pub async fn get(&self, key: &Key) -> Option<Entry> {
        let started = Instant::now();
        if let Some(s) = self.memory.get(key) {
            self.observe("hit", "memory", started);
            return Some(s.entry.clone());
        }
        let Some(redis) = &self.redis else {
            self.observe("miss", "memory", started);
            return None;
        };
        match redis.get(key).await {
            Ok(Some(entry)) => {
                self.observe("hit", "redis", started);
                let age = now_ms().saturating_sub(entry.stored_at_ms);
                let ttl = self.cfg.ttl.saturating_sub(Duration::from_millis(age));
                if !ttl.is_zero() {
                    self.memory.insert(
                        *key,
                        Arc::new(Stored {
                            entry: entry.clone(),
                            ttl,
                        }),
                    );
                }
                Some(entry)
            }
            Ok(None) => {
                self.observe("miss", "redis", started);
                None
            }
            Err(e) => {
                self.observe(e.label(), "redis", started);
                tracing::warn!(error = %e, "cache lookup in Redis failed; treated as a miss");
                None
            }
        }
    }

    fn observe(&self, result: &str, store: &str, started: Instant) {
        self.metrics
            .lookups
            .with_label_values(&[result, store])
            .inc();
        self.metrics
            .lookup_duration
            .with_label_values(&[store])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts a lookup that did not happen (`bypass`, `uncacheable`).
    pub fn skipped(&self, result: &str) {
        self.metrics
            .lookups
            .with_label_values(&[result, "none"])
            .inc();
    }

    /// Stores a complete answer for `ttl` (false: too large); Redis is
    /// written in the background.
    pub fn put(self: &Arc<Self>, key: Key, entry: Entry, ttl: Duration) -> bool {
        if entry.body.len() as u64 > self.cfg.max_entry_bytes {
            self.metrics
                .stores
                .with_label_values(&["too_large", "memory"])
                .inc();
            return false;
        }
        self.memory.insert(
            key,
            Arc::new(Stored {
                entry: entry.clone(),
                ttl,
            }),
        );
        self.metrics
            .stores
            .with_label_values(&["stored", "memory"])
            .inc();
        if self.redis.is_some() {
            let me = self.clone();
            tokio::spawn(async move {
                let redis = me.redis.as_ref().expect("checked");
                match redis.put(&key, &entry, ttl).await {
                    Ok(()) => me
                        .metrics
                        .stores
                        .with_label_values(&["stored", "redis"])
                        .inc(),
                    Err(e) => {
                        me.metrics
                            .stores
                            .with_label_values(&[e.label(), "redis"])
                            .inc();
                        tracing::warn!(error = %e, "cache store to Redis failed");
                    }
                }
            });
        }
        true
    }

    /// Counts an answer that could not be stored (a cut stream, an error).
    pub fn not_stored(&self, reason: &str) {
        self.metrics
            .stores
            .with_label_values(&[reason, "none"])
            .inc();
    }

    /// Brings the entry and byte gauges up to date (at each scrape, not on
    /// each store: moka's pending evictions are run here first).
    pub fn refresh_gauges(&self) {
        self.memory.run_pending_tasks();
        self.metrics.entries.set(self.memory.entry_count() as i64);
        self.metrics.bytes.set(self.memory.weighted_size() as i64);
        self.metrics
            .semantic_entries
            .set(self.semantic.index().len() as i64);
    }
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
