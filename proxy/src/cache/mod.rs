//! The exact response cache.
//!
//! A request whose answer is deterministic (by default: `temperature: 0`,
//! one choice) is looked up by a hash of everything that can change the
//! answer ([`key`]). A hit is served without going upstream: whole, or
//! replayed as a stream ([`replay`]). A successful, complete answer is
//! stored — a streamed one once it has been assembled ([`assemble`]); an
//! error or a cut stream never is.
//!
//! Entries live in memory (bounded by bytes and entries, per-entry TTL; see
//! [`Memory`]) and,
//! with `store.type: redis`, also in Redis, so replicas share them. Memory
//! answers first; a Redis hit is copied into memory. Redis errors and
//! timeouts are misses and skipped stores, counted, never failed requests.
//!
//! Routes that opt in also get the [`semantic`] cache: an exact miss may be
//! answered with the stored answer of a prompt that means the same.

use std::sync::Arc;
use std::time::{Duration, Instant};

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
use self::semantic::shared::{self, Owner};
use self::semantic::{Probe, SemanticCache};

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("invalid Redis settings: {0}")]
    RedisConfig(String),
    /// The password or a TLS file (the error names which, never its contents).
    #[error(transparent)]
    Secrets(#[from] tollgate_spend::SecretError),
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

/// A semantic match's answer.
pub enum Fetched {
    Found(Entry),
    /// Not in the exact cache any more: the match can go.
    Gone,
    /// Redis failed: the answer may still be there (a miss for now).
    Unknown,
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

/// The memory store: a sharded S3-FIFO cache (quick_cache) bounded by
/// weight. Each entry weighs its bytes, and at least `maxBytes /
/// maxEntries`, so the byte bound also bounds the number of entries. An
/// entry past its TTL is a miss and is removed when looked up; the rest are
/// swept at each scrape ([`ResponseCache::refresh_gauges`]), so the gauges
/// count live entries. Chosen over moka for its cost per request: no
/// housekeeping queue or frequency sketch on the store path.
type Memory = quick_cache::sync::Cache<Key, Arc<Stored>, Weight>;

/// An entry and the instant it expires.
struct Stored {
    entry: Entry,
    expires: Instant,
}

impl Stored {
    fn new(entry: Entry, ttl: Duration) -> Arc<Stored> {
        Arc::new(Stored {
            entry,
            expires: Instant::now() + ttl,
        })
    }

    fn live(&self, now: Instant) -> bool {
        now < self.expires
    }
}

/// The weight of an entry: its bytes, at least `floor`.
#[derive(Clone)]
struct Weight {
    floor: u64,
}

impl quick_cache::Weighter<Key, Arc<Stored>> for Weight {
    fn weight(&self, _: &Key, v: &Arc<Stored>) -> u64 {
        v.entry.weight().max(self.floor)
    }
}

/// The memory store for `cfg`'s bounds, and the most one entry may weigh.
/// Shards (one lock each) are as many as the cores allow while a shard
/// still holds two of the largest entries and 32 of the smallest: an entry
/// must fit in its shard.
fn memory(cfg: &CacheConfig) -> (Memory, u64) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
    let fit = cfg.max_bytes / cfg.max_entry_bytes.max(1).saturating_mul(2);
    let want = fit.min(cores * 4).min(cfg.max_entries / 32).max(1);
    // A power of two (quick_cache rounds up to one): round down.
    let shards = 1u64 << (63 - want.leading_zeros());
    let shard = cfg.max_bytes.div_ceil(shards);
    // quick_cache admits an entry up to 97 % of its shard.
    let most = shard / 10 * 9;
    let floor = (cfg.max_bytes / cfg.max_entries.max(1)).clamp(1, most.max(1));
    let options = quick_cache::OptionsBuilder::new()
        .shards(shards as usize)
        .weight_capacity(cfg.max_bytes)
        .estimated_items_capacity(cfg.max_entries.min(1 << 20) as usize)
        .build()
        .expect("weight capacity is set");
    let m = Memory::with_options(
        options,
        Weight { floor },
        Default::default(),
        Default::default(),
    );
    (m, most)
}

/// The cache. Share it in an `Arc`; it survives config reloads when its
/// store settings are unchanged.
pub struct ResponseCache {
    cfg: CacheConfig,
    memory: Arc<Memory>,
    /// The most an entry may weigh in `memory` (see [`memory`]).
    most: u64,
    redis: Option<RedisCache>,
    semantic: SemanticCache,
    metrics: Arc<CacheMetrics>,
}

impl ResponseCache {
    /// Builds from config, keeping `previous`'s entries (and Redis
    /// connection) when the bounds and store are unchanged. `owner` names
    /// the streams a shared semantic index uses.
    pub async fn new(
        cfg: &CacheConfig,
        owner: Owner<'_>,
        previous: Option<&Arc<ResponseCache>>,
        metrics: Arc<CacheMetrics>,
    ) -> Result<Arc<ResponseCache>, CacheError> {
        let secrets = match &cfg.store {
            CacheStore::Redis(r) => Some(tollgate_spend::RedisSecrets::read(r).await?),
            CacheStore::Memory => None,
        };
        let same_bounds = previous.is_some_and(|p| {
            p.cfg.max_bytes == cfg.max_bytes
                && p.cfg.max_entries == cfg.max_entries
                && p.cfg.max_entry_bytes == cfg.max_entry_bytes
        });
        let (memory, most) = match previous {
            Some(p) if same_bounds => (p.memory.clone(), p.most),
            _ => {
                let (m, most) = memory(cfg);
                (Arc::new(m), most)
            }
        };
        let redis = match &cfg.store {
            CacheStore::Memory => None,
            CacheStore::Redis(r) => {
                let secrets = secrets.unwrap_or_default();
                match previous.and_then(|p| p.redis.as_ref()) {
                    Some(old) if old.same(r, &secrets) => Some(old.clone()),
                    _ => Some(RedisCache::open(r, &secrets)?),
                }
            }
        };
        let mut semantic = SemanticCache::new(
            &cfg.semantic,
            previous.map(|p| &p.semantic),
            metrics.clone(),
        )
        .await?;
        if let (Some(r), CacheStore::Redis(settings)) = (&redis, &cfg.store) {
            semantic.share(
                shared::streams(cfg, owner, &settings.key_prefix),
                r.link(),
                previous.map(|p| &p.semantic),
            )?;
        }
        Ok(Arc::new(ResponseCache {
            cfg: cfg.clone(),
            memory,
            most,
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

    /// The entry under `key` (memory, then Redis, copied into memory) for
    /// a semantic match: not counted as a lookup of its own.
    pub async fn fetch(&self, key: &Key) -> Fetched {
        if let Some(e) = self.in_memory(key) {
            return Fetched::Found(e);
        }
        let Some(redis) = &self.redis else {
            return Fetched::Gone;
        };
        match redis.get(key).await {
            Ok(Some(entry)) => {
                self.copy(key, &entry);
                Fetched::Found(entry)
            }
            Ok(None) => Fetched::Gone,
            Err(e) => {
                tracing::warn!(error = %e, "semantic cache answer from Redis failed; treated as a miss");
                Fetched::Unknown
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
        if let Some(e) = self.in_memory(key) {
            self.observe("hit", "memory", started);
            return Some(e);
        }
        let Some(redis) = &self.redis else {
            self.observe("miss", "memory", started);
            return None;
        };
        match redis.get(key).await {
            Ok(Some(entry)) => {
                self.observe("hit", "redis", started);
                self.copy(key, &entry);
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

    /// Keeps a copy of an entry found in Redis in memory, for what is left
    /// of its TTL.
    fn copy(&self, key: &Key, entry: &Entry) {
        let age = now_ms().saturating_sub(entry.stored_at_ms);
        let ttl = self.cfg.ttl.saturating_sub(Duration::from_millis(age));
        if !ttl.is_zero() {
            self.memory.insert(*key, Stored::new(entry.clone(), ttl));
        }
    }

    /// The live entry under `key` in memory; an expired one is removed.
    fn in_memory(&self, key: &Key) -> Option<Entry> {
        let s = self.memory.get(key)?;
        let now = Instant::now();
        if s.live(now) {
            return Some(s.entry.clone());
        }
        self.memory.remove_if(key, |v| !v.live(now));
        None
    }

    fn observe(&self, result: &str, store: &str, started: Instant) {
        self.metrics.lookups.series(&[result, store]).inc();
        self.metrics
            .lookup_duration
            .series(&[store])
            .observe(started.elapsed().as_secs_f64());
    }

    /// Counts a lookup that did not happen (`bypass`, `uncacheable`).
    pub fn skipped(&self, result: &str) {
        self.metrics
            .lookups
            .with_label_values(&[result, "none"])
            .inc();
    }

    /// Stores a complete answer for `ttl` (false: too large), and indexes
    /// its prompt's `probe` by meaning; Redis is written in the background
    /// (and a shared route's stream once the answer is there).
    pub fn put(
        self: &Arc<Self>,
        key: Key,
        entry: Entry,
        ttl: Duration,
        probe: Option<Probe>,
    ) -> bool {
        if entry.body.len() as u64 > self.cfg.max_entry_bytes || entry.weight() > self.most {
            self.metrics
                .stores
                .with_label_values(&["too_large", "memory"])
                .inc();
            return false;
        }
        self.memory.insert(key, Stored::new(entry.clone(), ttl));
        self.metrics.stores.series(&["stored", "memory"]).inc();
        let publish = probe.and_then(|p| self.semantic.remember(p, key, ttl));
        if self.redis.is_some() {
            let me = self.clone();
            tokio::spawn(async move {
                let redis = me.redis.as_ref().expect("checked");
                match redis.put(&key, &entry, ttl).await {
                    Ok(()) => {
                        me.metrics
                            .stores
                            .with_label_values(&["stored", "redis"])
                            .inc();
                        // Followers look the answer up in Redis: only now.
                        if let Some(p) = publish {
                            me.semantic.publish(p).await;
                        }
                    }
                    Err(e) => {
                        me.metrics
                            .stores
                            .with_label_values(&[e.label(), "redis"])
                            .inc();
                        tracing::warn!(error = %e, "cache store to Redis failed");
                        if publish.is_some() {
                            // Not shared without its answer: it stays local.
                            me.metrics
                                .shared
                                .published
                                .with_label_values(&[e.label()])
                                .inc();
                        }
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
    /// each store), after removing the expired entries.
    pub fn refresh_gauges(&self) {
        let now = Instant::now();
        self.memory.retain(|_, v| v.live(now));
        self.metrics.entries.set(self.memory.len() as i64);
        self.metrics.bytes.set(self.memory.weight() as i64);
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
