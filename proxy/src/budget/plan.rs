//! What the engine asks a store to do, and what the store answers.
//!
//! The engine resolves limits, scopes, windows and prices into plans of
//! plain numbers and keys; a store only applies a plan atomically. Both
//! stores implement the same arithmetic (here for memory, in Lua for
//! Redis), so their tests share expectations.

use tollgate_spend::Span;

/// Rate limits are per minute.
pub(super) const RATE_PERIOD_US: f64 = 60_000_000.0;

/// One budget counter checked and reserved by an admission.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BudgetOp {
    pub spent_key: String,
    pub reserved_key: String,
    pub span: Span,
    /// Nano-USD; `None` when the limit counts tokens only.
    pub limit_usd: Option<u64>,
    pub limit_tokens: Option<u64>,
    /// The reservation.
    pub usd: u64,
    pub tokens: u64,
    /// A `reject` limit: the admission fails when it does not fit.
    pub enforce: bool,
}

/// One GCRA rate counter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateOp {
    pub key: String,
    /// Index into `Budgets::rate_limits`.
    pub rule: usize,
    /// Requests per minute (cost 1) rather than tokens per minute.
    pub requests: bool,
    /// Per minute.
    pub limit: u64,
    /// Units (1 request, or estimated tokens).
    pub cost: u64,
}

impl RateOp {
    /// Microseconds one unit occupies.
    pub(crate) fn emission_us(limit: u64) -> f64 {
        RATE_PERIOD_US / limit as f64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdmitPlan {
    /// Unique per admission attempt: the Redis store marks what it did
    /// under it, so a call whose reply was lost is applied once (see
    /// `redis/admit.lua` and `redis/settle.lua`). The memory store ignores it.
    pub id: String,
    pub now_ms: i64,
    /// Redis lease epoch of the reservations.
    pub lease_epoch: i64,
    pub budgets: Vec<BudgetOp>,
    pub rates: Vec<RateOp>,
}

/// A budget counter as the admission found it (before its own reservation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BudgetState {
    pub spent_usd: u64,
    pub spent_tokens: u64,
    pub reserved_usd: u64,
    pub reserved_tokens: u64,
    /// Rolling windows: the oldest slot holding spend.
    pub oldest_slot: Option<i64>,
    /// The reservation fit under the limit.
    pub fits: bool,
}

/// A rate counter after the admission.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateState {
    pub allowed: bool,
    /// Theoretical arrival time including this request (µs since the epoch).
    pub tat_us: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct AdmitResult {
    /// Every enforced budget fit and every rate allowed: all were reserved.
    pub admitted: bool,
    pub budgets: Vec<BudgetState>,
    pub rates: Vec<RateState>,
}

/// One budget counter settled.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SettleOp {
    /// The window current at settle time.
    pub spent_key: String,
    pub reserved_key: String,
    pub span: Span,
    pub lease_epoch: i64,
    pub reserved_usd: u64,
    pub reserved_tokens: u64,
    pub usd: u64,
    pub tokens: u64,
}

/// A TPM counter corrected from the estimate to actual tokens.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RateAdjust {
    pub key: String,
    pub limit: u64,
    /// Tokens the admission consumed (when it was applied).
    pub estimated: u64,
    /// Tokens the request actually used.
    pub actual: u64,
}

impl RateAdjust {
    /// The correction once the admission is known to have been applied.
    pub(crate) fn delta(&self) -> i64 {
        self.actual as i64 - self.estimated as i64
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SettlePlan {
    /// The admission's [`AdmitPlan::id`]: the settle script releases the
    /// reservation (and counts the estimate against token rates) only if
    /// the admission's mark is there, so a settlement of an admission
    /// whose reply was lost is right either way.
    pub id: String,
    pub now_ms: i64,
    pub budgets: Vec<SettleOp>,
    pub rates: Vec<RateAdjust>,
}

/// Spend in a window after a settlement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Totals {
    pub usd: u64,
    pub tokens: u64,
}

/// Whether `op`'s reservation fits on top of `s`.
pub(super) fn fits(op: &BudgetOp, s: &BudgetState) -> bool {
    let under = |limit: Option<u64>, spent: u64, reserved: u64, want: u64| {
        limit.is_none_or(|l| {
            u128::from(spent) + u128::from(reserved) + u128::from(want) <= u128::from(l)
        })
    };
    under(op.limit_usd, s.spent_usd, s.reserved_usd, op.usd)
        && under(
            op.limit_tokens,
            s.spent_tokens,
            s.reserved_tokens,
            op.tokens,
        )
}

/// GCRA: the arrival time `stored` (or none) moved by `op`. A cost above
/// the whole per-minute allowance is admitted only into a full bucket.
pub(super) fn gcra(stored: Option<f64>, now_us: f64, op: &RateOp) -> RateState {
    let e = RateOp::emission_us(op.limit);
    let tat = stored.unwrap_or(now_us).max(now_us);
    let new = tat + e * op.cost.min(op.limit) as f64;
    RateState {
        allowed: new - now_us <= RATE_PERIOD_US,
        tat_us: new,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_allows_a_minute_of_burst_then_spaces() {
        let op = RateOp {
            key: "k".into(),
            rule: 0,
            requests: true,
            limit: 60,
            cost: 1,
        };
        let mut tat = None;
        for _ in 0..60 {
            let s = gcra(tat, 0.0, &op);
            assert!(s.allowed);
            tat = Some(s.tat_us);
        }
        assert!(!gcra(tat, 0.0, &op).allowed);
        // One emission interval (1 s) later, one more fits.
        assert!(gcra(tat, 1_000_000.0, &op).allowed);
        let huge = RateOp { cost: 1_000, ..op };
        assert!(
            gcra(None, 0.0, &huge).allowed,
            "oversized fits a full bucket"
        );
        assert!(!gcra(Some(1.0), 0.0, &huge).allowed);
    }
}
