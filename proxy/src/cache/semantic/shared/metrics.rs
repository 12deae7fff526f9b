//! The shared index's metrics, in the cache's registry. Every label value
//! is set up front, so each series is on /metrics from the start (at 0
//! where nothing is shared).

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

/// How a read entry ended: put in the index, written by this index (so
/// already in it), its answer already expired, or not an entry this
/// proxy can use (another version or embedder, damaged).
const READ: &[&str] = &["indexed", "own", "expired", "invalid"];

pub struct SharedMetrics {
    /// result: published, error, timeout.
    pub published: IntCounterVec,
    /// Entries read while following; result as [`READ`].
    pub followed: IntCounterVec,
    /// Entries read by warm-ups; result as [`READ`].
    pub warmup_entries: IntCounterVec,
    /// Insert time (the writer's clock) to arrival in this index.
    pub lag: Histogram,
    pub warmup_duration: Histogram,
    /// reason: timeout, error.
    pub errors: IntCounterVec,
    /// from: cursor, trimmed, reset.
    pub resumes: IntCounterVec,
}

impl SharedMetrics {
    pub(crate) fn new(r: &Registry) -> SharedMetrics {
        let counter = |name: &str, help: &str, label: &str, values: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), &[label]).expect("valid metric");
            for v in values {
                c.with_label_values(&[v]);
            }
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, buckets: Vec<f64>| {
            let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
                .expect("valid metric");
            r.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        SharedMetrics {
            published: counter(
                "tollgate_cache_semantic_shared_published_total",
                "Semantic index inserts appended to their route's Redis stream, or not (error, timeout: the insert stayed local).",
                "result",
                &["published", "error", "timeout"],
            ),
            followed: counter(
                "tollgate_cache_semantic_shared_followed_total",
                "Entries of other proxies read from the Redis streams while following, by what became of them.",
                "result",
                READ,
            ),
            warmup_entries: counter(
                "tollgate_cache_semantic_shared_warmup_entries_total",
                "Entries read from the Redis streams by warm-ups, by what became of them.",
                "result",
                READ,
            ),
            lag: histogram(
                "tollgate_cache_semantic_shared_lag_seconds",
                "Time from an entry's insert on another proxy to its arrival in this proxy's index (followed entries; clocks of both proxies).",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                    60.0,
                ],
            ),
            warmup_duration: histogram(
                "tollgate_cache_semantic_shared_warmup_duration_seconds",
                "Time to read a route's Redis stream into the index when a proxy starts (or its index is made afresh).",
                vec![0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0],
            ),
            errors: counter(
                "tollgate_cache_semantic_shared_follower_errors_total",
                "Failed Redis calls of the semantic index followers (each is retried with backoff).",
                "reason",
                &["timeout", "error"],
            ),
            resumes: counter(
                "tollgate_cache_semantic_shared_follower_resumes_total",
                "Followers that started reading a stream again (after an error or a reload), by where from: after the last entry read, after entries trimmed before they were read, or from the start of a stream that was gone or made anew.",
                "from",
                &["cursor", "trimmed", "reset"],
            ),
        }
    }
}
