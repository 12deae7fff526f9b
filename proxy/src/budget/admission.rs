//! An admitted request's hold on its budgets, until it settles to actual
//! usage or releases. Dropping an admission without either releases it (in
//! a spawned task for Redis) and counts `dropped`, so an early return in
//! the pipeline never leaks a reservation.

use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use tollgate_config::{Price, Scope, NANO_PER_USD};

use super::plan::*;
use super::pricing::cost;
use super::window::Span;
use super::{Inner, Store};
use crate::api::usage::Usage;

/// What an admission reserved.
pub(crate) struct Held {
    pub budgets: Vec<HeldBudget>,
    pub rates: Vec<HeldRate>,
    pub lease_epoch: i64,
    /// Price used when the serving model has none of its own.
    pub price: Option<Price>,
    /// False for a fail-open admission: the store's answer was lost, so
    /// the reservation may or may not exist (settlement finds out).
    pub reserved: bool,
    /// [`super::plan::AdmitPlan::id`].
    pub id: String,
}

pub(crate) struct HeldBudget {
    /// Index into `Budgets::limits`.
    pub limit: usize,
    pub scope: String,
    pub reserved_key: String,
    pub usd: u64,
    pub tokens: u64,
}

pub(crate) struct HeldRate {
    pub key: String,
    pub limit: u64,
    /// TPM consumed at admission.
    pub estimated: u64,
}

/// A refused request: why, and the budget headers telling the app where it
/// stands (empty when the refusal came before the store was asked).
#[derive(Debug, Clone)]
pub struct Refused {
    pub refusal: super::Refusal,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl From<super::Refusal> for Refused {
    fn from(refusal: super::Refusal) -> Refused {
        Refused {
            refusal,
            headers: Vec::new(),
        }
    }
}

/// An admitted request.
pub struct Admission {
    inner: Arc<Inner>,
    held: Option<Held>,
    downgrade_to: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Admission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admission")
            .field("downgrade_to", &self.downgrade_to)
            .field("reserved", &self.is_reserved())
            .finish_non_exhaustive()
    }
}

impl Admission {
    pub(crate) fn new(
        inner: Arc<Inner>,
        held: Held,
        downgrade_to: Option<String>,
        headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Admission {
        inner.metrics.in_flight.inc();
        Admission {
            inner,
            held: Some(held),
            downgrade_to,
            headers,
        }
    }

    /// No budgets or rate limits applied.
    pub(crate) fn nothing(inner: Arc<Inner>) -> Admission {
        Admission {
            inner,
            held: None,
            downgrade_to: None,
            headers: Vec::new(),
        }
    }

    /// A downgrade action fired: serve the request with this route instead
    /// (the admission still holds its reservation).
    pub fn downgrade_to(&self) -> Option<&str> {
        self.downgrade_to.as_deref()
    }

    /// True when settling waits on nothing (the memory store), so it can
    /// run where the request ends instead of in a task of its own.
    pub fn settles_in_place(&self) -> bool {
        matches!(self.inner.store, Store::Memory(_))
    }

    /// False when nothing is held: no limit applied, or the store was down
    /// and `failMode: open` let the request through.
    pub fn is_reserved(&self) -> bool {
        self.held.as_ref().is_some_and(|h| h.reserved)
    }

    /// `x-tollgate-budget-remaining-usd` and `-tokens` (the tightest
    /// budget), and OpenAI-style `x-ratelimit-*` (the tightest rate limit).
    pub fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        self.headers.clone()
    }

    /// Settles to `model`'s actual usage, releasing the rest of the
    /// reservation. `estimated` marks usage counted by the tokenizer
    /// because the provider reported none.
    pub async fn settle(mut self, model: &str, usage: &Usage, estimated: bool) {
        let Some(held) = self.held.take() else { return };
        let m = &self.inner.metrics;
        let est = if estimated { "true" } else { "false" };
        let priced = self.inner.prices.lookup(model);
        let (label, price) = match (priced, held.price) {
            (Some(p), _) => (p.label, Some(p.price)),
            (None, Some(p)) => ("reserved", Some(p)),
            (None, None) => ("unknown", None),
        };
        let usd = price.map_or(0, |p| cost(&p, usage));
        m.spend_usd
            .series(&[label])
            .inc_by(usd as f64 / NANO_PER_USD as f64);
        for (kind, n) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cached_input", usage.cached_input),
            ("cache_creation", usage.cache_creation),
            ("reasoning", usage.reasoning),
        ] {
            if n > 0 {
                m.tokens.series(&[label, kind, est]).inc_by(n);
            }
        }
        m.settlements.series(&["settled", est]).inc();
        if held.reserved {
            let mut reserved = None;
            for b in &held.budgets {
                let l = &self.inner.cfg.limits[b.limit];
                if l.usd.is_some() {
                    m.limit_spend_usd
                        .series(&[&l.name, l.scope.kind()])
                        .inc_by(usd as f64 / NANO_PER_USD as f64);
                    reserved = reserved.max(Some(b.usd));
                }
            }
            if let Some(r) = reserved {
                m.settle_error_usd
                    .observe((r as f64 - usd as f64) / NANO_PER_USD as f64);
            }
        }
        let tokens = usage.input.saturating_add(usage.output);
        finish(&self.inner, held, usd, tokens).await;
    }

    /// Releases the reservation without spending: the request failed before
    /// any usage.
    pub async fn release(mut self) {
        let Some(held) = self.held.take() else { return };
        self.inner
            .metrics
            .settlements
            .with_label_values(&["released", "false"])
            .inc();
        finish(&self.inner, held, 0, 0).await;
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let Some(held) = self.held.take() else { return };
        let inner = self.inner.clone();
        inner
            .metrics
            .settlements
            .with_label_values(&["dropped", "false"])
            .inc();
        match &inner.store {
            Store::Memory(s) => {
                // Memory settlement never waits: run it in place.
                s.settle(&settle_plan(&inner, &held, 0, 0));
                inner.metrics.in_flight.dec();
            }
            Store::Redis(s) => match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move { finish(&inner, held, 0, 0).await });
                }
                Err(_) => {
                    s.enqueue(settle_plan(&inner, &held, 0, 0));
                    inner.metrics.in_flight.dec();
                }
            },
        }
    }
}

/// A new [`Held::id`]: a random prefix per process and a counter.
pub(crate) fn new_id() -> String {
    static PROCESS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let process = *PROCESS.get_or_init(rand::random);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    hex_id(process, n)
}

/// `process` as 16 hex digits, then `n` in hex: what
/// `format!("{process:016x}{n:x}")` writes, without the formatting
/// machinery (once per admission).
pub(crate) fn hex_id(process: u64, n: u64) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut id = String::with_capacity(32);
    for k in (0..16).rev() {
        id.push(HEX[(process >> (k * 4)) as usize & 15] as char);
    }
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1);
    for k in (0..digits).rev() {
        id.push(HEX[(n >> (k * 4)) as usize & 15] as char);
    }
    id
}

/// Releases what a refused admission whose store call failed may have
/// reserved.
pub(crate) fn release_plan(inner: &Inner, held: &Held) -> SettlePlan {
    settle_plan(inner, held, 0, 0)
}

fn settle_plan(inner: &Inner, held: &Held, usd: u64, tokens: u64) -> SettlePlan {
    let now_ms = inner.clock.now_ms();
    let budgets = held
        .budgets
        .iter()
        .map(|b| {
            let l = &inner.cfg.limits[b.limit];
            let span = inner.memo.window(b.limit, now_ms, || {
                Span::of(l.window, inner.cfg.time_zone, now_ms)
            });
            SettleOp {
                spent_key: inner.spent_key(l, &span, &b.scope),
                reserved_key: b.reserved_key.clone(),
                span,
                lease_epoch: held.lease_epoch,
                reserved_usd: b.usd,
                reserved_tokens: b.tokens,
                usd: if l.usd.is_some() { usd } else { 0 },
                tokens: if l.tokens.is_some() { tokens } else { 0 },
            }
        })
        .collect();
    let rates = held
        .rates
        .iter()
        .filter(|r| !held.reserved || r.estimated != tokens)
        .map(|r| RateAdjust {
            key: r.key.clone(),
            limit: r.limit,
            estimated: r.estimated,
            actual: tokens,
        })
        .collect();
    SettlePlan {
        id: held.id.clone(),
        now_ms,
        budgets,
        rates,
    }
}

async fn finish(inner: &Inner, held: Held, usd: u64, tokens: u64) {
    let plan = settle_plan(inner, &held, usd, tokens);
    let totals = match &inner.store {
        Store::Memory(s) => {
            let started = std::time::Instant::now();
            let t = s.settle(&plan);
            inner
                .metrics
                .store_duration
                .series(&["memory", "settle"])
                .observe(started.elapsed().as_secs_f64());
            Some(t)
        }
        Store::Redis(s) => s.settle(plan.clone()).await,
    };
    inner.metrics.in_flight.dec();
    if let Some(totals) = totals {
        observe_thresholds(inner, &held, &plan, &totals);
    }
}

/// Counts threshold crossings (each crossing is seen by exactly one
/// settlement: the one whose addition made it) and updates the usage
/// ratio of single-valued scopes.
fn observe_thresholds(inner: &Inner, held: &Held, plan: &SettlePlan, totals: &[Totals]) {
    for ((b, op), after) in held.budgets.iter().zip(&plan.budgets).zip(totals) {
        let l = &inner.cfg.limits[b.limit];
        let ratio = |spent_usd: u64, spent_tokens: u64| {
            let u = l.usd.map_or(0.0, |lim| spent_usd as f64 / lim as f64);
            let t = l.tokens.map_or(0.0, |lim| spent_tokens as f64 / lim as f64);
            u.max(t)
        };
        let now = ratio(after.usd, after.tokens);
        let before = ratio(
            after.usd.saturating_sub(op.usd),
            after.tokens.saturating_sub(op.tokens),
        );
        for t in &l.thresholds {
            if before < *t && now >= *t {
                inner
                    .metrics
                    .threshold_crossings
                    .with_label_values(&[&l.name, &t.to_string()])
                    .inc();
            }
        }
        if matches!(l.scope, Scope::Policy | Scope::Namespace | Scope::Workload) {
            inner
                .metrics
                .usage_ratio
                .with_label_values(&[&l.name])
                .set(now);
        }
    }
}
