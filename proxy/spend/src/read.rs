//! Reading a budget's spend in its current window from Redis, without
//! changing anything: what the operator shows in `LlmPolicy` status. The
//! keys and windows come from the same functions admission and settlement
//! use, so a reader agrees with the proxies by construction.
//!
//! Only budgets whose scope has one value per config (`policy`,
//! `namespace`, `workload`) have one counter to read; `model` and `header`
//! budgets keep a counter per value and are reported as unknown (`None`).

use std::collections::HashMap;

use redis::aio::ConnectionLike;
use tollgate_config::{BudgetStore, Budgets, Limit};

use crate::keys::{fixed_scope_value, scope_hash, spent_key, Identity};
use crate::redis_conn::describe;
use crate::window::Span;

/// Redis did not answer a read; the detail names the error kind, never
/// the URL or password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("redis: {0}")]
pub struct ReadError(pub String);

/// One budget's spend in its current window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WindowSpend {
    /// Nano-USD.
    pub usd: u64,
    /// Input plus output tokens.
    pub tokens: u64,
}

/// The Redis key holding `limit`'s spend in the window containing `now_ms`
/// for proxies running as `identity`, and that window. `None` for `model`
/// and `header` scopes (one counter per value) and for the memory store.
pub fn spend_key(
    budgets: &Budgets,
    limit: &Limit,
    identity: &Identity,
    now_ms: i64,
) -> Option<(String, Span)> {
    let BudgetStore::Redis(r) = &budgets.store else {
        return None;
    };
    let value = fixed_scope_value(&limit.scope, identity)?;
    let span = Span::of(limit.window, budgets.time_zone, now_ms);
    Some((
        spent_key(&r.budget_key_prefix(), limit, &span, &scope_hash(value)),
        span,
    ))
}

/// The current window's spend of each of `budgets.limits`, in order, as the
/// proxies running as `identity` count it in Redis at `now_ms`; `None` where
/// [`spend_key`] is `None`. Reservations of requests in flight are not
/// included. Reads only; the caller bounds the time.
pub async fn read_spend<C: ConnectionLike>(
    conn: &mut C,
    budgets: &Budgets,
    identity: &Identity,
    now_ms: i64,
) -> Result<Vec<Option<WindowSpend>>, ReadError> {
    let mut out = Vec::with_capacity(budgets.limits.len());
    for l in &budgets.limits {
        let Some((k, span)) = spend_key(budgets, l, identity, now_ms) else {
            out.push(None);
            continue;
        };
        let spend = match span {
            Span::Calendar { .. } => {
                let (u, t): (Option<i64>, Option<i64>) = redis::cmd("HMGET")
                    .arg(&k)
                    .arg("u")
                    .arg("t")
                    .query_async(conn)
                    .await
                    .map_err(|e| ReadError(describe(&e)))?;
                WindowSpend {
                    usd: u.unwrap_or(0).max(0) as u64,
                    tokens: t.unwrap_or(0).max(0) as u64,
                }
            }
            Span::Rolling { .. } => {
                let fields: HashMap<String, i64> = redis::cmd("HGETALL")
                    .arg(&k)
                    .query_async(conn)
                    .await
                    .map_err(|e| ReadError(describe(&e)))?;
                sum_live(&fields, span.first_live_slot())
            }
        };
        out.push(Some(spend));
    }
    Ok(out)
}

/// A rolling counter's `u:<slot>` and `t:<slot>` fields from `first_live`
/// on, as the admission script sums them.
fn sum_live(fields: &HashMap<String, i64>, first_live: i64) -> WindowSpend {
    let mut s = WindowSpend::default();
    for (f, v) in fields {
        let Some((kind, slot)) = f.split_once(':') else {
            continue;
        };
        if slot.parse::<i64>().is_ok_and(|n| n >= first_live) {
            let v = (*v).max(0) as u64;
            match kind {
                "u" => s.usd = s.usd.saturating_add(v),
                "t" => s.tokens = s.tokens.saturating_add(v),
                _ => {}
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolling_sums_only_live_slots() {
        let fields = HashMap::from([
            ("u:9".to_string(), 5),
            ("u:10".to_string(), 7),
            ("t:10".to_string(), 3),
            ("t:12".to_string(), 4),
        ]);
        assert_eq!(sum_live(&fields, 10), WindowSpend { usd: 7, tokens: 7 });
    }
}
