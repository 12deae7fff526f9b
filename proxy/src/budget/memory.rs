//! The in-process store: every counter behind one lock, so an admission
//! checks and reserves all its limits atomically. Saved to `persistPath`
//! by a background task and on [`MemoryStore::persist`]; loaded at start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::clock::Clock;
use super::metrics::BudgetMetrics;
use super::plan::*;
use super::window::{Span, ROLLING_SLOTS};
use super::BudgetError;

mod persist;
#[cfg(test)]
mod tests;

/// Spend in one calendar window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Calendar {
    usd: u64,
    tokens: u64,
    expires_ms: i64,
}

/// Spend per slot of a rolling window, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
struct Rolling {
    slots: Vec<(i64, u64, u64)>,
    slot_ms: i64,
}

impl Rolling {
    fn prune(&mut self, first_live: i64) {
        self.slots.retain(|s| s.0 >= first_live);
    }

    fn oldest(&self) -> Option<i64> {
        self.slots.iter().find(|s| s.1 > 0 || s.2 > 0).map(|s| s.0)
    }

    fn totals(&self) -> Totals {
        self.slots.iter().fold(Totals::default(), |t, s| Totals {
            usd: t.usd.saturating_add(s.1),
            tokens: t.tokens.saturating_add(s.2),
        })
    }
}

#[derive(Debug, Default)]
struct State {
    calendar: HashMap<String, Calendar>,
    rolling: HashMap<String, Rolling>,
    /// In-flight reservations (usd, tokens); never persisted.
    reserved: HashMap<String, (u64, u64)>,
    /// GCRA theoretical arrival times, µs.
    rates: HashMap<String, f64>,
}

impl State {
    /// Spend in the window, and the oldest rolling slot holding some.
    fn spent(&mut self, op_key: &str, span: &Span) -> (Totals, Option<i64>) {
        match span {
            Span::Calendar { .. } => {
                let t = self
                    .calendar
                    .get(op_key)
                    .map_or_else(Totals::default, |c| Totals {
                        usd: c.usd,
                        tokens: c.tokens,
                    });
                (t, None)
            }
            Span::Rolling { .. } => match self.rolling.get_mut(op_key) {
                Some(r) => {
                    r.prune(span.first_live_slot());
                    (r.totals(), r.oldest())
                }
                None => (Totals::default(), None),
            },
        }
    }

    fn add_spent(&mut self, op: &SettleOp) -> Totals {
        match op.span {
            Span::Calendar { .. } => {
                let c = self.calendar.entry(op.spent_key.clone()).or_default();
                c.usd = c.usd.saturating_add(op.usd);
                c.tokens = c.tokens.saturating_add(op.tokens);
                c.expires_ms = op.span.expires_ms();
                Totals {
                    usd: c.usd,
                    tokens: c.tokens,
                }
            }
            Span::Rolling { slot, slot_ms } => {
                let r = self.rolling.entry(op.spent_key.clone()).or_default();
                r.slot_ms = slot_ms;
                r.prune(op.span.first_live_slot());
                match r.slots.last_mut() {
                    Some(last) if last.0 == slot => {
                        last.1 = last.1.saturating_add(op.usd);
                        last.2 = last.2.saturating_add(op.tokens);
                    }
                    _ => r.slots.push((slot, op.usd, op.tokens)),
                }
                r.totals()
            }
        }
    }

    /// Drops counters whose window has passed.
    fn prune(&mut self, now_ms: i64) {
        self.calendar.retain(|_, c| c.expires_ms > now_ms);
        self.rolling.retain(|_, r| {
            let slot = now_ms.div_euclid(r.slot_ms.max(1));
            r.prune(slot - ROLLING_SLOTS + 1);
            !r.slots.is_empty()
        });
        let now_us = now_ms as f64 * 1000.0;
        self.rates.retain(|_, tat| *tat > now_us);
    }
}

/// Counters in memory.
pub(crate) struct MemoryStore {
    state: Mutex<State>,
    path: Option<PathBuf>,
    interval_ms: AtomicU64,
    dirty: AtomicBool,
    clock: Arc<dyn Clock>,
    metrics: Arc<BudgetMetrics>,
}

impl MemoryStore {
    /// Loads `path` if it exists and starts the background task that saves
    /// it and drops expired counters. A corrupt file is moved aside (and
    /// counted) rather than stopping the proxy.
    pub(crate) async fn open(
        path: Option<PathBuf>,
        interval: Duration,
        clock: Arc<dyn Clock>,
        metrics: Arc<BudgetMetrics>,
    ) -> Arc<MemoryStore> {
        let mut state = State::default();
        if let Some(p) = &path {
            match persist::load(p).await {
                Ok(Some(loaded)) => loaded.into_state(&mut state),
                Ok(None) => {}
                Err(e) => {
                    metrics.store_error("memory", "load");
                    tracing::error!(error = %e, "budget state file unreadable; moved aside, starting from zero");
                    persist::move_aside(p).await;
                }
            }
        }
        state.prune(clock.now_ms());
        let store = Arc::new(MemoryStore {
            state: Mutex::new(state),
            path,
            interval_ms: AtomicU64::new(interval.as_millis() as u64),
            dirty: AtomicBool::new(false),
            clock,
            metrics,
        });
        tokio::spawn(background(Arc::downgrade(&store)));
        store
    }

    pub(crate) fn path(&self) -> Option<&PathBuf> {
        self.path.as_ref()
    }

    /// A reload may change the interval of a reused store.
    pub(crate) fn set_interval(&self, interval: Duration) {
        self.interval_ms
            .store(interval.as_millis() as u64, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves counters consistent enough
        // (every update is a few additions); keep serving.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn admit(&self, plan: &AdmitPlan) -> AdmitResult {
        let mut st = self.lock();
        let mut admitted = true;
        let budgets: Vec<BudgetState> = plan
            .budgets
            .iter()
            .map(|op| {
                let (spent, oldest_slot) = st.spent(&op.spent_key, &op.span);
                let (ru, rt) = st.reserved.get(&op.reserved_key).copied().unwrap_or((0, 0));
                let mut s = BudgetState {
                    spent_usd: spent.usd,
                    spent_tokens: spent.tokens,
                    reserved_usd: ru,
                    reserved_tokens: rt,
                    oldest_slot,
                    fits: false,
                };
                s.fits = fits(op, &s);
                admitted &= s.fits || !op.enforce;
                s
            })
            .collect();
        let now_us = plan.now_ms as f64 * 1000.0;
        let rates: Vec<RateState> = plan
            .rates
            .iter()
            .map(|op| {
                let s = gcra(st.rates.get(&op.key).copied(), now_us, op);
                admitted &= s.allowed;
                s
            })
            .collect();
        if admitted {
            for op in &plan.budgets {
                let r = st.reserved.entry(op.reserved_key.clone()).or_default();
                r.0 = r.0.saturating_add(op.usd);
                r.1 = r.1.saturating_add(op.tokens);
            }
            for (op, s) in plan.rates.iter().zip(&rates) {
                st.rates.insert(op.key.clone(), s.tat_us);
            }
        }
        AdmitResult {
            admitted,
            budgets,
            rates,
        }
    }

    pub(crate) fn settle(&self, plan: &SettlePlan) -> Vec<Totals> {
        let mut st = self.lock();
        let totals = plan
            .budgets
            .iter()
            .map(|op| {
                if let Some(r) = st.reserved.get_mut(&op.reserved_key) {
                    r.0 = r.0.saturating_sub(op.reserved_usd);
                    r.1 = r.1.saturating_sub(op.reserved_tokens);
                    if *r == (0, 0) {
                        st.reserved.remove(&op.reserved_key);
                    }
                }
                st.add_spent(op)
            })
            .collect();
        let now_us = plan.now_ms as f64 * 1000.0;
        for adj in &plan.rates {
            let delta = adj.delta();
            let shift = delta as f64 * RateOp::emission_us(adj.limit);
            match st.rates.get_mut(&adj.key) {
                Some(tat) => *tat = (*tat + shift).max(now_us),
                None if delta > 0 => {
                    st.rates.insert(adj.key.clone(), now_us + shift);
                }
                None => {}
            }
        }
        drop(st);
        self.dirty.store(true, Ordering::Relaxed);
        totals
    }

    /// Writes the file now (no-op without `persistPath`).
    pub(crate) async fn persist(&self) -> Result<(), BudgetError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let snapshot = {
            let mut st = self.lock();
            st.prune(self.clock.now_ms());
            persist::Snapshot::of(&st, self.clock.now_ms())
        };
        self.dirty.store(false, Ordering::Relaxed);
        persist::save(path, &snapshot).await.inspect_err(|_| {
            self.dirty.store(true, Ordering::Relaxed);
            self.metrics.store_error("memory", "persist");
        })
    }

    #[cfg(test)]
    pub(crate) fn spent_for_test(&self, key: &str) -> u64 {
        self.lock().calendar.get(key).map_or(0, |c| c.usd)
    }

    #[cfg(test)]
    pub(crate) fn reserved_for_test(&self, key: &str) -> (u64, u64) {
        self.lock().reserved.get(key).copied().unwrap_or((0, 0))
    }
}

impl Drop for MemoryStore {
    /// The last engine using this store is gone (a reload moved to another
    /// store): save what it counted.
    fn drop(&mut self) {
        let Some(path) = &self.path else { return };
        let st = self.state.get_mut().unwrap_or_else(|p| p.into_inner());
        let snapshot = persist::Snapshot::of(st, self.clock.now_ms());
        if let Err(e) = persist::save_blocking(path, &snapshot) {
            tracing::error!(error = %e, "could not save budget state of a retired store");
        }
    }
}

/// Saves every interval (when something changed) and prunes, until the
/// store is dropped.
async fn background(store: Weak<MemoryStore>) {
    loop {
        let interval = match store.upgrade() {
            Some(s) => Duration::from_millis(s.interval_ms.load(Ordering::Relaxed).max(100)),
            None => return,
        };
        tokio::time::sleep(interval).await;
        let Some(s) = store.upgrade() else { return };
        if s.path.is_some() && s.dirty.load(Ordering::Relaxed) {
            if let Err(e) = s.persist().await {
                tracing::warn!(error = %e, "could not save budget state");
            }
        } else {
            let now = s.clock.now_ms();
            s.lock().prune(now);
        }
    }
}
