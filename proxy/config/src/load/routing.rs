//! Validation of `routing:`.

use std::collections::HashMap;
use std::time::Duration;

use super::Validator;
use crate::model::*;
use crate::raw::{
    RawCircuitBreaker, RawMatch, RawRetry, RawRoutePolicy, RawRouting, RawShaping, RawTimeouts,
};

impl Validator {
    pub(super) fn routing(
        &mut self,
        raw: &RawRouting,
        providers: &HashMap<&str, usize>,
        upstream: &UpstreamConfig,
    ) -> Routing {
        let base = RoutePolicy {
            retry: RetryPolicy {
                max_attempts: 2,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(2),
                deadline: Duration::from_secs(120),
            },
            timeouts: Timeouts {
                connect: upstream.connect_timeout,
                first_byte: upstream.response_header_timeout,
                idle: Duration::from_secs(120),
                total: Duration::from_secs(900),
            },
            breaker: BreakerPolicy {
                enabled: true,
                consecutive_failures: 5,
                error_rate: 0.5,
                min_requests: 20,
                window: Duration::from_secs(30),
                base_ejection: Duration::from_secs(10),
                max_ejection: Duration::from_secs(300),
            },
        };
        let defaults = self.policy("routing.defaults", &raw.defaults, &base);

        let mut names: HashMap<&str, usize> = HashMap::new();
        for (i, r) in raw.routes.iter().enumerate() {
            if let Some(prev) = names.insert(r.name.as_str(), i) {
                self.err(
                    &format!("routing.routes[{i}].name"),
                    format!("`{}` is already the name of routing.routes[{prev}]", r.name),
                );
            }
        }
        let mut routes = Vec::with_capacity(raw.routes.len());
        for (i, r) in raw.routes.iter().enumerate() {
            let at = format!("routing.routes[{i}]");
            if r.name.trim().is_empty() || r.name.chars().any(char::is_whitespace) {
                self.err(
                    &format!("{at}.name"),
                    "must be a non-empty model name without spaces".into(),
                );
            }
            if r.targets.is_empty() {
                self.err(
                    &format!("{at}.targets"),
                    "at least one target is required".into(),
                );
            }
            let policy = self.policy(
                &at,
                &RawRoutePolicy {
                    retry: r.retry.clone(),
                    timeouts: r.timeouts.clone(),
                    circuit_breaker: r.circuit_breaker.clone(),
                },
                &defaults,
            );
            let targets = r
                .targets
                .iter()
                .enumerate()
                .map(|(j, t)| {
                    let tat = format!("{at}.targets[{j}]");
                    let provider =
                        self.provider_ref(&format!("{tat}.provider"), &t.provider, providers);
                    if t.model.trim().is_empty() {
                        self.err(&format!("{tat}.model"), "must not be empty".into());
                    }
                    if t.weight == Some(0) {
                        self.err(&format!("{tat}.weight"), "must be greater than 0".into());
                    }
                    Target {
                        provider,
                        model: t.model.clone(),
                        weight: t.weight.unwrap_or(1),
                        long_context: t.long_context,
                        shaping: self.shaping(&format!("{tat}.shaping"), t.shaping.as_ref()),
                    }
                })
                .collect();
            let rules = r
                .rules
                .iter()
                .enumerate()
                .map(|(j, rule)| {
                    let rat = format!("{at}.rules[{j}]");
                    let route = match names.get(rule.route.as_str()) {
                        Some(&k) if k == i => {
                            self.err(
                                &format!("{rat}.route"),
                                "a rule cannot send a route to itself".into(),
                            );
                            0
                        }
                        Some(&k) => k,
                        None => {
                            self.err(
                                &format!("{rat}.route"),
                                format!("no route is named `{}`", rule.route),
                            );
                            0
                        }
                    };
                    Rule {
                        name: rule.name.clone().unwrap_or_else(|| format!("rule-{j}")),
                        when: self.matcher(&format!("{rat}.when"), &rule.when),
                        route,
                    }
                })
                .collect();
            let shadow = r.shadow.as_ref().map(|s| {
                let sat = format!("{at}.shadow");
                if !(s.share > 0.0 && s.share <= 1.0) {
                    self.err(
                        &format!("{sat}.share"),
                        format!("must be in (0, 1], got {}", s.share),
                    );
                }
                if s.queue_size == Some(0) {
                    self.err(&format!("{sat}.queueSize"), "must be at least 1".into());
                }
                Shadow {
                    provider: self.provider_ref(&format!("{sat}.provider"), &s.provider, providers),
                    model: s.model.clone(),
                    share: s.share,
                    queue_size: s.queue_size.unwrap_or(64) as usize,
                    count_against_budget: s.count_against_budget,
                }
            });
            routes.push(Route {
                name: r.name.clone(),
                strategy: r.strategy,
                targets,
                rules,
                policy,
                shaping: self.shaping(&format!("{at}.shaping"), r.shaping.as_ref()),
                shadow,
            });
        }
        Routing { defaults, routes }
    }

    fn provider_ref(&mut self, path: &str, name: &str, providers: &HashMap<&str, usize>) -> usize {
        match providers.get(name) {
            Some(&i) => i,
            None => {
                self.err(path, format!("no provider is named `{name}`"));
                0
            }
        }
    }

    fn policy(&mut self, at: &str, raw: &RawRoutePolicy, base: &RoutePolicy) -> RoutePolicy {
        RoutePolicy {
            retry: self.retry(&format!("{at}.retry"), raw.retry.as_ref(), &base.retry),
            timeouts: self.timeouts(
                &format!("{at}.timeouts"),
                raw.timeouts.as_ref(),
                &base.timeouts,
            ),
            breaker: self.breaker(
                &format!("{at}.circuitBreaker"),
                raw.circuit_breaker.as_ref(),
                &base.breaker,
            ),
        }
    }

    fn dur_or(&mut self, path: &str, value: Option<&str>, base: Duration) -> Duration {
        match value {
            None => base,
            Some(_) => {
                let d = self.duration_allow_zero(path, value, 0);
                if d.is_zero() {
                    self.err(path, "must be greater than zero".into());
                }
                d
            }
        }
    }

    fn retry(&mut self, at: &str, raw: Option<&RawRetry>, base: &RetryPolicy) -> RetryPolicy {
        let Some(r) = raw else { return base.clone() };
        let p = RetryPolicy {
            max_attempts: r.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff: self.dur_or(
                &format!("{at}.initialBackoff"),
                r.initial_backoff.as_deref(),
                base.initial_backoff,
            ),
            max_backoff: self.dur_or(
                &format!("{at}.maxBackoff"),
                r.max_backoff.as_deref(),
                base.max_backoff,
            ),
            deadline: self.dur_or(
                &format!("{at}.deadline"),
                r.deadline.as_deref(),
                base.deadline,
            ),
        };
        if p.max_attempts == 0 {
            self.err(
                &format!("{at}.maxAttempts"),
                "must be at least 1 (the first attempt counts)".into(),
            );
        }
        if p.max_backoff < p.initial_backoff {
            self.err(
                &format!("{at}.maxBackoff"),
                "must not be smaller than initialBackoff".into(),
            );
        }
        p
    }

    fn timeouts(&mut self, at: &str, raw: Option<&RawTimeouts>, base: &Timeouts) -> Timeouts {
        let Some(t) = raw else { return base.clone() };
        Timeouts {
            connect: self.dur_or(&format!("{at}.connect"), t.connect.as_deref(), base.connect),
            first_byte: self.dur_or(
                &format!("{at}.firstByte"),
                t.first_byte.as_deref(),
                base.first_byte,
            ),
            idle: self.dur_or(&format!("{at}.idle"), t.idle.as_deref(), base.idle),
            total: self.dur_or(&format!("{at}.total"), t.total.as_deref(), base.total),
        }
    }

    fn breaker(
        &mut self,
        at: &str,
        raw: Option<&RawCircuitBreaker>,
        base: &BreakerPolicy,
    ) -> BreakerPolicy {
        let Some(b) = raw else { return base.clone() };
        let p = BreakerPolicy {
            enabled: b.enabled.unwrap_or(base.enabled),
            consecutive_failures: b.consecutive_failures.unwrap_or(base.consecutive_failures),
            error_rate: b.error_rate.unwrap_or(base.error_rate),
            min_requests: b.min_requests.unwrap_or(base.min_requests),
            window: self.dur_or(&format!("{at}.window"), b.window.as_deref(), base.window),
            base_ejection: self.dur_or(
                &format!("{at}.baseEjection"),
                b.base_ejection.as_deref(),
                base.base_ejection,
            ),
            max_ejection: self.dur_or(
                &format!("{at}.maxEjection"),
                b.max_ejection.as_deref(),
                base.max_ejection,
            ),
        };
        if p.consecutive_failures == 0 {
            self.err(
                &format!("{at}.consecutiveFailures"),
                "must be at least 1".into(),
            );
        }
        if !(p.error_rate > 0.0 && p.error_rate <= 1.0) {
            self.err(
                &format!("{at}.errorRate"),
                format!("must be in (0, 1], got {}", p.error_rate),
            );
        }
        if p.max_ejection < p.base_ejection {
            self.err(
                &format!("{at}.maxEjection"),
                "must not be smaller than baseEjection".into(),
            );
        }
        p
    }

    fn shaping(&mut self, at: &str, raw: Option<&RawShaping>) -> Shaping {
        let Some(s) = raw else {
            return Shaping::default();
        };
        if s.default_max_tokens == Some(0) {
            self.err(
                &format!("{at}.defaultMaxTokens"),
                "must be at least 1".into(),
            );
        }
        if s.max_tokens == Some(0) {
            self.err(&format!("{at}.maxTokens"), "must be at least 1".into());
        }
        if let (Some(d), Some(m)) = (s.default_max_tokens, s.max_tokens) {
            if d > m {
                self.err(
                    &format!("{at}.defaultMaxTokens"),
                    format!("must not exceed maxTokens ({m})"),
                );
            }
        }
        for key in s.set.keys().chain(s.strip.iter()) {
            if matches!(
                key.as_str(),
                "model" | "messages" | "stream" | "system" | "prompt" | "input"
            ) {
                self.err(at, format!("`{key}` cannot be set or stripped by shaping"));
            }
        }
        Shaping {
            default_max_tokens: s.default_max_tokens,
            max_tokens: s.max_tokens,
            set: s.set.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            strip: s.strip.clone(),
        }
    }

    fn matcher(&mut self, at: &str, m: &RawMatch) -> Match {
        if *m == RawMatch::default() {
            self.err(at, "give at least one condition".into());
        }
        if let (Some(a), Some(b)) = (m.prompt_tokens_above, m.prompt_tokens_below) {
            if a >= b {
                self.err(
                    at,
                    format!("promptTokensAbove ({a}) must be below promptTokensBelow ({b})"),
                );
            }
        }
        let system_prompt = m
            .system_prompt
            .as_ref()
            .and_then(|re| match regex::Regex::new(re) {
                Ok(r) => Some(Pattern(r)),
                Err(e) => {
                    self.err(
                        &format!("{at}.systemPrompt"),
                        format!("invalid regular expression: {e}"),
                    );
                    None
                }
            });
        let header = m.header.as_ref().map(|h| {
            if h.name.is_empty()
                || !h
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                self.err(
                    &format!("{at}.header.name"),
                    format!("`{}` is not a header name", h.name),
                );
            }
            HeaderMatch {
                name: h.name.to_ascii_lowercase(),
                values: h.values.iter().map(|v| v.to_ascii_lowercase()).collect(),
            }
        });
        Match {
            header,
            prompt_tokens_above: m.prompt_tokens_above,
            prompt_tokens_below: m.prompt_tokens_below,
            has_tools: m.has_tools,
            has_images: m.has_images,
            response_format: m.response_format.clone(),
            system_prompt,
        }
    }
}
