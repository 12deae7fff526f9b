//! Validation of `cache:`.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use super::Validator;
use crate::model::{
    BudgetStore, Cache, CacheStore, Embedder, EmbedderKind, FailMode, Guard, Judge, ProviderType,
    RouteCache, RouteSemantic, Semantic, Verify,
};
use crate::raw::{
    CacheStoreType, EmbedderType, RawCache, RawEmbedder, RawJudge, RawProvider, RawRouteSemantic,
    RawSemantic, RawVerify,
};

/// Texts whose vectors an embedder keeps unless told otherwise.
const DEFAULT_EMBEDDING_CACHE: usize = 1024;

/// Semantic defaults a route inherits from `cache.semantic`.
struct SemanticDefaults {
    threshold: f32,
    guard: Guard,
    verify: Verify,
    /// Whether the store is Redis, which sharing the index needs.
    redis: bool,
    shared: bool,
}

impl Validator {
    pub(super) fn cache(
        &mut self,
        raw: &RawCache,
        routes: &HashSet<&str>,
        providers: &[RawProvider],
    ) -> Cache {
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
        let default_semantic = RawSemantic::default();
        let raw_semantic = raw.semantic.as_ref().unwrap_or(&default_semantic);
        let redis = matches!(store, CacheStore::Redis(_));
        let (mut semantic, defaults) = self.semantic(raw_semantic, max_entries, providers, redis);
        let mut by_route = BTreeMap::new();
        for (i, r) in raw.routes.iter().enumerate() {
            let at = format!("cache.routes[{i}]");
            if !routes.contains(r.name.as_str()) {
                self.err(
                    &format!("{at}.name"),
                    format!("`{}` is not a route in routing.routes", r.name),
                );
            }
            let route_enabled = r.enabled.unwrap_or(true);
            let semantic = match &r.semantic {
                None => None,
                Some(s) => {
                    let judge = s.judge.as_ref().map(|j| {
                        let j = self.judge(&format!("{at}.semantic.judge"), j, providers);
                        semantic.judges.push(j);
                        semantic.judges.len() - 1
                    });
                    self.route_semantic(&format!("{at}.semantic"), s, &semantic, &defaults)
                        .map(|rs| RouteSemantic { judge, ..rs })
                }
            };
            if semantic.is_some() && !route_enabled {
                self.err(
                    &format!("{at}.semantic"),
                    "needs the route's cache on (it serves answers the exact cache stored)".into(),
                );
            }
            let rc = RouteCache {
                enabled: route_enabled,
                ttl: match &r.ttl {
                    None => ttl,
                    Some(t) => self.duration(&format!("{at}.ttl"), Some(t), ttl.as_secs()),
                },
                semantic,
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
            semantic,
        }
    }

    fn semantic(
        &mut self,
        raw: &RawSemantic,
        max_entries: u64,
        providers: &[RawProvider],
        redis: bool,
    ) -> (Semantic, SemanticDefaults) {
        let d = Semantic::default();
        let threshold = self.threshold("cache.semantic.threshold", raw.threshold, 0.95);
        let guard = raw.guard.as_deref().map(Guard::of).unwrap_or(Guard::ALL);
        let semantic_max = raw.max_entries.unwrap_or(max_entries);
        if semantic_max == 0 {
            self.err("cache.semantic.maxEntries", "must be at least 1".into());
        }
        let mut embedders = Vec::with_capacity(raw.embedders.len());
        let mut names = HashSet::new();
        for (i, e) in raw.embedders.iter().enumerate() {
            let at = format!("cache.semantic.embedders[{i}]");
            if e.name.trim().is_empty() {
                self.err(&format!("{at}.name"), "must not be empty".into());
            } else if !names.insert(e.name.as_str()) {
                self.err(
                    &format!("{at}.name"),
                    format!("`{}` is declared twice", e.name),
                );
            }
            embedders.push(Embedder {
                name: e.name.clone(),
                kind: self.embedder(&at, e, providers),
                cache_entries: e
                    .cache_entries
                    .map_or(DEFAULT_EMBEDDING_CACHE, |n| n as usize),
            });
        }
        let semantic = Semantic {
            judges: Vec::new(),
            embedders,
            max_entries: semantic_max,
            exact_scan_below: raw
                .exact_scan_below
                .map(|n| n.min(usize::MAX as u64) as usize)
                .unwrap_or(d.exact_scan_below),
        };
        let verify = self.verify(
            "cache.semantic.verify",
            raw.verify.as_ref(),
            Verify::default(),
        );
        (
            semantic,
            SemanticDefaults {
                threshold,
                guard,
                verify,
                redis,
                shared: self.shared("cache.semantic.shared", raw.shared, true, redis),
            },
        )
    }

    fn embedder(&mut self, at: &str, e: &RawEmbedder, providers: &[RawProvider]) -> EmbedderKind {
        let only = |v: &mut Validator, field: &str, set: bool, kind: &str| {
            if set {
                v.err(
                    &format!("{at}.{field}"),
                    format!("only applies to `type: {kind}`"),
                );
            }
        };
        match e.kind {
            EmbedderType::Provider => {
                only(self, "path", e.path.is_some(), "local");
                only(self, "maxTokens", e.max_tokens.is_some(), "local");
                let provider = match &e.provider {
                    None => {
                        self.err(
                            &format!("{at}.provider"),
                            "is required with `type: provider`".into(),
                        );
                        0
                    }
                    Some(name) => match providers.iter().position(|p| &p.name == name) {
                        None => {
                            self.err(
                                &format!("{at}.provider"),
                                format!("no provider is named `{name}`"),
                            );
                            0
                        }
                        Some(i) => {
                            if providers[i].kind == ProviderType::Anthropic {
                                self.err(
                                    &format!("{at}.provider"),
                                    format!("`{name}` is an Anthropic provider, which has no embeddings API"),
                                );
                            }
                            i
                        }
                    },
                };
                let model = match &e.model {
                    Some(m) if !m.trim().is_empty() => m.clone(),
                    _ => {
                        self.err(
                            &format!("{at}.model"),
                            "is required with `type: provider`".into(),
                        );
                        String::new()
                    }
                };
                if e.dimensions == Some(0) {
                    self.err(&format!("{at}.dimensions"), "must be at least 1".into());
                }
                EmbedderKind::Provider {
                    provider,
                    model,
                    dimensions: e.dimensions,
                    timeout: self.duration(&format!("{at}.timeout"), e.timeout.as_deref(), 2),
                }
            }
            EmbedderType::Local => {
                only(self, "provider", e.provider.is_some(), "provider");
                only(self, "model", e.model.is_some(), "provider");
                only(self, "dimensions", e.dimensions.is_some(), "provider");
                only(self, "timeout", e.timeout.is_some(), "provider");
                let path = match &e.path {
                    Some(p) if !p.trim().is_empty() => p.into(),
                    _ => {
                        self.err(
                            &format!("{at}.path"),
                            "is required with `type: local`".into(),
                        );
                        Default::default()
                    }
                };
                let max_tokens = e.max_tokens.unwrap_or(256);
                if !(2..=8192).contains(&max_tokens) {
                    self.err(
                        &format!("{at}.maxTokens"),
                        "must be between 2 and 8192".into(),
                    );
                }
                EmbedderKind::Local {
                    path,
                    max_tokens: max_tokens as usize,
                }
            }
        }
    }

    fn route_semantic(
        &mut self,
        at: &str,
        raw: &RawRouteSemantic,
        semantic: &Semantic,
        defaults: &SemanticDefaults,
    ) -> Option<RouteSemantic> {
        let threshold = self.threshold(
            &format!("{at}.threshold"),
            raw.threshold,
            defaults.threshold,
        );
        let guard = raw
            .guard
            .as_deref()
            .map(Guard::of)
            .unwrap_or(defaults.guard);
        let embedder = match &raw.embedder {
            Some(name) => match semantic.embedders.iter().position(|e| &e.name == name) {
                Some(i) => i,
                None => {
                    self.err(
                        &format!("{at}.embedder"),
                        format!("no embedder is named `{name}` in cache.semantic.embedders"),
                    );
                    0
                }
            },
            None => match semantic.embedders.len() {
                1 => 0,
                0 => {
                    self.err(
                        &format!("{at}.embedder"),
                        "no embedder is declared in cache.semantic.embedders".into(),
                    );
                    0
                }
                _ => {
                    self.err(
                        &format!("{at}.embedder"),
                        "is required when several embedders are declared".into(),
                    );
                    0
                }
            },
        };
        let verify = self.verify(
            &format!("{at}.verify"),
            raw.verify.as_ref(),
            defaults.verify,
        );
        let shared = self.shared(
            &format!("{at}.shared"),
            raw.shared,
            defaults.shared,
            defaults.redis,
        );
        raw.enabled.unwrap_or(true).then_some(RouteSemantic {
            embedder,
            threshold,
            guard,
            verify,
            judge: None,
            shared,
        })
    }

    /// Whether an index is shared: as asked (else `default`), and only
    /// through a Redis store; asking for it without one is an error.
    fn shared(&mut self, path: &str, value: Option<bool>, default: bool, redis: bool) -> bool {
        if value == Some(true) && !redis {
            self.err(
                path,
                "needs `cache.store.type: redis` (the index is shared through Redis)".into(),
            );
        }
        value.unwrap_or(default) && redis
    }

    fn judge(&mut self, at: &str, j: &RawJudge, providers: &[RawProvider]) -> Judge {
        let provider = match providers.iter().position(|p| p.name == j.provider) {
            Some(i) => {
                if providers[i].kind == ProviderType::Anthropic {
                    self.err(
                        &format!("{at}.provider"),
                        format!(
                            "`{}` is an Anthropic provider; the judge speaks the OpenAI chat API",
                            j.provider
                        ),
                    );
                }
                i
            }
            None => {
                self.err(
                    &format!("{at}.provider"),
                    format!("no provider is named `{}`", j.provider),
                );
                0
            }
        };
        if j.model.trim().is_empty() {
            self.err(&format!("{at}.model"), "must not be empty".into());
        }
        Judge {
            provider,
            model: j.model.clone(),
            timeout: self.duration(&format!("{at}.timeout"), j.timeout.as_deref(), 2),
        }
    }

    fn verify(&mut self, at: &str, raw: Option<&RawVerify>, d: Verify) -> Verify {
        let Some(raw) = raw else { return d };
        let v = Verify {
            share: raw.share.unwrap_or(d.share),
            floor: raw.floor.unwrap_or(d.floor),
            window: raw.window.map_or(d.window, |n| n as usize),
            min_samples: raw.min_samples.map_or(d.min_samples, |n| n as usize),
            queue_size: raw.queue_size.map_or(d.queue_size, |n| n as usize),
        };
        for (field, x) in [("share", v.share), ("floor", v.floor)] {
            if !(0.0..=1.0).contains(&x) {
                self.err(
                    &format!("{at}.{field}"),
                    format!("must be between 0 and 1, not {x}"),
                );
            }
        }
        if v.window == 0 {
            self.err(&format!("{at}.window"), "must be at least 1".into());
        }
        if v.min_samples > v.window {
            self.err(
                &format!("{at}.minSamples"),
                format!("must not exceed the window ({})", v.window),
            );
        }
        if v.queue_size == 0 {
            self.err(&format!("{at}.queueSize"), "must be at least 1".into());
        }
        v
    }

    fn threshold(&mut self, path: &str, value: Option<f64>, default: f32) -> f32 {
        match value {
            None => default,
            Some(t) if t > 0.0 && t <= 1.0 => t as f32,
            Some(t) => {
                self.err(path, format!("{t} is not a cosine similarity in (0, 1]"));
                default
            }
        }
    }
}
