//! The proxy's one metrics registry.
//!
//! OpenTelemetry GenAI names where the conventions define them
//! (`gen_ai_client_operation_duration_seconds`, `gen_ai_client_token_usage`,
//! `gen_ai_client_operation_time_to_first_chunk_seconds`), `tollgate_*` for
//! the rest. Every label is bounded: models and providers come from the
//! config (a model the config does not know is labelled `unknown`), status
//! classes and error reasons are fixed sets. No request content, no ids.

mod memo;

pub use memo::{Memo, Memoized};

use std::sync::{Arc, OnceLock};

use prometheus::{Histogram, IntCounter};

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// OTel GenAI duration buckets (seconds), extended below 10 ms because a
/// sidecar's own answers are faster than that.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12,
    10.24, 20.48, 40.96, 81.92,
];
/// OTel GenAI time-per-output-chunk buckets (seconds).
const CHUNK_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
];
/// OTel GenAI token-usage buckets.
const TOKEN_BUCKETS: &[f64] = &[
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// Every metric the proxy exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Memoized<IntCounterVec>,
    pub operation_duration: Memoized<HistogramVec>,
    pub upstream_duration: Memoized<HistogramVec>,
    pub time_to_first_chunk: HistogramVec,
    pub time_per_output_chunk: HistogramVec,
    pub token_usage: Memoized<HistogramVec>,
    pub tokens: Memoized<IntCounterVec>,
    pub in_flight: IntGauge,
    /// Data-path connections accepted and open, by the worker serving them.
    pub connections: IntCounterVec,
    pub connections_open: IntGaugeVec,
    pub errors: IntCounterVec,
    pub stream_disconnects: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub config_info: IntGaugeVec,
    pub config_last_reload_success: IntGauge,
    pub config_last_reload_timestamp: GaugeVec,
    pub credentials_ready: IntGaugeVec,
    /// Finished spans, by what became of them (tracing on only).
    pub trace_spans: IntCounterVec,
    /// Online verification of semantic hits (`pipeline::cache::verify`).
    pub semantic_verifications: IntCounterVec,
    pub semantic_verification_tokens: IntCounterVec,
    pub semantic_agreement: GaugeVec,
    pub semantic_serving: IntGaugeVec,
    pub attempts: Memoized<IntCounterVec>,
    pub retries: IntCounterVec,
    pub fallbacks: IntCounterVec,
    pub selections: Memoized<IntCounterVec>,
    pub rule_matches: IntCounterVec,
    pub circuit_transitions: IntCounterVec,
    pub target_ejected: IntGaugeVec,
    pub target_latency: HistogramVec,
    pub stream_errors: IntCounterVec,
    pub shadow_requests: IntCounterVec,
    pub shadow_dropped: IntCounterVec,
    pub shadow_duration: HistogramVec,
    pub shadow_tokens: IntCounterVec,
    pub shadow_agreement: HistogramVec,
    pub pii: crate::pii::PiiMetrics,
    /// The series of ended requests, by their labels
    /// (`pipeline::settle::record`).
    pub ended: Memo<Arc<EndedSeries>>,
}

/// The series one ended request records into, resolved together (one
/// memo lookup per request): the request count and duration at once, the
/// token series when first used, so each appears in `/metrics` when it
/// did with `with_label_values`.
pub struct EndedSeries {
    pub requests: IntCounter,
    pub duration: Histogram,
    /// `gen_ai_client_token_usage`: input, output.
    pub usage: [OnceLock<Histogram>; 2],
    /// `tollgate_tokens_total`, by [`EndedSeries::TOKEN_KINDS`].
    pub tokens: [OnceLock<IntCounter>; 5],
}

impl EndedSeries {
    pub const TOKEN_KINDS: [&'static str; 5] = [
        "input",
        "output",
        "cached_input",
        "cache_creation",
        "reasoning",
    ];
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn histogram(
    r: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: &[f64],
) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(buckets.to_vec()),
        labels,
    )
    .expect("valid metric");
    r.register(Box::new(h.clone())).expect("unique metric");
    h
}

fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new();
        // The OpenTelemetry GenAI attributes: the provider's well-known
        // name (`openai`, `anthropic`, `azure.ai.openai`; an
        // OpenAI-compatible provider's config name), the model asked for and
        // the model that answered (the target's); `tollgate_provider` is the
        // config's provider name.
        let gen_ai = [
            "gen_ai_operation_name",
            "gen_ai_provider_name",
            "gen_ai_request_model",
            "gen_ai_response_model",
            "tollgate_provider",
        ];
        let op_labels = [&gen_ai[..], &["error_type"]].concat();
        let token_labels = [&gen_ai[..], &["gen_ai_token_type"]].concat();
        let m = Metrics {
            requests: Memoized::new(counter(
                &r,
                "tollgate_requests_total",
                "Requests answered, by route, model, provider and HTTP status class.",
                &["route", "model", "provider", "status_class"],
            )),
            operation_duration: Memoized::new(histogram(
                &r,
                "gen_ai_client_operation_duration_seconds",
                "Time from receiving a request to sending the last byte of its response.",
                &op_labels,
                DURATION_BUCKETS,
            )),
            upstream_duration: Memoized::new(histogram(
                &r,
                "tollgate_upstream_duration_seconds",
                "Time from sending a request upstream to receiving its response headers.",
                &["provider", "status_class"],
                DURATION_BUCKETS,
            )),
            time_to_first_chunk: histogram(
                &r,
                "gen_ai_client_operation_time_to_first_chunk_seconds",
                "Streams: time from receiving the request to forwarding the first event.",
                &gen_ai,
                DURATION_BUCKETS,
            ),
            time_per_output_chunk: histogram(
                &r,
                "gen_ai_client_operation_time_per_output_chunk_seconds",
                "Streams: for each chunk sent to the app after the first, the time since the previous one.",
                &gen_ai,
                CHUNK_BUCKETS,
            ),
            token_usage: Memoized::new(histogram(
                &r,
                "gen_ai_client_token_usage",
                "Tokens per request as reported by the provider, by token type (input, output).",
                &token_labels,
                TOKEN_BUCKETS,
            )),
            tokens: Memoized::new(counter(
                &r,
                "tollgate_tokens_total",
                "Tokens reported by providers, by type: input, output, cached_input, cache_creation, reasoning.",
                &["provider", "model", "type"],
            )),
            in_flight: gauge(&r, "tollgate_requests_in_flight", "Requests being handled, streams included."),
            connections: counter(
                &r,
                "tollgate_connections_total",
                "Data-path connections accepted, by the worker that serves them (0 to one less than the worker count; all 0 in the workStealing runtime).",
                &["worker"],
            ),
            connections_open: gauge_vec(
                &r,
                "tollgate_connections_open",
                "Data-path connections open, by the worker that serves them.",
                &["worker"],
            ),
            errors: counter(
                &r,
                "tollgate_proxy_errors_total",
                "Requests the proxy answered with its own error, by reason.",
                &["reason"],
            ),
            stream_disconnects: counter(
                &r,
                "tollgate_stream_client_disconnects_total",
                "Streams the app abandoned before the end; the upstream request was cancelled.",
                &["provider"],
            ),
            config_reloads: counter(
                &r,
                "tollgate_config_reloads_total",
                "Config reload attempts by result (success, failure).",
                &["result"],
            ),
            config_info: gauge_vec(&r, "tollgate_config_info", "The active config: value 1, its hash as a label.", &["hash", "name"]),
            config_last_reload_success: gauge(
                &r,
                "tollgate_config_last_reload_successful",
                "1 if the last reload attempt succeeded (or none was needed), 0 if it failed.",
            ),
            config_last_reload_timestamp: {
                let g = GaugeVec::new(
                    Opts::new(
                        "tollgate_config_last_reload_timestamp_seconds",
                        "Unix time of the last reload attempt, by result.",
                    ),
                    &["result"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            credentials_ready: gauge_vec(
                &r,
                "tollgate_provider_credentials_ready",
                "1 if the provider's credentials are readable, 0 if not.",
                &["provider"],
            ),
            trace_spans: counter(
                &r,
                "tollgate_trace_spans_total",
                "Finished trace spans: exported, or dropped (queue_full: the export queue was full; export_failed: the collector refused or did not answer).",
                &["result"],
            ),
            semantic_verifications: counter(
                &r,
                "tollgate_cache_semantic_verifications_total",
                "Semantic hits verified against a fresh answer, by route and result (agree, disagree: below the floor; busy: no free slot; error: the call failed).",
                &["route", "result"],
            ),
            semantic_verification_tokens: counter(
                &r,
                "tollgate_cache_semantic_verification_tokens_total",
                "Tokens the verification calls used, by route and type (input, output); not counted against budgets.",
                &["route", "type"],
            ),
            semantic_agreement: {
                let g = GaugeVec::new(
                    Opts::new(
                        "tollgate_cache_semantic_agreement",
                        "Rolling agreement (0 to 1) of verified semantic hits with fresh answers, by route.",
                    ),
                    &["route"],
                )
                .expect("valid metric");
                r.register(Box::new(g.clone())).expect("unique metric");
                g
            },
            semantic_serving: gauge_vec(
                &r,
                "tollgate_cache_semantic_serving",
                "1 while a route serves semantic hits, 0 while verification has suspended them.",
                &["route"],
            ),
            attempts: Memoized::new(counter(
                &r,
                "tollgate_upstream_attempts_total",
                "Attempts sent to targets, by route, target (provider/model) and outcome.",
                &["route", "target", "outcome"],
            )),
            retries: counter(
                &r,
                "tollgate_retries_total",
                "Retries on the same target, by route, target and reason.",
                &["route", "target", "reason"],
            ),
            fallbacks: counter(
                &r,
                "tollgate_fallbacks_total",
                "Moves to the next target of a route, by route and reason.",
                &["route", "reason"],
            ),
            selections: Memoized::new(counter(
                &r,
                "tollgate_target_selections_total",
                "First-attempt target chosen by the route's strategy.",
                &["route", "target"],
            )),
            rule_matches: counter(
                &r,
                "tollgate_route_rule_matches_total",
                "Requests a routing rule sent to another route.",
                &["route", "rule"],
            ),
            circuit_transitions: counter(
                &r,
                "tollgate_circuit_transitions_total",
                "Circuit breaker state changes per target (to: open, half_open, closed).",
                &["target", "to"],
            ),
            target_ejected: gauge_vec(
                &r,
                "tollgate_target_ejected",
                "1 while a target's circuit breaker keeps it out of selection.",
                &["target"],
            ),
            target_latency: histogram(
                &r,
                "tollgate_target_first_byte_seconds",
                "Per attempt: request sent to the target's first byte (headers; first event for streams).",
                &["target"],
                DURATION_BUCKETS,
            ),
            stream_errors: counter(
                &r,
                "tollgate_stream_errors_total",
                "Streams ended with an error event after they had started, by provider and reason.",
                &["provider", "reason"],
            ),
            shadow_requests: counter(
                &r,
                "tollgate_shadow_requests_total",
                "Shadow (mirrored) requests by route and result (ok, upstream_error, upstream_timeout, ...).",
                &["route", "result"],
            ),
            shadow_dropped: counter(
                &r,
                "tollgate_shadow_dropped_total",
                "Mirrors dropped because the route's shadow queue was full.",
                &["route"],
            ),
            shadow_duration: histogram(
                &r,
                "tollgate_shadow_duration_seconds",
                "Shadow request latency.",
                &["route"],
                DURATION_BUCKETS,
            ),
            shadow_tokens: counter(
                &r,
                "tollgate_shadow_tokens_total",
                "Tokens the shadow target used, by type (input, output); not counted in tollgate_tokens_total.",
                &["route", "type"],
            ),
            shadow_agreement: histogram(
                &r,
                "tollgate_shadow_agreement",
                "Agreement of shadow and primary answers in [0, 1], by measure (exact, token_f1).",
                &["route", "measure"],
                &[0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0],
            ),
            pii: crate::pii::PiiMetrics::register(&r),
            ended: Memo::default(),
            registry: r,
        };
        m.config_last_reload_success.set(1);
        m
    }

    /// Marks `hash` as the active config.
    pub fn set_active_config(&self, hash: &str, name: &str) {
        self.config_info.reset();
        self.config_info.with_label_values(&[hash, name]).set(1);
    }

    /// Prometheus text exposition.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(Vec::new())
    }

    /// The exposition of this registry and `extra` families (another
    /// registry's, e.g. the budget engine's) on one page.
    pub fn encode_with(&self, extra: Vec<prometheus::proto::MetricFamily>) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(extra);
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// `2xx`, `4xx`, ... for a status code.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_the_documented_names() {
        let m = Metrics::new();
        m.requests.with_label_values(&["r", "m", "p", "2xx"]).inc();
        m.set_active_config("abc", "local");
        m.set_active_config("def", "local");
        let text = String::from_utf8(m.encode()).unwrap();
        assert!(text.contains("tollgate_requests_total{model=\"m\",provider=\"p\",route=\"r\",status_class=\"2xx\"} 1"));
        assert!(text.contains("tollgate_config_info{hash=\"def\",name=\"local\"} 1"));
        assert!(!text.contains("hash=\"abc\""), "old hash must be gone");
    }

    #[test]
    fn classes() {
        assert_eq!(status_class(204), "2xx");
        assert_eq!(status_class(429), "4xx");
        assert_eq!(status_class(529), "5xx");
    }
}
