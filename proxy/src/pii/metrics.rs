//! PII and prompt-guard metrics, registered in the proxy's one registry.
//! Labels are entity type names (built-in or from the policy), actions,
//! directions, guard rules and sources: all bounded by the config.

use std::sync::OnceLock;

use crate::metrics::Memoized;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};

/// Scan-time buckets (seconds): a prompt scans in microseconds.
const SCAN_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.0025, 0.005,
    0.01, 0.025, 0.1,
];

pub struct PiiMetrics {
    /// `tollgate_pii_detections_total{entity_type, action, direction}`.
    pub detections: Memoized<IntCounterVec>,
    /// `tollgate_pii_blocked_requests_total{filter}`: `pii` or `prompt_guard`.
    pub blocked: IntCounterVec,
    /// `tollgate_prompt_guard_hits_total{rule, source, action}`.
    pub guard_hits: IntCounterVec,
    /// `tollgate_pii_scan_duration_seconds{direction}`.
    pub scan_duration: HistogramVec,
    /// `tollgate_pii_stream_holdback_events`: per stream, the most events
    /// any text waited in the hold-back window.
    pub holdback_events: Histogram,
    /// `tollgate_pii_pseudonyms_restored_total`.
    pub restored: IntCounter,
    /// `scan_duration`'s two series, looked up at their first use (so
    /// they appear as they did, with the first scan).
    scan_request: OnceLock<Histogram>,
    scan_response: OnceLock<Histogram>,
}

impl PiiMetrics {
    pub fn register(r: &Registry) -> PiiMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: &[f64]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(buckets.to_vec()),
                labels,
            )
            .expect("valid metric");
            r.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        PiiMetrics {
            detections: Memoized::new(counter(
                "tollgate_pii_detections_total",
                "PII and secrets detected, by entity type, action taken and direction (request, response).",
                &["entity_type", "action", "direction"],
            )),
            blocked: counter(
                "tollgate_pii_blocked_requests_total",
                "Requests refused by the PII policy (filter=pii) or the prompt guard (filter=prompt_guard).",
                &["filter"],
            ),
            guard_hits: counter(
                "tollgate_prompt_guard_hits_total",
                "Prompt-guard detections by rule, source (user, tool) and action (flag, strip, block).",
                &["rule", "source", "action"],
            ),
            scan_duration: histogram(
                "tollgate_pii_scan_duration_seconds",
                "Time spent scanning one request or one whole response.",
                &["direction"],
                SCAN_BUCKETS,
            ),
            holdback_events: {
                let h = Histogram::with_opts(
                    HistogramOpts::new(
                        "tollgate_pii_stream_holdback_events",
                        "Per filtered stream: the most events any text was held back before it went out.",
                    )
                    .buckets(vec![0.0, 1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0]),
                )
                .expect("valid metric");
                r.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            restored: {
                let c = IntCounter::new(
                    "tollgate_pii_pseudonyms_restored_total",
                    "Pseudonym placeholders put back to their original values in answers.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            scan_request: OnceLock::new(),
            scan_response: OnceLock::new(),
        }
    }

    /// `scan_duration` of one direction, `request` or `response`.
    pub(crate) fn scan_time(&self, response: bool) -> &Histogram {
        let (cell, label) = if response {
            (&self.scan_response, "response")
        } else {
            (&self.scan_request, "request")
        };
        cell.get_or_init(|| self.scan_duration.with_label_values(&[label]))
    }
}
