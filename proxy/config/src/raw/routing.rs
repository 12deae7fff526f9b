//! `routing:`: model aliases, targets, rules, retries, timeouts, circuit
//! breaking, request shaping and shadow traffic, as written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Model aliases and the policy for reaching providers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRouting {
    /// Policy for every route (and for models requested by their provider
    /// name) unless a route overrides it.
    #[serde(default, skip_serializing_if = "RawRoutePolicy::is_empty")]
    pub defaults: RawRoutePolicy,
    /// Aliases apps can request as `model`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
}

impl RawRouting {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Retries, timeouts and circuit breaking.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRoutePolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RawRetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RawTimeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<RawCircuitBreaker>,
}

impl RawRoutePolicy {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// One alias.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRoute {
    /// The model name apps request, e.g. `chat-default`.
    pub name: String,
    /// How the first target is chosen. Default `weighted`.
    #[serde(default)]
    pub strategy: Strategy,
    /// Ordered targets: the strategy picks the first attempt among healthy
    /// targets, then fallbacks follow this order.
    pub targets: Vec<RawTarget>,
    /// Ordered rules; the first that matches sends the request to another route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<RawRule>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RawRetry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeouts: Option<RawTimeouts>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub circuit_breaker: Option<RawCircuitBreaker>,
    /// Request shaping for every target of this route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping: Option<RawShaping>,
    /// Mirror a share of requests to a shadow target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<RawShadow>,
}

/// Target selection strategy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Random, proportional to `weight`.
    #[default]
    Weighted,
    /// In turn.
    RoundRobin,
    /// The target with the fewest requests in flight.
    LeastOutstanding,
    /// The target with the lowest recent latency (EWMA), exploring others
    /// on a small share of requests.
    LowestLatency,
}

/// One provider + upstream model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTarget {
    /// A provider name from `providers`.
    pub provider: String,
    /// The model name sent to that provider.
    pub model: String,
    /// Relative weight for `weighted`. Default 1; must be > 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// Receives requests that another target refused as too long for its context.
    #[serde(default)]
    pub long_context: bool,
    /// Shaping for this target only (applied after the route's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shaping: Option<RawShaping>,
}

/// A routing rule: all given conditions must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRule {
    /// Shown in metrics and logs. Default `rule-<index>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Conditions.
    pub when: RawMatch,
    /// Route that serves matching requests.
    pub route: String,
}

/// Request features a rule can test.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMatch {
    /// A request header with one of the given values (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<RawHeaderMatch>,
    /// Estimated prompt tokens strictly above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_above: Option<u64>,
    /// Estimated prompt tokens strictly below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_below: Option<u64>,
    /// The request defines tools (true) or does not (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_tools: Option<bool>,
    /// The request contains images (true) or does not (false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_images: Option<bool>,
    /// `response_format.type` equals this (`json_object`, `json_schema`, `text`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<String>,
    /// A regular expression found in the system prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
}

/// A header test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawHeaderMatch {
    pub name: String,
    /// Accepted values; empty means "present with any value".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// Retries on one target before falling back to the next.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawRetry {
    /// Attempts per target, the first included. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// First backoff ceiling (full jitter: a random wait up to it). Default `100ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_backoff: Option<String>,
    /// Largest backoff ceiling. Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    /// Budget for all attempts and fallbacks of one request. Default `120s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<String>,
}

/// Per-route timeouts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTimeouts {
    /// TCP + TLS connect. Default `upstream.connectTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    /// Until the first byte of the response (headers, and the first event of
    /// a stream). Default `upstream.responseHeaderTimeout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<String>,
    /// Longest silence between stream events or body chunks. Default `120s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<String>,
    /// Whole request, streams included. Default `900s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
}

/// Per-target circuit breaker.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCircuitBreaker {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Eject after this many failures in a row. Default 5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Eject when the failure share in `window` reaches this, in (0, 1]. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
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
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawShaping {
    /// `max_tokens` when the app sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u64>,
    /// Largest `max_tokens` allowed; larger values are lowered to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Parameters forced to these values (top-level request fields).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub set: BTreeMap<String, serde_json::Value>,
    /// Parameters removed from requests.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip: Vec<String>,
}

/// Shadow traffic to evaluate another model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawShadow {
    pub provider: String,
    pub model: String,
    /// Share of the route's requests mirrored, in (0, 1].
    pub share: f64,
    /// Mirrors waiting to be sent; beyond it they are dropped and counted. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u32>,
    /// Count the shadow's usage against budgets. Default false.
    #[serde(default)]
    pub count_against_budget: bool,
}
