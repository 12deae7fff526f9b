//! The cache's metrics, on the proxy's /metrics page.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use super::semantic::shared::SharedMetrics;
use crate::metrics::Memoized;

/// Cache metrics, on the proxy's /metrics page.
pub struct CacheMetrics {
    registry: Registry,
    /// result: hit, miss, bypass, uncacheable, error; store: memory, redis.
    pub lookups: Memoized<IntCounterVec>,
    pub stores: Memoized<IntCounterVec>,
    pub saved_tokens: IntCounterVec,
    /// USD hits did not spend, at the budgets' price table.
    pub saved_usd: prometheus::Counter,
    pub lookup_duration: Memoized<HistogramVec>,
    pub entries: IntGauge,
    pub bytes: IntGauge,
    /// embedder: the config name.
    pub embedding_duration: HistogramVec,
    /// embedder, reason: timeout, upstream, status, malformed, model.
    pub embedding_errors: IntCounterVec,
    pub embeddings_reused: IntCounterVec,
    /// check: numbers, negations, opposites, entities, order.
    pub guard_refusals: IntCounterVec,
    /// Similarity of served semantic hits.
    pub semantic_similarity: prometheus::Histogram,
    /// result: same, different, error (the second stage's verdicts).
    pub judgments: IntCounterVec,
    pub judge_duration: prometheus::Histogram,
    pub semantic_entries: IntGauge,
    /// The semantic index shared through Redis.
    pub shared: SharedMetrics,
}

impl CacheMetrics {
    pub fn new() -> CacheMetrics {
        let r = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let lookups = counter(
            "tollgate_cache_lookups_total",
            "Cache lookups by result (hit, miss, bypass, uncacheable, error) and the store that answered.",
            &["result", "store"],
        );
        let stores = counter(
            "tollgate_cache_stores_total",
            "Answers offered to the cache by result (stored, too_large, incomplete, error) and store.",
            &["result", "store"],
        );
        let saved_tokens = counter(
            "tollgate_cache_saved_tokens_total",
            "Tokens not spent upstream because the cache answered, by type (input, output).",
            &["type"],
        );
        let saved_usd = prometheus::Counter::new(
            "tollgate_cache_saved_usd_total",
            "USD not spent upstream because the cache answered, at the price of the model that answered (hits on models without a price add nothing).",
        )
        .expect("valid metric");
        r.register(Box::new(saved_usd.clone()))
            .expect("unique metric");
        let lookup_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_cache_lookup_duration_seconds",
                "Cache lookup latency by store.",
            )
            .buckets(vec![
                0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
            ]),
            &["store"],
        )
        .expect("valid metric");
        r.register(Box::new(lookup_duration.clone()))
            .expect("unique metric");
        let entries = IntGauge::new("tollgate_cache_entries", "Entries in the memory store.")
            .expect("valid metric");
        r.register(Box::new(entries.clone()))
            .expect("unique metric");
        let bytes = IntGauge::new("tollgate_cache_bytes", "Bytes held by the memory store.")
            .expect("valid metric");
        r.register(Box::new(bytes.clone())).expect("unique metric");
        let embedding_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_cache_embedding_duration_seconds",
                "Time to embed a prompt for the semantic cache, by embedder.",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
            &["embedder"],
        )
        .expect("valid metric");
        r.register(Box::new(embedding_duration.clone()))
            .expect("unique metric");
        let embedding_errors = counter(
            "tollgate_cache_embedding_errors_total",
            "Prompts the semantic cache could not embed (the lookup was a miss), by embedder and reason.",
            &["embedder", "reason"],
        );
        let embeddings_reused = counter(
            "tollgate_cache_embeddings_reused_total",
            "Texts the semantic cache did not embed because their vector was kept from an earlier request, by embedder.",
            &["embedder"],
        );
        let guard_refusals = counter(
            "tollgate_cache_semantic_guard_refusals_total",
            "Similar stored prompts the near-miss guard refused to serve, by the check that failed.",
            &["check"],
        );
        let semantic_similarity = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_cache_semantic_similarity",
                "Cosine similarity of the prompts of served semantic hits.",
            )
            .buckets(vec![
                0.8, 0.85, 0.9, 0.925, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 1.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(semantic_similarity.clone()))
            .expect("unique metric");
        let judgments = counter(
            "tollgate_cache_semantic_judgments_total",
            "Semantic candidates a route's judge model was asked about, by verdict (same: served; different or error: a miss).",
            &["result"],
        );
        let judge_duration = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_cache_semantic_judge_duration_seconds",
                "Time for a judge model to answer about one semantic candidate.",
            )
            .buckets(vec![0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0]),
        )
        .expect("valid metric");
        r.register(Box::new(judge_duration.clone()))
            .expect("unique metric");
        let semantic_entries = IntGauge::new(
            "tollgate_cache_semantic_entries",
            "Prompts in the semantic index.",
        )
        .expect("valid metric");
        r.register(Box::new(semantic_entries.clone()))
            .expect("unique metric");
        let shared = SharedMetrics::new(&r);
        CacheMetrics {
            registry: r,
            lookups: Memoized::new(lookups),
            stores: Memoized::new(stores),
            saved_tokens,
            saved_usd,
            lookup_duration: Memoized::new(lookup_duration),
            entries,
            bytes,
            embedding_duration,
            embedding_errors,
            embeddings_reused,
            guard_refusals,
            semantic_similarity,
            judgments,
            judge_duration,
            semantic_entries,
            shared,
        }
    }

    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        self.registry.gather()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding never fails");
        out
    }
}

impl Default for CacheMetrics {
    fn default() -> Self {
        Self::new()
    }
}
