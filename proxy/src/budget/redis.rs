//! The Redis store: counters shared by every proxy that uses the same Redis
//! and key prefix. Each admission and settlement is one Lua script over all
//! of its keys (EVALSHA, loading the script when Redis answers NOSCRIPT), so
//! checks and reservations are atomic across limits and proxies.
//!
//! One multiplexed connection ([`Conn`]: to one Redis, to the master the
//! Sentinels name, or to each master of a Redis Cluster) reconnects by
//! itself; every call is bounded by the configured timeout so admission
//! never hangs.
//! Settlements that fail are queued and retried in the background until
//! Redis answers again, so spend of requests admitted while it was up is
//! not lost (up to [`MAX_PENDING`] settlements).
//!
//! Reservations are kept per lease epoch: a proxy that dies with requests
//! in flight stops holding their budget after the lease timeout.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use redis::Script;
use tollgate_spend::redis_conn::Conn;
use tollgate_spend::redis_conn::{describe, reply_lost};
use tollgate_spend::RedisSecrets;

use super::metrics::BudgetMetrics;
use super::plan::*;
use super::window::{Span, LEASE_EPOCHS};
use super::{BudgetError, StoreError};

#[cfg(test)]
mod tests;

/// Settlements kept while Redis is unreachable.
pub(super) const MAX_PENDING: usize = 100_000;
/// How long a settlement's `settled` mark lives: a retry of a settlement
/// Redis ran but whose reply was lost is a no-op within this time (a proxy
/// cut off from Redis for longer would apply it twice).
const SETTLED_TTL_MS: i64 = 2 * 3_600_000;
/// How often queued settlements are retried.
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// A calendar counter outlives its window by this much, for proxies whose
/// clocks run a little behind.
const CLOCK_SLACK_MS: i64 = 60_000;

pub(crate) struct RedisStore {
    settings: tollgate_config::RedisStore,
    /// Of the password and TLS files' contents: a reload that changed any
    /// opens a new connection.
    secrets_digest: [u8; 32],
    conn: Conn,
    admit_script: Script,
    settle_script: Script,
    pending: Mutex<VecDeque<SettlePlan>>,
    /// Queued settlements taken out by a flush and not yet written: still
    /// pending (a flush that fails puts them back).
    flushing: AtomicUsize,
    metrics: Arc<BudgetMetrics>,
    last_log_ms: AtomicI64,
}

impl RedisStore {
    /// Prepares the connection without connecting: the proxy starts even
    /// when Redis is down.
    pub(crate) fn open(
        settings: &tollgate_config::RedisStore,
        secrets: &RedisSecrets,
        metrics: Arc<BudgetMetrics>,
    ) -> Result<Arc<RedisStore>, BudgetError> {
        let conn = tollgate_spend::redis_conn::connect_lazy(settings, secrets)
            .map_err(BudgetError::RedisConfig)?;
        let store = Arc::new(RedisStore {
            settings: settings.clone(),
            secrets_digest: secrets.digest(),
            conn,
            admit_script: Script::new(include_str!("redis/admit.lua")),
            settle_script: Script::new(include_str!("redis/settle.lua")),
            pending: Mutex::new(VecDeque::new()),
            flushing: AtomicUsize::new(0),
            metrics,
            last_log_ms: AtomicI64::new(i64::MIN),
        });
        tokio::spawn(flusher(Arc::downgrade(&store)));
        Ok(store)
    }

    /// True when a reload can keep this store (and its connection).
    pub(crate) fn same(
        &self,
        settings: &tollgate_config::RedisStore,
        secrets: &RedisSecrets,
    ) -> bool {
        self.settings == *settings && self.secrets_digest == secrets.digest()
    }

    pub(crate) fn fail_open(&self) -> bool {
        self.settings.fail_mode == tollgate_config::FailMode::Open
    }

    async fn call(
        &self,
        op: &'static str,
        inv: &redis::ScriptInvocation<'_>,
    ) -> Result<Vec<i64>, StoreError> {
        let started = Instant::now();
        let mut conn = self.conn.clone();
        let res =
            match tokio::time::timeout(self.settings.timeout, inv.invoke_async(&mut conn)).await {
                Err(_) => Err(StoreError::Timeout(self.settings.timeout)),
                Ok(Err(e)) if reply_lost(&e) => Err(StoreError::Lost(describe(&e))),
                Ok(Err(e)) => Err(StoreError::Redis(describe(&e))),
                Ok(Ok(v)) => Ok(v),
            };
        self.metrics
            .store_duration
            .with_label_values(&["redis", op])
            .observe(started.elapsed().as_secs_f64());
        if let Err(e) = &res {
            self.metrics.store_error("redis", op);
            self.log(op, e);
        }
        res
    }

    /// Logs a failure at most every 10 s: an outage must not flood logs.
    fn log(&self, op: &str, e: &StoreError) {
        let now = super::clock::Clock::now_ms(&super::clock::SystemClock);
        let last = self.last_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= 10_000
            && self
                .last_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(op, error = %e, "budget store (redis) call failed");
        }
    }

    /// The keys of an admission's `admitted` and `settled` marks.
    fn marks(&self, id: &str) -> (String, String) {
        let p = self.settings.budget_key_prefix();
        (format!("{p}:adm:{id}"), format!("{p}:done:{id}"))
    }

    pub(crate) async fn admit(
        &self,
        plan: &AdmitPlan,
        lease_ms: i64,
    ) -> Result<AdmitResult, StoreError> {
        let mut inv = self.admit_script.prepare_invoke();
        let epoch_ms = super::window::lease_epoch_ms(lease_ms);
        inv.arg(plan.now_ms * 1000)
            .arg(plan.budgets.len())
            .arg(plan.rates.len())
            .arg(plan.lease_epoch)
            .arg(LEASE_EPOCHS)
            .arg((LEASE_EPOCHS + 1) * epoch_ms);
        for op in &plan.budgets {
            inv.key(&op.spent_key).key(&op.reserved_key);
            let (kind, expire) = kind_and_expiry(&op.span);
            inv.arg(kind)
                .arg(expire)
                .arg(op.span.first_live_slot())
                .arg(op.limit_usd.map_or(-1, |v| v as i64))
                .arg(op.limit_tokens.map_or(-1, |v| v as i64))
                .arg(op.usd)
                .arg(op.tokens)
                .arg(u8::from(op.enforce));
        }
        for op in &plan.rates {
            inv.key(&op.key).arg(op.limit).arg(op.cost);
        }
        let (admitted, settled) = self.marks(&plan.id);
        inv.key(admitted).key(settled);
        let v = self.call("admit", &inv).await?;
        let want = 1 + 6 * plan.budgets.len() + 2 * plan.rates.len();
        if v.len() != want {
            return Err(StoreError::Reply(format!(
                "admit returned {} values, expected {want}",
                v.len()
            )));
        }
        let u = |x: i64| x.max(0) as u64;
        let budgets = v[1..1 + 6 * plan.budgets.len()]
            .chunks(6)
            .map(|c| BudgetState {
                spent_usd: u(c[0]),
                spent_tokens: u(c[1]),
                reserved_usd: u(c[2]),
                reserved_tokens: u(c[3]),
                oldest_slot: (c[4] >= 0).then_some(c[4]),
                fits: c[5] == 1,
            })
            .collect();
        let rates = v[1 + 6 * plan.budgets.len()..]
            .chunks(2)
            .map(|c| RateState {
                allowed: c[0] == 1,
                tat_us: c[1] as f64,
            })
            .collect();
        Ok(AdmitResult {
            admitted: v[0] == 1,
            budgets,
            rates,
        })
    }

    async fn settle_now(&self, plan: &SettlePlan) -> Result<Vec<Totals>, StoreError> {
        let mut inv = self.settle_script.prepare_invoke();
        inv.arg(plan.now_ms * 1000)
            .arg(plan.budgets.len())
            .arg(plan.rates.len())
            .arg(SETTLED_TTL_MS);
        for op in &plan.budgets {
            inv.key(&op.spent_key).key(&op.reserved_key);
            let (kind, expire) = kind_and_expiry(&op.span);
            let slot = match op.span {
                Span::Rolling { slot, .. } => slot,
                Span::Calendar { .. } => 0,
            };
            inv.arg(kind)
                .arg(expire)
                .arg(slot)
                .arg(op.span.first_live_slot())
                .arg(op.lease_epoch)
                .arg(op.reserved_usd)
                .arg(op.reserved_tokens)
                .arg(op.usd)
                .arg(op.tokens);
        }
        for adj in &plan.rates {
            inv.key(&adj.key)
                .arg(adj.limit)
                .arg(adj.estimated)
                .arg(adj.actual);
        }
        let (admitted, settled) = self.marks(&plan.id);
        inv.key(admitted).key(settled);
        let v = self.call("settle", &inv).await?;
        if v.len() != 2 * plan.budgets.len() {
            return Err(StoreError::Reply(format!(
                "settle returned {} values, expected {}",
                v.len(),
                2 * plan.budgets.len()
            )));
        }
        Ok(v.chunks(2)
            .map(|c| Totals {
                usd: c[0].max(0) as u64,
                tokens: c[1].max(0) as u64,
            })
            .collect())
    }

    /// Settles now, or queues the settlement for the background flusher
    /// when Redis does not answer (`None`).
    pub(crate) async fn settle(&self, plan: SettlePlan) -> Option<Vec<Totals>> {
        if self.pending_len() == 0 {
            if let Ok(t) = self.settle_now(&plan).await {
                return Some(t);
            }
        }
        self.enqueue(plan);
        None
    }

    pub(crate) fn enqueue(&self, plan: SettlePlan) {
        let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= MAX_PENDING {
            q.pop_front();
            self.metrics.lost.inc();
        }
        q.push_back(plan);
        self.metrics.pending.set(q.len() as i64);
    }

    /// Settlements not yet written: queued, or being retried now.
    pub(crate) fn pending_len(&self) -> usize {
        let q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        q.len() + self.flushing.load(Ordering::SeqCst)
    }

    /// Writes queued settlements, oldest first, until one fails.
    pub(crate) async fn flush(&self) -> Result<(), BudgetError> {
        loop {
            let next = {
                let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
                let next = q.pop_front();
                if next.is_some() {
                    self.flushing.fetch_add(1, Ordering::SeqCst);
                }
                next
            };
            let Some(plan) = next else { return Ok(()) };
            let res = self.settle_now(&plan).await;
            let mut q = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            self.flushing.fetch_sub(1, Ordering::SeqCst);
            if let Err(source) = res {
                q.push_front(plan);
                let pending = q.len() + self.flushing.load(Ordering::SeqCst);
                self.metrics.pending.set(pending as i64);
                return Err(BudgetError::Unflushed { pending, source });
            }
            let pending = q.len() + self.flushing.load(Ordering::SeqCst);
            self.metrics.pending.set(pending as i64);
        }
    }
}

fn kind_and_expiry(span: &Span) -> (&'static str, i64) {
    match span {
        Span::Calendar { end_ms, .. } => ("c", end_ms + CLOCK_SLACK_MS),
        Span::Rolling { .. } => ("r", span.expires_ms()),
    }
}

/// Retries queued settlements until the store is dropped.
async fn flusher(store: Weak<RedisStore>) {
    loop {
        tokio::time::sleep(FLUSH_EVERY).await;
        let Some(s) = store.upgrade() else { return };
        if s.pending_len() > 0 {
            let _ = s.flush().await;
        }
    }
}
