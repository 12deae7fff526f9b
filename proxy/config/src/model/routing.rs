//! Validated routing: aliases, targets, rules and the policies that govern
//! attempts. Provider references are indexes into `Config::providers`.

use std::time::Duration;

pub use crate::raw::Strategy;

#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// Policy for models requested by their provider name, and the base for routes.
    pub defaults: RoutePolicy,
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RoutePolicy {
    pub retry: RetryPolicy,
    pub timeouts: Timeouts,
    pub breaker: BreakerPolicy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts per target, the first included (≥ 1).
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// For all attempts and fallbacks of one request.
    pub deadline: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BreakerPolicy {
    pub enabled: bool,
    pub consecutive_failures: u32,
    pub error_rate: f64,
    pub min_requests: u32,
    pub window: Duration,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub name: String,
    pub strategy: Strategy,
    pub targets: Vec<Target>,
    pub rules: Vec<Rule>,
    pub policy: RoutePolicy,
    pub shaping: Shaping,
    pub shadow: Option<Shadow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Index into `Config::providers`.
    pub provider: usize,
    pub model: String,
    pub weight: u32,
    pub long_context: bool,
    pub shaping: Shaping,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub when: Match,
    /// Index into `Routing::routes`.
    pub route: usize,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Match {
    pub header: Option<HeaderMatch>,
    pub prompt_tokens_above: Option<u64>,
    pub prompt_tokens_below: Option<u64>,
    pub has_tools: Option<bool>,
    pub has_images: Option<bool>,
    pub response_format: Option<String>,
    pub system_prompt: Option<Pattern>,
}

impl Match {
    /// True when a rule needs the request body inspected.
    pub fn needs_body(&self) -> bool {
        self.prompt_tokens_above.is_some()
            || self.prompt_tokens_below.is_some()
            || self.has_tools.is_some()
            || self.has_images.is_some()
            || self.response_format.is_some()
            || self.system_prompt.is_some()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct HeaderMatch {
    /// Lowercase.
    pub name: String,
    /// Lowercase; empty = any value.
    pub values: Vec<String>,
}

/// A compiled regular expression, compared by its source.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shaping {
    pub default_max_tokens: Option<u64>,
    pub max_tokens: Option<u64>,
    pub set: Vec<(String, serde_json::Value)>,
    pub strip: Vec<String>,
}

impl Shaping {
    pub fn is_noop(&self) -> bool {
        *self == Shaping::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Shadow {
    pub provider: usize,
    pub model: String,
    pub share: f64,
    pub queue_size: usize,
    pub count_against_budget: bool,
}
