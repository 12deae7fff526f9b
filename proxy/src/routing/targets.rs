//! State kept per target (provider + model) across requests and config
//! reloads: circuit breaker, requests in flight, latency EWMA.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use super::breaker::Breaker;

/// Live statistics of one target.
#[derive(Debug)]
pub struct TargetStats {
    /// `provider/model`, the metric label.
    pub key: Arc<str>,
    pub breaker: Mutex<Breaker>,
    outstanding: AtomicUsize,
    /// Microseconds to first byte, exponentially weighted; 0 = no sample yet.
    ewma_micros: AtomicU64,
}

impl TargetStats {
    fn new(key: &str) -> TargetStats {
        TargetStats {
            key: Arc::from(key),
            breaker: Mutex::new(Breaker::default()),
            outstanding: AtomicUsize::new(0),
            ewma_micros: AtomicU64::new(0),
        }
    }

    pub fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Marks a request in flight until the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub fn ewma(&self) -> Option<Duration> {
        match self.ewma_micros.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// Folds in a latency sample (weight 0.3 for the new sample).
    pub fn observe_latency(&self, d: Duration) {
        let sample = (d.as_micros() as u64).max(1);
        let _ = self
            .ewma_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(
                    if old == 0 {
                        sample
                    } else {
                        (old * 7 + sample * 3) / 10
                    }
                    .max(1),
                )
            });
    }
}

/// Decrements the target's in-flight count on drop.
pub struct InFlight(Arc<TargetStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every target's stats, and round-robin cursors per route.
#[derive(Debug, Default)]
pub struct Targets {
    stats: RwLock<HashMap<Arc<str>, Arc<TargetStats>>>,
    cursors: RwLock<HashMap<String, Arc<AtomicUsize>>>,
}

impl Targets {
    /// Stats for `key`, created on first use.
    pub fn get(&self, key: &str) -> Arc<TargetStats> {
        if let Some(s) = self.stats.read().expect("lock").get(key) {
            return s.clone();
        }
        let mut map = self.stats.write().expect("lock");
        map.entry(Arc::from(key))
            .or_insert_with(|| Arc::new(TargetStats::new(key)))
            .clone()
    }

    /// The round-robin cursor of `route`.
    pub fn cursor(&self, route: &str) -> Arc<AtomicUsize> {
        if let Some(c) = self.cursors.read().expect("lock").get(route) {
            return c.clone();
        }
        let mut map = self.cursors.write().expect("lock");
        map.entry(route.to_string()).or_default().clone()
    }

    /// Snapshot for metrics: every known target.
    pub fn all(&self) -> Vec<Arc<TargetStats>> {
        self.stats.read().expect("lock").values().cloned().collect()
    }
}
