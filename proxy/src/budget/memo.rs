//! What every admission would otherwise recompute, worked out once per
//! engine: the hashes of the scope values fixed for this sidecar (policy,
//! namespace, workload) and each limit's current calendar window, which
//! changes only when the window ends.

use std::sync::Mutex;

use tollgate_config::{Budgets, Scope};
use tollgate_spend::keys::{fixed_scope_value, scope_hash};
use tollgate_spend::{Identity, Span};

pub(crate) struct Memo {
    /// [`scope_hash`] of the policy, namespace and workload values.
    fixed: [String; 3],
    /// Per limit, the calendar window last computed, as (start, end) ms.
    windows: Vec<Mutex<Option<(i64, i64)>>>,
}

impl Memo {
    pub(crate) fn new(cfg: &Budgets, identity: &Identity) -> Memo {
        let hash = |s: Scope| scope_hash(fixed_scope_value(&s, identity).unwrap_or_default());
        Memo {
            fixed: [
                hash(Scope::Policy),
                hash(Scope::Namespace),
                hash(Scope::Workload),
            ],
            windows: cfg.limits.iter().map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The hash of `scope`'s value when it is fixed for this sidecar.
    pub(crate) fn fixed_scope(&self, scope: &Scope) -> Option<&str> {
        Some(match scope {
            Scope::Policy => &self.fixed[0],
            Scope::Namespace => &self.fixed[1],
            Scope::Workload => &self.fixed[2],
            Scope::Model | Scope::Header { .. } => return None,
        })
    }

    /// The window of limit `i` at `now_ms`: the remembered one while
    /// `now_ms` is inside it, else `compute()` (remembered when it is a
    /// calendar window; a rolling window is cheap to compute).
    pub(crate) fn window(&self, i: usize, now_ms: i64, compute: impl FnOnce() -> Span) -> Span {
        let Some(slot) = self.windows.get(i) else {
            return compute();
        };
        let mut slot = slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((start_ms, end_ms)) = *slot {
            if start_ms <= now_ms && now_ms < end_ms {
                return Span::Calendar { start_ms, end_ms };
            }
        }
        let span = compute();
        *slot = match span {
            Span::Calendar { start_ms, end_ms } => Some((start_ms, end_ms)),
            Span::Rolling { .. } => None,
        };
        span
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cal(start_ms: i64, end_ms: i64) -> Span {
        Span::Calendar { start_ms, end_ms }
    }

    #[test]
    fn a_window_is_remembered_until_it_ends() {
        let cfg = crate::budget::fixtures::budgets(
            "  limits:\n    - {name: m, scope: policy, window: month, usd: 1}\n",
        );
        let memo = Memo::new(&cfg, &crate::budget::fixtures::identity());
        let computed = std::cell::Cell::new(0);
        let at = |now_ms: i64, start_ms: i64, end_ms: i64| {
            memo.window(0, now_ms, || {
                computed.set(computed.get() + 1);
                cal(start_ms, end_ms)
            })
        };
        assert_eq!(at(10, 0, 100), cal(0, 100));
        // Inside the window: the remembered one, not a new computation.
        assert_eq!(at(99, 7, 7), cal(0, 100));
        assert_eq!(computed.get(), 1);
        // At its end: computed again.
        assert_eq!(at(100, 100, 200), cal(100, 200));
        assert_eq!(computed.get(), 2);
        // A rolling window is not remembered.
        let rolling = Span::Rolling {
            slot: 1,
            slot_ms: 10,
        };
        assert_eq!(memo.window(0, 250, || rolling), rolling);
        assert_eq!(at(150, 9, 9), cal(9, 9));
    }
}
