//! The proxy's own books, read from its `/metrics` once traffic has
//! stopped and every request and settlement has ended (see README.md's
//! metric tables).

use std::time::{Duration, Instant};

use crate::budgets::metric_sum;
use crate::harness::{metric, ProxyProc};

/// The proxy's counters at the end of the run.
#[derive(Debug, Clone, Default)]
pub(crate) struct Ledger {
    /// `tollgate_requests_total`, every label: requests answered.
    pub requests: u64,
    pub in_flight: u64,
    /// Admissions by outcome (`admitted`, `fail_open`, `downgraded`, …).
    pub admitted: u64,
    pub fail_open: u64,
    pub settled_exact: u64,
    pub settled_estimated: u64,
    pub released: u64,
    pub dropped: u64,
    pub reservations_in_flight: u64,
    pub pending_settlements: u64,
    pub lost_settlements: u64,
    /// Settled input + output tokens, from the provider's usage and estimated.
    pub tokens_exact: u64,
    pub tokens_estimated: u64,
    /// `tollgate_budget_spend_usd_total` (a float counter).
    pub spend_usd: f64,
    pub store_errors: u64,
    pub stream_disconnects: u64,
    pub cache_entries: u64,
    pub cache_bytes: u64,
    pub cache_stored: u64,
    pub cache_hits: u64,
}

impl Ledger {
    pub(crate) fn of(m: &str) -> Ledger {
        let sum = |name: &str, labels: &[(&str, &str)]| metric_sum(m, name, labels) as u64;
        let one = |name: &str| metric(m, name, &[]).unwrap_or(0.0) as u64;
        let settlements = |outcome, est| {
            sum(
                "tollgate_budget_settlements_total",
                &[("outcome", outcome), ("estimated", est)],
            )
        };
        let tokens = |est| {
            ["input", "output"]
                .iter()
                .map(|t| {
                    sum(
                        "tollgate_budget_tokens_total",
                        &[("type", t), ("estimated", est)],
                    )
                })
                .sum()
        };
        let admissions = |outcome| sum("tollgate_budget_admissions_total", &[("outcome", outcome)]);
        Ledger {
            requests: sum("tollgate_requests_total", &[]),
            in_flight: one("tollgate_requests_in_flight"),
            admitted: admissions("admitted") + admissions("downgraded"),
            fail_open: admissions("fail_open"),
            settled_exact: settlements("settled", "false"),
            settled_estimated: settlements("settled", "true"),
            released: settlements("released", "false"),
            dropped: settlements("dropped", "false"),
            reservations_in_flight: one("tollgate_budget_reservations_in_flight"),
            pending_settlements: one("tollgate_budget_pending_settlements"),
            lost_settlements: one("tollgate_budget_lost_settlements_total"),
            tokens_exact: tokens("false"),
            tokens_estimated: tokens("true"),
            spend_usd: metric_sum(m, "tollgate_budget_spend_usd_total", &[]),
            store_errors: sum("tollgate_budget_store_errors_total", &[]),
            stream_disconnects: sum("tollgate_stream_client_disconnects_total", &[]),
            cache_entries: one("tollgate_cache_entries"),
            cache_bytes: one("tollgate_cache_bytes"),
            cache_stored: sum("tollgate_cache_stores_total", &[("result", "stored")]),
            cache_hits: sum("tollgate_cache_lookups_total", &[("result", "hit")]),
        }
    }

    /// Every admission ended: settled, released or dropped.
    pub(crate) fn ended(&self) -> u64 {
        self.settled_exact + self.settled_estimated + self.released + self.dropped
    }

    /// Nothing still running: every request answered and counted, no
    /// reservation held, no settlement waiting for Redis.
    fn quiet(&self, sent: u64) -> bool {
        self.requests == sent
            && self.in_flight == 0
            && self.reservations_in_flight == 0
            && self.pending_settlements == 0
            && self.ended() == self.admitted + self.fail_open
    }
}

/// Polls the proxy's metrics until it is quiet after `sent` requests, or
/// `within` passes; returns the last reading and whether it got quiet.
pub(crate) async fn quiesce(proxy: &ProxyProc, sent: u64, within: Duration) -> (Ledger, bool) {
    let deadline = Instant::now() + within;
    loop {
        let l = Ledger::of(&proxy.metrics().await);
        if l.quiet(sent) {
            return (l, true);
        }
        if Instant::now() > deadline {
            return (l, false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
