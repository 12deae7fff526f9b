//! Budget and rate-limit metrics, in their own registry (the admin endpoint
//! appends [`BudgetMetrics::gather`]). Labels are limit names, scope kinds,
//! price-table entries, token types and fixed reasons, all bounded by the
//! config: never a header value such as a team or user id.
//!
//! An engine built on reload reuses its predecessor's metrics, so counters
//! never reset while the process lives.

use prometheus::proto::MetricFamily;

use crate::metrics::Memoized;
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, Opts, Registry, TextEncoder,
};

const STORE_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

pub struct BudgetMetrics {
    /// Settled USD per limit and scope kind (each limit a request counted against).
    pub limit_spend_usd: Memoized<CounterVec>,
    /// Reserved minus actual USD per settlement: how far the worst case was
    /// from the bill (negative: the estimate was short, see the overshoot bound).
    pub settle_error_usd: prometheus::Histogram,
    registry: Registry,
    /// `tollgate_budget_admissions_total{outcome}`: admitted, downgraded,
    /// fail_open, or the refusal code.
    pub admissions: Memoized<IntCounterVec>,
    /// `tollgate_budget_refusals_total{limit, scope, reason}`: budget
    /// refusals by limit; reason `exceeded` or `missing_header`.
    pub refusals: IntCounterVec,
    /// `tollgate_budget_actions_total{limit, action}`: downgrade and warn
    /// actions that fired.
    pub actions: IntCounterVec,
    /// `tollgate_budget_spend_usd_total{model}`: settled cost by price entry.
    pub spend_usd: Memoized<CounterVec>,
    /// `tollgate_budget_tokens_total{model, type, estimated}`.
    pub tokens: Memoized<IntCounterVec>,
    /// `tollgate_budget_threshold_crossings_total{limit, threshold}`.
    pub threshold_crossings: IntCounterVec,
    /// `tollgate_budget_usage_ratio{limit}`: spent / limit of the current
    /// window, for limits with a single scope value (policy, namespace,
    /// workload).
    pub usage_ratio: GaugeVec,
    /// `tollgate_budget_reservations_in_flight`.
    pub in_flight: IntGauge,
    /// `tollgate_budget_settlements_total{outcome, estimated}`: settled,
    /// released, dropped (an admission dropped without either).
    pub settlements: Memoized<IntCounterVec>,
    /// `tollgate_budget_unknown_price_total{action}`: refused, default.
    pub unknown_price: IntCounterVec,
    /// `tollgate_budget_store_errors_total{store, op}`.
    pub store_errors: IntCounterVec,
    /// `tollgate_budget_store_duration_seconds{store, op}`.
    pub store_duration: Memoized<HistogramVec>,
    /// `tollgate_budget_pending_settlements`: settlements waiting for Redis.
    pub pending: IntGauge,
    /// `tollgate_budget_lost_settlements_total`: pending settlements dropped
    /// because the queue was full.
    pub lost: IntCounter,
    /// `tollgate_ratelimit_refusals_total{limit, scope, kind}`: kind
    /// `requests` or `tokens`.
    pub rate_refusals: IntCounterVec,
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    r.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid metric");
    r.register(Box::new(g.clone())).expect("unique metric");
    g
}

impl BudgetMetrics {
    pub fn new() -> BudgetMetrics {
        let r = Registry::new();
        let spend_usd = CounterVec::new(
            Opts::new(
                "tollgate_budget_spend_usd_total",
                "Settled cost in USD, by price-table entry (`default` for unknown models).",
            ),
            &["model"],
        )
        .expect("valid metric");
        r.register(Box::new(spend_usd.clone()))
            .expect("unique metric");
        let usage_ratio = GaugeVec::new(
            Opts::new(
                "tollgate_budget_usage_ratio",
                "Spent share of the current window of limits with one scope value (policy, namespace, workload).",
            ),
            &["limit"],
        )
        .expect("valid metric");
        r.register(Box::new(usage_ratio.clone()))
            .expect("unique metric");
        let store_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_budget_store_duration_seconds",
                "Budget store calls by store (memory, redis) and operation.",
            )
            .buckets(STORE_BUCKETS.to_vec()),
            &["store", "op"],
        )
        .expect("valid metric");
        r.register(Box::new(store_duration.clone()))
            .expect("unique metric");
        let limit_spend_usd = CounterVec::new(
            Opts::new(
                "tollgate_budget_limit_spend_usd_total",
                "Settled cost in USD by budget limit and scope kind (policy, namespace, workload, model, header).",
            ),
            &["limit", "scope"],
        )
        .expect("valid metric");
        r.register(Box::new(limit_spend_usd.clone()))
            .expect("unique metric");
        let settle_error_usd = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_budget_settle_error_usd",
                "Per settlement: USD reserved at admission minus USD actually spent (negative when the estimate fell short).",
            )
            .buckets(vec![
                -1.0, -0.1, -0.01, -0.001, 0.0, 0.0001, 0.001, 0.01, 0.1, 1.0, 10.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(settle_error_usd.clone()))
            .expect("unique metric");
        BudgetMetrics {
            limit_spend_usd: Memoized::new(limit_spend_usd),
            settle_error_usd,
            admissions: Memoized::new(counter(
                &r,
                "tollgate_budget_admissions_total",
                "Admission decisions: admitted, downgraded, fail_open, or the refusal code.",
                &["outcome"],
            )),
            refusals: counter(
                &r,
                "tollgate_budget_refusals_total",
                "Budget refusals by limit, scope kind and reason (exceeded, missing_header).",
                &["limit", "scope", "reason"],
            ),
            actions: counter(
                &r,
                "tollgate_budget_actions_total",
                "Exhausted budgets whose action let the request through (downgrade, warn).",
                &["limit", "action"],
            ),
            spend_usd: Memoized::new(spend_usd),
            tokens: Memoized::new(counter(
                &r,
                "tollgate_budget_tokens_total",
                "Settled tokens by price-table entry, type and whether the tokenizer estimated them.",
                &["model", "type", "estimated"],
            )),
            threshold_crossings: counter(
                &r,
                "tollgate_budget_threshold_crossings_total",
                "Settlements that took a scope's spend across a configured share of its limit.",
                &["limit", "threshold"],
            ),
            usage_ratio,
            in_flight: gauge(
                &r,
                "tollgate_budget_reservations_in_flight",
                "Admissions holding a reservation in this process.",
            ),
            settlements: Memoized::new(counter(
                &r,
                "tollgate_budget_settlements_total",
                "Ends of admissions: settled, released, dropped (neither; released automatically).",
                &["outcome", "estimated"],
            )),
            unknown_price: counter(
                &r,
                "tollgate_budget_unknown_price_total",
                "Requests for models without a price, by action (refused, default).",
                &["action"],
            ),
            store_errors: counter(
                &r,
                "tollgate_budget_store_errors_total",
                "Failed budget store calls by store and operation.",
                &["store", "op"],
            ),
            store_duration: Memoized::new(store_duration),
            pending: gauge(
                &r,
                "tollgate_budget_pending_settlements",
                "Settlements waiting for the Redis store to come back.",
            ),
            lost: {
                let c = IntCounter::new(
                    "tollgate_budget_lost_settlements_total",
                    "Settlements dropped because the pending queue was full.",
                )
                .expect("valid metric");
                r.register(Box::new(c.clone())).expect("unique metric");
                c
            },
            rate_refusals: counter(
                &r,
                "tollgate_ratelimit_refusals_total",
                "Rate-limit refusals by limit, scope kind and kind (requests, tokens).",
                &["limit", "scope", "kind"],
            ),
            registry: r,
        }
    }

    pub fn store_error(&self, store: &str, op: &str) {
        self.store_errors.with_label_values(&[store, op]).inc();
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn gather(&self) -> Vec<MetricFamily> {
        self.registry.gather()
    }

    /// Prometheus text exposition of these metrics alone.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4096);
        TextEncoder::new()
            .encode(&self.gather(), &mut out)
            .expect("text encoding cannot fail");
        out
    }
}

impl Default for BudgetMetrics {
    fn default() -> Self {
        BudgetMetrics::new()
    }
}
