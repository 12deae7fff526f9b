//! State shared by every connection of one mock server.
//!
//! The hot path touches only atomics, a lock-free read of the defaults and
//! one short lock to push the record; the scenario map is locked only by
//! requests that use `x-mock-fail-first`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use serde::Serialize;
use tokio::sync::Notify;

use super::config::MockConfig;
use super::record::RecordedRequest;
use super::switches::Switches;

pub(crate) struct State {
    pub openai_key: Option<Box<str>>,
    pub anthropic_key: Option<Box<str>>,
    defaults: ArcSwap<Switches>,
    records: Mutex<Vec<RecordedRequest>>,
    recording: AtomicBool,
    scenarios: Mutex<HashMap<String, u32>>,
    pub stats: Arc<Stats>,
}

/// Counters about streams and requests; `changed` wakes anyone waiting on them.
#[derive(Default)]
pub(crate) struct Stats {
    pub active: AtomicUsize,
    pub cancelled: AtomicUsize,
    pub completed: AtomicUsize,
    pub aborted: AtomicUsize,
    pub requests: AtomicU64,
    pub changed: Notify,
}

/// `GET /__mock/stats`.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatsView {
    active_streams: usize,
    cancelled_streams: usize,
    completed_streams: usize,
    aborted_streams: usize,
    total_requests: u64,
    recorded_requests: usize,
}

// === impl State ===

impl State {
    pub(super) fn new(cfg: &MockConfig) -> Self {
        State {
            openai_key: cfg.openai_key.as_deref().map(Into::into),
            anthropic_key: cfg.anthropic_key.as_deref().map(Into::into),
            defaults: ArcSwap::from_pointee(cfg.defaults.clone()),
            records: Mutex::new(Vec::new()),
            recording: AtomicBool::new(true),
            scenarios: Mutex::new(HashMap::new()),
            stats: Arc::new(Stats::default()),
        }
    }

    pub(super) fn defaults(&self) -> arc_swap::Guard<Arc<Switches>> {
        self.defaults.load()
    }

    pub(super) fn set_defaults(&self, s: Switches) {
        self.defaults.store(Arc::new(s));
    }

    /// Counts a request and, unless recording is off, keeps the record
    /// `make` builds (only then is it built).
    pub(super) fn record(&self, make: impl FnOnce() -> RecordedRequest) {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        if self.recording.load(Ordering::Relaxed) {
            let r = make();
            lock(&self.records).push(r);
        }
        self.stats.changed.notify_waiters();
    }

    pub(super) fn set_recording(&self, on: bool) {
        self.recording.store(on, Ordering::Relaxed);
    }

    pub(super) fn records(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        lock(&self.records)
    }

    /// Forgets the records and the fail-first counters.
    pub(super) fn clear(&self) {
        lock(&self.records).clear();
        lock(&self.scenarios).clear();
    }

    /// Counts one more request of `scenario`; returns how many came before it.
    pub(super) fn bump_scenario(&self, scenario: &str) -> u32 {
        let mut map = lock(&self.scenarios);
        let seen = match map.get_mut(scenario) {
            Some(n) => n,
            None => map.entry(scenario.to_owned()).or_insert(0),
        };
        let before = *seen;
        *seen = seen.saturating_add(1);
        before
    }

    pub(super) fn stats_view(&self) -> StatsView {
        let s = &self.stats;
        StatsView {
            active_streams: s.active.load(Ordering::SeqCst),
            cancelled_streams: s.cancelled.load(Ordering::SeqCst),
            completed_streams: s.completed.load(Ordering::SeqCst),
            aborted_streams: s.aborted.load(Ordering::SeqCst),
            total_requests: s.requests.load(Ordering::SeqCst),
            recorded_requests: self.records().len(),
        }
    }
}

/// A panic while holding one of these locks leaves plain data behind; keep going.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
