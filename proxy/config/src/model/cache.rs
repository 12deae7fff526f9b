//! The validated response cache settings.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use super::RedisStore;
pub use crate::raw::GuardCheck;

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
    pub semantic: Semantic,
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
    /// Set when the route opted into the semantic cache.
    pub semantic: Option<RouteSemantic>,
}

/// The semantic cache's embedders and index bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Semantic {
    pub embedders: Vec<Embedder>,
    pub max_entries: u64,
    pub exact_scan_below: usize,
    /// The routes' judges (`RouteSemantic::judge` indexes this).
    pub judges: Vec<Judge>,
}

/// A chat model asked whether two prompts ask for the same thing.
#[derive(Debug, Clone, PartialEq)]
pub struct Judge {
    /// Index into the config's providers.
    pub provider: usize,
    pub model: String,
    pub timeout: Duration,
}

impl Default for Semantic {
    fn default() -> Self {
        Semantic {
            judges: Vec::new(),
            embedders: Vec::new(),
            max_entries: 10_000,
            exact_scan_below: 2048,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Embedder {
    pub name: String,
    pub kind: EmbedderKind,
    /// Recently embedded texts whose vectors are kept (0: none).
    pub cache_entries: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EmbedderKind {
    /// `POST {baseUrl}/embeddings` of `providers[provider]`.
    Provider {
        provider: usize,
        model: String,
        dimensions: Option<u32>,
        timeout: Duration,
    },
    /// A model folder read by the proxy.
    Local { path: PathBuf, max_tokens: usize },
}

impl Embedder {
    /// Names everything that shapes the vectors, so entries embedded by
    /// another model (or the same name pointing elsewhere) never mix.
    pub fn identity(&self, providers: &[super::Provider]) -> String {
        match &self.kind {
            EmbedderKind::Provider {
                provider,
                model,
                dimensions,
                ..
            } => {
                let p = &providers[*provider];
                format!(
                    "provider;{};{}://{}{};{model};{}",
                    p.name,
                    p.base_url.scheme,
                    p.base_url.authority,
                    p.base_url.path,
                    dimensions.map(|d| d.to_string()).unwrap_or_default()
                )
            }
            EmbedderKind::Local { path, max_tokens } => {
                format!("local;{};{max_tokens}", path.display())
            }
        }
    }
}

/// One route's semantic settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RouteSemantic {
    /// Index into `Semantic::embedders`.
    pub embedder: usize,
    pub threshold: f32,
    pub guard: Guard,
    pub verify: Verify,
    /// Index into `Semantic::judges`: the second stage, if any.
    pub judge: Option<usize>,
    /// The route's index entries are shared through the Redis store (set
    /// only with one).
    pub shared: bool,
}

/// Online verification of a route's semantic hits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Verify {
    /// Share of semantic hits verified (0: off).
    pub share: f64,
    /// Rolling agreement below which semantic hits stop being served.
    pub floor: f64,
    pub window: usize,
    pub min_samples: usize,
    pub queue_size: usize,
}

impl Default for Verify {
    fn default() -> Self {
        Verify {
            share: 0.05,
            floor: 0.5,
            window: 20,
            min_samples: 5,
            queue_size: 2,
        }
    }
}

/// Which guard checks run (all by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    pub numbers: bool,
    pub negations: bool,
    pub opposites: bool,
    pub entities: bool,
    pub order: bool,
}

impl Guard {
    pub const ALL: Guard = Guard {
        numbers: true,
        negations: true,
        opposites: true,
        entities: true,
        order: true,
    };
    pub const NONE: Guard = Guard {
        numbers: false,
        negations: false,
        opposites: false,
        entities: false,
        order: false,
    };

    pub fn of(checks: &[GuardCheck]) -> Guard {
        let mut g = Guard::NONE;
        for c in checks {
            match c {
                GuardCheck::Numbers => g.numbers = true,
                GuardCheck::Negations => g.negations = true,
                GuardCheck::Opposites => g.opposites = true,
                GuardCheck::Entities => g.entities = true,
                GuardCheck::Order => g.order = true,
            }
        }
        g
    }
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
            semantic: Semantic::default(),
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

    /// The semantic settings for a request on `route`, when it opted in
    /// (direct models never do).
    pub fn semantic_for(&self, route: Option<&str>) -> Option<&RouteSemantic> {
        let r = self.routes.get(route?)?;
        r.enabled.then_some(())?;
        r.semantic.as_ref()
    }

    /// True when any request may be cached.
    pub fn is_active(&self) -> bool {
        self.enabled || self.routes.values().any(|r| r.enabled)
    }
}
