//! Budgets and rate limits: admission before a request goes upstream,
//! settlement once its usage is known.
//!
//! # Accounting
//! Money is integer nano-USD. Admission reserves the request's worst case
//! on every applicable budget: prompt tokens at the dearest input price and
//! `max_tokens` (or `reservation.defaultMaxOutputTokens`) at the dearest
//! output price among the models that may serve it. The prompt is counted
//! at its upper bound, the UTF-8 length of its texts (no byte-level BPE
//! makes more tokens than bytes), and tokenized only when that bound is
//! refused ([`BudgetEngine::admit_bounded`]). A budget admits when
//! `spent + reserved + worst case <= limit`; every budget and rate limit of
//! the request is checked and reserved in one atomic step (one lock in
//! memory, one Lua script in Redis), all or none. Settlement adds the
//! actual cost to the window current at that moment and releases the
//! reservation.
//!
//! # Overshoot bound
//! Because in-flight requests hold their worst case, concurrency alone
//! never overshoots. A window's spend exceeds its limit by at most the sum,
//! over the requests in flight at the last admission of that window, of
//! `actual cost - reservation` where positive: what a prompt estimate below
//! the provider's count (or a provider ignoring `max_tokens`) adds. The
//! byte bound is never below a byte-level BPE count, so only requests
//! admitted on the tokenizer's count (near a limit) can add to it; with
//! exact estimates the bound is zero. A `warn` or `downgrade` action fires
//! when the worst case, with the prompt at its bound, does not fit.
//! `warn` and `downgrade` limits, and
//! admissions while a Redis store is down with `failMode: open`, are not
//! bounded by design.
//!
//! # Windows
//! Calendar windows (minute, hour, day, month) align to `budgets.timeZone`;
//! rolling windows are 60 sliding slots. A refusal's `Retry-After` is the
//! time until the window frees budget. Rate limits are GCRA per minute:
//! TPM consumes prompt plus maximum output tokens at admission and is
//! corrected to actual usage at settlement.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderMap;
use tollgate_config::{Action, BudgetStore, Budgets, Limit, Price, Scope};

mod admission;
mod clock;
mod decide;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fixtures;
mod headers;
mod memo;
mod memory;
mod metrics;
mod plan;
mod pricing;
mod redis;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_settle;
#[cfg(test)]
mod tests_windows;
mod tokens;

pub(crate) use admission::{Admission, Refused};
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use clock::FakeClock;
pub(crate) use clock::{Clock, SystemClock};
pub(crate) use error::{BudgetError, Refusal, StoreError};
pub(crate) use metrics::BudgetMetrics;
pub(crate) use pricing::PriceTable;
use tollgate_spend::keys::{key, scope_hash, spent_key, MISSING};
use tollgate_spend::window;
pub(crate) use tollgate_spend::Span;
pub use tollgate_spend::{Identity, WindowSpend};

use crate::api::usage::Usage;
use crate::api::Family;
use decide::Denied;
use memory::MemoryStore;
use plan::*;
use pricing::worst_case;
use redis::RedisStore;

/// What admission needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub struct AdmitRequest<'a> {
    pub headers: &'a HeaderMap,
    /// The `model` the app asked for (the scope value of `model` budgets).
    pub requested_model: &'a str,
    /// Upstream models that may serve it; the dearest is reserved. Empty
    /// means `requested_model`.
    pub models: &'a [&'a str],
    pub prompt_tokens: u64,
    pub max_output_tokens: Option<u64>,
}

/// Budget admission and settlement. Send + Sync; share it in an `Arc`.
pub struct BudgetEngine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    cfg: Budgets,
    prices: PriceTable,
    store: Store,
    prefix: String,
    lease_ms: i64,
    metrics: Arc<BudgetMetrics>,
    clock: Arc<dyn Clock>,
    memo: memo::Memo,
}

#[derive(Clone)]
pub(crate) enum Store {
    Memory(Arc<MemoryStore>),
    Redis(Arc<RedisStore>),
}

impl BudgetEngine {
    /// Builds from validated config; reuses `previous`'s store (and its
    /// state) when the store settings are unchanged, so spend survives
    /// config reloads. Never connects: a Redis store connects on first use.
    pub async fn new(
        cfg: &Budgets,
        identity: &Identity,
        previous: Option<&BudgetEngine>,
    ) -> Result<BudgetEngine, BudgetError> {
        BudgetEngine::with_clock(cfg, identity, previous, Arc::new(SystemClock)).await
    }

    /// [`BudgetEngine::new`] with an injected clock.
    pub async fn with_clock(
        cfg: &Budgets,
        identity: &Identity,
        previous: Option<&BudgetEngine>,
        clock: Arc<dyn Clock>,
    ) -> Result<BudgetEngine, BudgetError> {
        let prev = previous.map(|p| &p.inner);
        let metrics = prev.map_or_else(|| Arc::new(BudgetMetrics::new()), |p| p.metrics.clone());
        let (store, prefix) = match &cfg.store {
            BudgetStore::Memory(m) => {
                let reuse = prev.and_then(|p| match &p.store {
                    Store::Memory(s) if s.path() == m.persist_path.as_ref() => Some(s.clone()),
                    _ => None,
                });
                let store = match reuse {
                    Some(s) => {
                        s.set_interval(m.persist_interval);
                        s
                    }
                    None => {
                        MemoryStore::open(
                            m.persist_path.clone(),
                            m.persist_interval,
                            clock.clone(),
                            metrics.clone(),
                        )
                        .await
                    }
                };
                (Store::Memory(store), "tg".to_string())
            }
            BudgetStore::Redis(r) => {
                let secrets = tollgate_spend::RedisSecrets::read(r).await?;
                let reuse = prev.and_then(|p| match &p.store {
                    Store::Redis(s) if s.same(r, &secrets) => Some(s.clone()),
                    _ => None,
                });
                let store = match reuse {
                    Some(s) => s,
                    None => RedisStore::open(r, &secrets, metrics.clone())?,
                };
                (Store::Redis(store), r.budget_key_prefix())
            }
        };
        Ok(BudgetEngine {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                prices: PriceTable::new(&cfg.pricing),
                store,
                prefix,
                lease_ms: cfg.lease_timeout.as_millis() as i64,
                metrics,
                clock,
                memo: memo::Memo::new(cfg, identity),
            }),
        })
    }

    /// What `usage` on `model` costs, in nano-USD, at the price table
    /// (`None` for a model without a price). No metric is touched.
    pub fn cost_of(&self, model: &str, usage: &Usage) -> Option<u64> {
        self.inner
            .prices
            .lookup(model)
            .map(|p| pricing::cost(&p.price, usage))
    }

    /// No budgets and no rate limits: the pipeline skips admission.
    pub fn is_empty(&self) -> bool {
        self.inner.cfg.is_empty()
    }

    pub fn metrics(&self) -> &BudgetMetrics {
        &self.inner.metrics
    }

    /// Estimated prompt tokens of a request body (see [`tokens`]).
    pub fn estimate_prompt_tokens(family: Family, body: &serde_json::Value) -> u64 {
        tokens::estimate_prompt_tokens(family, body)
    }

    /// An upper bound of [`BudgetEngine::estimate_prompt_tokens`] that runs
    /// no tokenizer (see [`tokens`]).
    pub fn prompt_token_bound(family: Family, body: &serde_json::Value) -> u64 {
        tokens::prompt_token_bound(family, body)
    }

    /// True when counting for `model` in `family` loads no tokenizer
    /// tables.
    pub fn tokenizer_warm(family: Family, model: &str) -> bool {
        tokens::Encoding::of(family, model).is_warm()
    }

    /// Tokens of `text` with `model`'s tokenizer.
    pub fn count_tokens(model: &str, text: &str) -> u64 {
        tokens::count_tokens(model, text)
    }

    /// Memory store: writes the file now (call on shutdown). Redis store:
    /// writes settlements still queued.
    pub async fn persist(&self) -> Result<(), BudgetError> {
        match &self.inner.store {
            Store::Memory(m) => m.persist().await,
            Store::Redis(r) => r.flush().await,
        }
    }

    /// Admission: `Ok` reserves the request's worst case on every
    /// applicable budget and consumes its rate limits; the [`Admission`]
    /// must be settled or released (dropping it releases).
    pub async fn admit(&self, req: &AdmitRequest<'_>) -> Result<Admission, Refusal> {
        self.admit_for_response(req).await.map_err(|r| r.refusal)
    }

    /// [`BudgetEngine::admit`], with a refusal's budget headers (where the
    /// app stands, as the store saw it) for the error response.
    pub async fn admit_for_response(&self, req: &AdmitRequest<'_>) -> Result<Admission, Refused> {
        let res = self.admit_once(req).await;
        self.count_admission(res)
    }

    /// One attempt whose refusal is final.
    async fn admit_once(&self, req: &AdmitRequest<'_>) -> Result<Admission, Refused> {
        match self.try_admit(req, false).await {
            Ok(a) => Ok(a),
            Err(Denied::Final(r)) => Err(r),
            Err(Denied::Retry) => unreachable!("no retry asked for"),
        }
    }

    /// [`BudgetEngine::admit_for_response`] with `req.prompt_tokens` an
    /// upper bound of the prompt (see [`BudgetEngine::prompt_token_bound`]),
    /// awaiting `exact`, the tokenizer's count, only when the bound is
    /// refused by a budget or a token rate limit. A refusal reserves and
    /// consumes nothing, so the second attempt is as if it were the first.
    /// The decision is the one the exact count alone would give; only an
    /// admitted request's reservation is the bound (settlement replaces it
    /// with the provider's figures).
    pub async fn admit_bounded(
        &self,
        req: &AdmitRequest<'_>,
        exact: impl std::future::Future<Output = u64>,
    ) -> Result<Admission, Refused> {
        let res = match self.try_admit(req, true).await {
            Ok(a) => Ok(a),
            Err(Denied::Final(r)) => Err(r),
            Err(Denied::Retry) => {
                let counted = AdmitRequest {
                    prompt_tokens: exact.await.min(req.prompt_tokens),
                    ..*req
                };
                self.admit_once(&counted).await
            }
        };
        self.count_admission(res)
    }

    fn count_admission(&self, res: Result<Admission, Refused>) -> Result<Admission, Refused> {
        let m = &self.inner.metrics;
        match &res {
            Ok(a) if a.downgrade_to().is_some() => {
                m.admissions.with_label_values(&["downgraded"]).inc()
            }
            Ok(a) if !a.is_reserved() && !self.is_empty() => {
                m.admissions.with_label_values(&["fail_open"]).inc()
            }
            Ok(_) => m.admissions.series(&["admitted"]).inc(),
            Err(r) => m.admissions.with_label_values(&[r.refusal.code()]).inc(),
        }
        res
    }

    #[cfg(test)]
    pub(crate) fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }
}

impl Inner {
    fn spent_key(&self, l: &Limit, span: &Span, scope: &str) -> String {
        spent_key(&self.prefix, l, span, scope)
    }

    fn reserved_key(&self, l: &Limit, scope: &str) -> String {
        key(&self.prefix, &["resv", &l.name, l.scope.kind(), scope])
    }
}
