//! `spec.routes` and `spec.routeDefaults`: model aliases, their targets,
//! rules, retries, timeouts, circuit breaking, shaping and shadow traffic.
//! Same fields as the proxy's `routing` section; sections without a CEL rule
//! reuse the proxy's own types.

use std::collections::BTreeMap;

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

pub use tollgate_config::raw::{
    RawMatch as Match, RawRetry as Retry, RawTimeouts as Timeouts, Strategy,
};

/// Policy for every route unless the route overrides it.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct RouteDefaults {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
}

/// A model alias apps can request.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("size(self.targets) > 0").message("a route needs at least one target"))]
pub struct Route {
    /// The model name apps request, e.g. `chat-default`.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// `weighted` (default), `round-robin`, `least-outstanding` or `lowest-latency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// Ordered targets: the strategy picks the first attempt, then
    /// fallbacks follow this order.
    #[schemars(length(max = 16))]
    pub targets: Vec<Target>,
    /// Ordered rules; the first that matches sends the request to another route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub rules: Vec<RouteRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<Retry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<Timeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<CircuitBreaker>,
    /// Shaping for every target of this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping: Option<Shaping>,
    /// Mirror a share of requests to a shadow target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<Shadow>,
}

/// One provider + upstream model.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Target {
    /// A provider name from `spec.providers`.
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    /// The model name sent to that provider.
    #[schemars(length(min = 1, max = 253))]
    pub model: String,
    /// Relative weight for `weighted`. Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0").message("weight must be greater than 0"))]
    pub weight: Option<u32>,
    /// Receives requests another target refused as too long for its context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_context: Option<bool>,
    /// Shaping for this target only (after the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping: Option<Shaping>,
}

/// A routing rule: when all conditions hold, another route serves the request.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct RouteRule {
    /// Shown in metrics and logs. Default `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub name: Option<String>,
    /// Conditions (all must hold).
    pub when: Match,
    /// A route name from `spec.routes`.
    #[schemars(length(min = 1, max = 253))]
    pub route: String,
}

/// Per-target circuit breaker.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct CircuitBreaker {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Eject after this many failures in a row. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Eject when the failure share in `window` reaches this, in (0, 1]. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("errorRate must be in (0, 1]"))]
    pub error_rate: Option<f64>,
    /// Requests in `window` before `errorRate` applies. Default 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<u32>,
    /// Window for `errorRate`. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// First ejection; doubles on each repeat. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_ejection: Option<String>,
    /// Longest ejection. Default `5m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ejection: Option<String>,
}

/// Request shaping.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Shaping {
    /// `max_tokens` when the app sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u64>,
    /// Largest `max_tokens` allowed; larger values are lowered to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Request fields forced to these values: a field name and any JSON
    /// value (`temperature: 0`, `response_format: {type: json_object}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::crd::any_values")]
    pub set: BTreeMap<String, serde_json::Value>,
    /// Request fields removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip: Vec<String>,
}

/// Shadow traffic to evaluate another model.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Shadow {
    /// A provider name from `spec.providers`.
    #[schemars(length(min = 1, max = 63))]
    pub provider: String,
    pub model: String,
    /// Share of the route's requests mirrored, in (0, 1].
    #[x_kube(validation = Rule::new("self > 0.0 && self <= 1.0").message("share must be in (0, 1]"))]
    pub share: f64,
    /// Mirrors waiting to be sent; beyond it they are dropped. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u32>,
    /// Count the shadow's usage against budgets. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_against_budget: Option<bool>,
}
