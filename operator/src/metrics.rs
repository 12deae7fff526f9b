//! The operator's one Prometheus registry. Labels are bounded: results and
//! webhook names are fixed sets; namespace and policy come from the
//! cluster's own objects.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// Every operator metric.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `result`: `success`, `invalid`, `error`.
    pub reconciles: IntCounterVec,
    pub reconcile_duration: HistogramVec,
    /// `condition`, `status`: policies by condition.
    pub policies: IntGaugeVec,
    /// `webhook` (`mutate`, `validate`), `result` (`allowed`, `injected`,
    /// `injected_dry_run`, `denied`, `error`).
    pub admissions: IntCounterVec,
    pub admission_duration: HistogramVec,
    pub injections: IntCounter,
    /// `namespace`, `policy`: selected pods running without the sidecar.
    pub uninjected_pods: IntGaugeVec,
    /// `namespace`, `policy`, `reason`: injected pods whose sidecar is not
    /// running (`ImagePullFailed`, `SidecarFailing`, `SidecarNotStarting`).
    pub unhealthy_sidecars: IntGaugeVec,
    /// `namespace`, `policy`: selected workloads whose pods Pod Security refuses.
    pub refused_workloads: IntGaugeVec,
    /// `namespace`, `policy`: mounted Secrets or keys that do not exist.
    pub missing_secrets: IntGaugeVec,
    pub leader: IntGauge,
    /// `result` (`success`, `failure`): webhook certificate files re-read.
    pub tls_reloads: IntCounterVec,
    /// `result` (`success`, `error`): reads of budget spend from Redis.
    pub spend_reads: IntCounterVec,
    /// `result` (`exported`, `queue_full`, `export_failed`): the operator's
    /// own trace spans (see [`crate::telemetry`]).
    pub trace_spans: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new(
                "tollgate_operator_reconciles_total",
                "Reconciles by result.",
            ),
            &["result"],
        )
        .unwrap();
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_operator_reconcile_duration_seconds",
                "Time to reconcile one policy, API calls included.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0]),
            &[],
        )
        .unwrap();
        let policies = IntGaugeVec::new(
            Opts::new(
                "tollgate_operator_policies",
                "Policies by condition and status.",
            ),
            &["condition", "status"],
        )
        .unwrap();
        let admissions = IntCounterVec::new(
            Opts::new(
                "tollgate_operator_admission_requests_total",
                "Admission reviews by webhook and result.",
            ),
            &["webhook", "result"],
        )
        .unwrap();
        let admission_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_operator_admission_duration_seconds",
                "Time to answer one admission review.",
            )
            .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1]),
            &["webhook"],
        )
        .unwrap();
        let injections =
            IntCounter::new("tollgate_operator_injections_total", "Sidecars injected.").unwrap();
        let uninjected_pods = IntGaugeVec::new(
            Opts::new(
                "tollgate_operator_uninjected_pods",
                "Pods a policy selects that run without the sidecar (restart them).",
            ),
            &["namespace", "policy"],
        )
        .unwrap();
        let unhealthy_sidecars = IntGaugeVec::new(
            Opts::new(
                "tollgate_operator_unhealthy_sidecars",
                "Injected pods of a policy whose sidecar is not running, by reason.",
            ),
            &["namespace", "policy", "reason"],
        )
        .unwrap();
        let refused_workloads = IntGaugeVec::new(
            Opts::new(
                "tollgate_operator_refused_workloads",
                "Workloads a policy selects whose pods the namespace's Pod Security level refuses.",
            ),
            &["namespace", "policy"],
        )
        .unwrap();
        let missing_secrets = IntGaugeVec::new(
            Opts::new(
                "tollgate_operator_missing_secrets",
                "Secrets or Secret keys a policy's sidecars mount that do not exist (or cannot be read).",
            ),
            &["namespace", "policy"],
        )
        .unwrap();
        let leader = IntGauge::new(
            "tollgate_operator_leader",
            "1 while this replica runs the controller.",
        )
        .unwrap();
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "tollgate_operator_tls_reloads_total",
                "Changed webhook certificate files, by whether they were taken.",
            ),
            &["result"],
        )
        .unwrap();
        let spend_reads = IntCounterVec::new(
            Opts::new(
                "tollgate_operator_spend_reads_total",
                "Reads of budget spend from Redis for policy status, by result.",
            ),
            &["result"],
        )
        .unwrap();
        // Both series from the start, so `error` can be alerted on by rate.
        for r in ["success", "error"] {
            spend_reads.with_label_values(&[r]);
        }
        let trace_spans = IntCounterVec::new(
            Opts::new(
                "tollgate_operator_trace_spans_total",
                "The operator's finished trace spans, exported or dropped (queue full, export failed).",
            ),
            &["result"],
        )
        .unwrap();
        // Every series from the start: zero while traces are off, and a
        // drop rate can be alerted on before the first drop.
        for r in ["exported", "queue_full", "export_failed"] {
            trace_spans.with_label_values(&[r]);
        }
        for c in [
            Box::new(reconciles.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(reconcile_duration.clone()),
            Box::new(policies.clone()),
            Box::new(admissions.clone()),
            Box::new(admission_duration.clone()),
            Box::new(injections.clone()),
            Box::new(uninjected_pods.clone()),
            Box::new(unhealthy_sidecars.clone()),
            Box::new(refused_workloads.clone()),
            Box::new(missing_secrets.clone()),
            Box::new(leader.clone()),
            Box::new(tls_reloads.clone()),
            Box::new(spend_reads.clone()),
            Box::new(trace_spans.clone()),
        ] {
            registry.register(c).unwrap();
        }
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            policies,
            admissions,
            admission_duration,
            injections,
            uninjected_pods,
            unhealthy_sidecars,
            refused_workloads,
            missing_secrets,
            leader,
            tls_reloads,
            spend_reads,
            trace_spans,
        }
    }

    /// Forgets the gauges only the leader keeps current (policies by
    /// condition, uninjected pods, unhealthy sidecars, refused workloads,
    /// missing Secrets): a replica that stops leading would otherwise
    /// export its last values forever, next to the new leader's.
    pub fn clear_leader_gauges(&self) {
        self.policies.reset();
        self.uninjected_pods.reset();
        self.unhealthy_sidecars.reset();
        self.refused_workloads.reset();
        self.missing_secrets.reset();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("metrics encode");
        String::from_utf8(buf).expect("metrics are UTF-8")
    }
}
