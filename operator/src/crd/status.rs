//! `LlmPolicy` status: conditions, the rendered config's hash, pod counts
//! and (Redis store) the current spend per budget.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types.
pub mod condition {
    /// The spec rendered into a valid proxy config.
    pub const ACCEPTED: &str = "Accepted";
    /// The ConfigMap holds the current config and the policy is not conflicted.
    pub const READY: &str = "Ready";
    /// Another, older policy selects some of the same pods and wins them.
    pub const CONFLICTED: &str = "Conflicted";
    /// Every injected pod's sidecar is running (False: an image that cannot
    /// be pulled, a crashing sidecar, or one that has not started).
    pub const SIDECARS_READY: &str = "SidecarsReady";
    /// No workload the policy selects has its pods refused by the
    /// namespace's Pod Security level (False: `PodSecurityRejected`).
    pub const PODS_ADMITTED: &str = "PodsAdmitted";
    /// Whether the policy's budgets and rate limits are counted in a store
    /// every selected pod shares (True: `SharedStore`, Redis) or in each
    /// sidecar (False: `PerPodStore`, the memory store). Absent without
    /// budgets or rate limits.
    pub const BUDGETS_SHARED: &str = "BudgetsShared";
}

/// Observed state, written by the operator.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct LlmPolicyStatus {
    /// `Accepted`, `Ready`, `Conflicted`, `SidecarsReady`, `PodsAdmitted` and
    /// (with budgets or rate limits) `BudgetsShared`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The generation these conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// SHA-256 of the rendered proxy config; the proxy reports the same
    /// value in `tollgate_config_info{hash}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_hash: Option<String>,
    /// The ConfigMap holding the rendered config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// Pods the policy selects (and wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matched_pods: Option<u32>,
    /// Selected pods running the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub injected_pods: Option<u32>,
    /// Selected pods running without the sidecar (created before the policy
    /// or while the webhook was down): restart them to enforce the policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uninjected_pods: Option<u32>,
    /// Up to 10 of those pods' names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uninjected_pod_names: Vec<String>,
    /// Summary of the first budget's spend in its current window, USD
    /// budgets first: `$12.40/$100 day`, or `1200/50000 tokens hour`;
    /// `unknown` while Redis does not answer (Redis store only, refreshed
    /// every 30 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend: Option<String>,
    /// Current window's spend per budget, as the sidecars count it in Redis
    /// (Redis store only). Budgets scoped `model` or `header` count each
    /// value against its own limit and show their limits only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub budgets: Vec<BudgetStatus>,
}

/// Spend of one budget in its current window.
#[derive(JsonSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    pub name: String,
    /// USD spent, in whole cents; absent when unknown (Redis did not
    /// answer, or the budget is scoped per model or header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_usd: Option<f64>,
    /// Tokens spent; absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spent_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_tokens: Option<u64>,
}
