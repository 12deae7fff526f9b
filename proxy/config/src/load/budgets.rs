//! Validation of `budgets:`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use super::Validator;
use crate::model::*;
use crate::raw::{
    BudgetStoreType, LimitAction, RawBudgetStore, RawBudgets, RawMetadata, RawPrice, RawPricing,
    RawRedisStore, ScopeKind, UnknownModelPrice, WindowKind,
};

/// Largest USD amount (a limit or a price per million tokens): sums stay
/// exact in Redis' Lua numbers (doubles) far beyond it.
const MAX_USD: f64 = 1_000_000.0;
const MAX_TOKENS: u64 = 1_000_000_000_000_000;
const MAX_PER_MINUTE: u64 = 1_000_000_000;

impl Validator {
    pub(super) fn budgets(
        &mut self,
        raw: &RawBudgets,
        routes: &HashSet<&str>,
        metadata: Option<&RawMetadata>,
    ) -> Budgets {
        let defaults = Budgets::default();
        let time_zone = match &raw.time_zone {
            None => defaults.time_zone,
            Some(name) => name.parse::<Tz>().unwrap_or_else(|_| {
                self.err(
                    "budgets.timeZone",
                    format!("`{name}` is not an IANA time zone (e.g. UTC, Europe/Berlin)"),
                );
                defaults.time_zone
            }),
        };
        let store = match &raw.store {
            None => defaults.store,
            Some(s) => self.budget_store(s),
        };
        let pricing = match &raw.pricing {
            None => Pricing::default(),
            Some(p) => self.pricing(p),
        };
        let res = raw.reservation.clone().unwrap_or_default();
        let default_max_output_tokens = res.default_max_output_tokens.unwrap_or(4096);
        if !(1..=10_000_000).contains(&default_max_output_tokens) {
            self.err(
                "budgets.reservation.defaultMaxOutputTokens",
                "must be between 1 and 10000000".into(),
            );
        }
        let lease_timeout = self.dur_min(
            "budgets.reservation.leaseTimeout",
            res.lease_timeout.as_deref(),
            defaults.lease_timeout,
            Duration::from_secs(60),
        );

        let mut names: HashMap<&str, String> = HashMap::new();
        let mut limits = Vec::with_capacity(raw.limits.len());
        for (i, l) in raw.limits.iter().enumerate() {
            let at = format!("budgets.limits[{i}]");
            self.limit_name(&at, &l.name, &mut names);
            let scope = self.scope(
                &at,
                l.scope,
                l.header.as_deref(),
                l.missing_header,
                metadata,
            );
            let window = match (l.window, &l.rolling_window) {
                (WindowKind::Rolling, None) => {
                    self.err(
                        &format!("{at}.rollingWindow"),
                        "required with `window: rolling` (e.g. 1h)".into(),
                    );
                    Window::Rolling(Duration::from_secs(3600))
                }
                (WindowKind::Rolling, Some(text)) => {
                    let path = format!("{at}.rollingWindow");
                    let d =
                        self.dur_min(&path, Some(text), Duration::ZERO, Duration::from_secs(60));
                    if d.subsec_nanos() != 0 || !d.as_secs().is_multiple_of(60) {
                        self.err(&path, "must be a whole number of minutes".into());
                    } else if d > Duration::from_secs(366 * 86_400) {
                        self.err(&path, "must be at most 366 days".into());
                    }
                    Window::Rolling(d)
                }
                (other, Some(_)) => {
                    self.err(
                        &format!("{at}.rollingWindow"),
                        format!(
                            "only applies to `window: rolling`, not `{}`",
                            window_name(other)
                        ),
                    );
                    Window::Day
                }
                (WindowKind::Minute, None) => Window::Minute,
                (WindowKind::Hour, None) => Window::Hour,
                (WindowKind::Day, None) => Window::Day,
                (WindowKind::Month, None) => Window::Month,
            };
            if l.usd.is_none() && l.tokens.is_none() {
                self.err(&at, "set `usd`, `tokens` or both".into());
            }
            let usd = l.usd.map(|u| {
                if !(u.is_finite() && u > 0.0 && u <= MAX_USD) {
                    self.err(
                        &format!("{at}.usd"),
                        format!("must be greater than 0 and at most {MAX_USD}, got {u}"),
                    );
                }
                usd_to_nano(u.clamp(0.0, MAX_USD))
            });
            if let Some(t) = l.tokens {
                if t == 0 || t > MAX_TOKENS {
                    self.err(
                        &format!("{at}.tokens"),
                        format!("must be between 1 and {MAX_TOKENS}"),
                    );
                }
            }
            let action = match (l.action, &l.downgrade_to) {
                (LimitAction::Downgrade, Some(route)) => {
                    if !routes.contains(route.as_str()) {
                        self.err(
                            &format!("{at}.downgradeTo"),
                            format!("no route is named `{route}` in routing.routes"),
                        );
                    }
                    Action::Downgrade {
                        route: route.clone(),
                    }
                }
                (LimitAction::Downgrade, None) => {
                    self.err(
                        &format!("{at}.downgradeTo"),
                        "required with `action: downgrade` (a route name)".into(),
                    );
                    Action::Reject
                }
                (_, Some(_)) => {
                    self.err(
                        &format!("{at}.downgradeTo"),
                        "only applies to `action: downgrade`".into(),
                    );
                    Action::Reject
                }
                (LimitAction::Reject, None) => Action::Reject,
                (LimitAction::Warn, None) => Action::Warn,
            };
            let thresholds = match &l.thresholds {
                None => vec![0.5, 0.8, 1.0],
                Some(t) => {
                    let path = format!("{at}.thresholds");
                    if t.len() > 10 {
                        self.err(&path, "at most 10 thresholds".into());
                    }
                    if t.iter().any(|x| !(*x > 0.0 && *x <= 1.0)) {
                        self.err(&path, "each threshold must be in (0, 1]".into());
                    }
                    if t.windows(2).any(|w| w[0] >= w[1]) {
                        self.err(&path, "must be in ascending order without repeats".into());
                    }
                    t.clone()
                }
            };
            limits.push(Limit {
                name: l.name.clone(),
                scope,
                window,
                usd,
                tokens: l.tokens,
                action,
                thresholds,
            });
        }

        let mut rate_limits = Vec::with_capacity(raw.rate_limits.len());
        for (i, r) in raw.rate_limits.iter().enumerate() {
            let at = format!("budgets.rateLimits[{i}]");
            self.limit_name(&at, &r.name, &mut names);
            let scope = self.scope(
                &at,
                r.scope,
                r.header.as_deref(),
                r.missing_header,
                metadata,
            );
            if r.requests_per_minute.is_none() && r.tokens_per_minute.is_none() {
                self.err(
                    &at,
                    "set `requestsPerMinute`, `tokensPerMinute` or both".into(),
                );
            }
            for (field, v) in [
                ("requestsPerMinute", r.requests_per_minute),
                ("tokensPerMinute", r.tokens_per_minute),
            ] {
                if matches!(v, Some(n) if n == 0 || n > MAX_PER_MINUTE) {
                    self.err(
                        &format!("{at}.{field}"),
                        format!("must be between 1 and {MAX_PER_MINUTE}"),
                    );
                }
            }
            rate_limits.push(RateLimit {
                name: r.name.clone(),
                scope,
                requests_per_minute: r.requests_per_minute,
                tokens_per_minute: r.tokens_per_minute,
            });
        }

        Budgets {
            time_zone,
            store,
            pricing,
            default_max_output_tokens,
            lease_timeout,
            limits,
            rate_limits,
        }
    }

    /// A duration of at least `min`; `default` when absent.
    pub(super) fn dur_min(
        &mut self,
        path: &str,
        value: Option<&str>,
        default: Duration,
        min: Duration,
    ) -> Duration {
        let Some(text) = value else { return default };
        match crate::quantity::parse_duration(text) {
            Ok(d) if d < min => {
                self.err(
                    path,
                    format!("must be at least {}", humantime::format_duration(min)),
                );
                d
            }
            Ok(d) => d,
            Err(e) => {
                self.err(path, e);
                default
            }
        }
    }

    fn limit_name<'a>(&mut self, at: &str, name: &'a str, names: &mut HashMap<&'a str, String>) {
        let valid = !name.is_empty()
            && name.len() <= 63
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !valid {
            self.err(
                &format!("{at}.name"),
                format!("`{name}` must be 1 to 63 letters, digits, '-', '_' or '.'"),
            );
        }
        if let Some(prev) = names.insert(name, at.to_string()) {
            self.err(
                &format!("{at}.name"),
                format!("`{name}` is already the name of {prev}"),
            );
        }
    }

    fn scope(
        &mut self,
        at: &str,
        kind: ScopeKind,
        header: Option<&str>,
        missing: Option<MissingHeader>,
        metadata: Option<&RawMetadata>,
    ) -> Scope {
        if kind != ScopeKind::Header {
            if header.is_some() {
                self.err(
                    &format!("{at}.header"),
                    "only applies to `scope: header`".into(),
                );
            }
            if missing.is_some() {
                self.err(
                    &format!("{at}.missingHeader"),
                    "only applies to `scope: header`".into(),
                );
            }
        }
        match kind {
            ScopeKind::Policy => Scope::Policy,
            ScopeKind::Namespace => {
                if metadata.and_then(|m| m.namespace.as_ref()).is_none() {
                    self.err(
                        &format!("{at}.scope"),
                        "`namespace` needs metadata.namespace".into(),
                    );
                }
                Scope::Namespace
            }
            ScopeKind::Workload => {
                if metadata.and_then(|m| m.workload.as_ref()).is_none() {
                    self.err(
                        &format!("{at}.scope"),
                        "`workload` needs metadata.workload".into(),
                    );
                }
                Scope::Workload
            }
            ScopeKind::Model => Scope::Model,
            ScopeKind::Header => {
                let name = header.unwrap_or_default();
                if header.is_none() {
                    self.err(
                        &format!("{at}.header"),
                        "required with `scope: header` (e.g. x-tollgate-team)".into(),
                    );
                } else if !super::is_token(name) {
                    self.err(
                        &format!("{at}.header"),
                        format!("`{name}` is not a header name"),
                    );
                }
                Scope::Header {
                    name: name.to_ascii_lowercase(),
                    missing: missing.unwrap_or_default(),
                }
            }
        }
    }

    fn budget_store(&mut self, s: &RawBudgetStore) -> BudgetStore {
        let at = "budgets.store";
        match s.kind {
            BudgetStoreType::Memory => {
                if s.redis.is_some() {
                    self.err(
                        &format!("{at}.redis"),
                        "only applies to `type: redis`".into(),
                    );
                }
                if s.fail_mode.is_some() {
                    self.err(
                        &format!("{at}.failMode"),
                        "only applies to `type: redis` (the memory store is always reachable)"
                            .into(),
                    );
                }
                if matches!(&s.persist_path, Some(p) if p.trim().is_empty()) {
                    self.err(&format!("{at}.persistPath"), "must not be empty".into());
                }
                BudgetStore::Memory(MemoryStore {
                    persist_path: s.persist_path.as_ref().map(PathBuf::from),
                    persist_interval: self.dur_min(
                        &format!("{at}.persistInterval"),
                        s.persist_interval.as_deref(),
                        Duration::from_secs(10),
                        Duration::from_secs(1),
                    ),
                })
            }
            BudgetStoreType::Redis => {
                for (field, set) in [
                    ("persistPath", s.persist_path.is_some()),
                    ("persistInterval", s.persist_interval.is_some()),
                ] {
                    if set {
                        self.err(
                            &format!("{at}.{field}"),
                            "only applies to `type: memory`".into(),
                        );
                    }
                }
                let r = match &s.redis {
                    Some(r) => r.clone(),
                    None => {
                        self.err(
                            &format!("{at}.redis"),
                            "required with `type: redis` (at least `url`)".into(),
                        );
                        RawRedisStore {
                            url: "redis://127.0.0.1:6379".into(),
                            ..RawRedisStore::default()
                        }
                    }
                };
                self.redis(&format!("{at}.redis"), &r, s.fail_mode.unwrap_or_default())
            }
        }
    }

    fn pricing(&mut self, p: &RawPricing) -> Pricing {
        let at = "budgets.pricing";
        let default_price = p
            .default_price
            .as_ref()
            .map(|d| self.price(&format!("{at}.defaultPrice"), d));
        let default_price = match (p.unknown_model, default_price) {
            (Some(UnknownModelPrice::Default), None) => {
                self.err(
                    &format!("{at}.defaultPrice"),
                    "required with `unknownModel: default`".into(),
                );
                None
            }
            (Some(UnknownModelPrice::Refuse), Some(_)) => {
                self.err(
                    &format!("{at}.defaultPrice"),
                    "is never used with `unknownModel: refuse`; remove one of them".into(),
                );
                None
            }
            (_, d) => d,
        };
        let models = p
            .models
            .iter()
            .map(|(name, price)| {
                let path = format!("{at}.models.{name}");
                if name.trim().is_empty() || name.contains('*') {
                    self.err(&path, "must be a model name (no wildcards)".into());
                }
                (name.clone(), self.price(&path, price))
            })
            .collect();
        Pricing {
            default_price,
            models,
        }
    }

    fn price(&mut self, at: &str, p: &RawPrice) -> Price {
        for (field, v) in [
            ("input", Some(p.input)),
            ("output", Some(p.output)),
            ("cachedInput", p.cached_input),
            ("cacheWrite", p.cache_write),
        ] {
            if let Some(v) = v {
                if !(v.is_finite() && (0.0..=MAX_USD).contains(&v)) {
                    self.err(
                        &format!("{at}.{field}"),
                        format!("must be a USD price per million tokens between 0 and {MAX_USD}, got {v}"),
                    );
                }
            }
        }
        let c = |v: f64| {
            if v.is_finite() {
                v.clamp(0.0, MAX_USD)
            } else {
                0.0
            }
        };
        Price::from_usd(
            c(p.input),
            c(p.output),
            p.cached_input.map(c),
            p.cache_write.map(c),
        )
    }
}

fn window_name(w: WindowKind) -> &'static str {
    match w {
        WindowKind::Minute => "minute",
        WindowKind::Hour => "hour",
        WindowKind::Day => "day",
        WindowKind::Month => "month",
        WindowKind::Rolling => "rolling",
    }
}
