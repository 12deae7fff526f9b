//! The rate-limit and budget headers an admission (or a refusal) answers
//! with.

use http::{HeaderName, HeaderValue};

use super::plan::*;

/// Response headers for an admission; `admitted` counts the request's own
/// reservation as spent (a refusal reserved nothing).
pub(crate) fn headers(
    plan: &AdmitPlan,
    result: &AdmitResult,
    admitted: bool,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = Vec::with_capacity(8);
    let remaining = |limit: Option<u64>, spent: u64, reserved: u64, own: u64| {
        let own = if admitted { own } else { 0 };
        limit.map(|l| l.saturating_sub(spent.saturating_add(reserved).saturating_add(own)))
    };
    let usd = plan
        .budgets
        .iter()
        .zip(&result.budgets)
        .filter_map(|(op, s)| remaining(op.limit_usd, s.spent_usd, s.reserved_usd, op.usd))
        .min();
    let tokens = plan
        .budgets
        .iter()
        .zip(&result.budgets)
        .filter_map(|(op, s)| {
            remaining(
                op.limit_tokens,
                s.spent_tokens,
                s.reserved_tokens,
                op.tokens,
            )
        })
        .min();
    if let Some(nano) = usd {
        let micro = nano / 1000;
        push(
            &mut out,
            "x-tollgate-budget-remaining-usd",
            &format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000),
        );
    }
    if let Some(t) = tokens {
        out.push((
            HeaderName::from_static("x-tollgate-budget-remaining-tokens"),
            HeaderValue::from(t),
        ));
    }
    let now_us = plan.now_ms as f64 * 1000.0;
    // Names parsed once, not per request.
    const RATE: [(bool, [&str; 3]); 2] = [
        (
            true,
            [
                "x-ratelimit-limit-requests",
                "x-ratelimit-remaining-requests",
                "x-ratelimit-reset-requests",
            ],
        ),
        (
            false,
            [
                "x-ratelimit-limit-tokens",
                "x-ratelimit-remaining-tokens",
                "x-ratelimit-reset-tokens",
            ],
        ),
    ];
    for (requests, [limit_name, left_name, reset_name]) in RATE {
        let tightest = plan
            .rates
            .iter()
            .zip(&result.rates)
            .filter(|(op, _)| op.requests == requests)
            .map(|(op, s)| {
                let e = RateOp::emission_us(op.limit);
                let used = (s.tat_us - now_us).max(0.0);
                let left = ((RATE_PERIOD_US - used) / e).floor().max(0.0) as u64;
                (left.min(op.limit), op.limit, used)
            })
            .min_by_key(|t| t.0);
        if let Some((left, limit, used_us)) = tightest {
            out.push((
                HeaderName::from_static(limit_name),
                HeaderValue::from(limit),
            ));
            out.push((HeaderName::from_static(left_name), HeaderValue::from(left)));
            push(&mut out, reset_name, &reset(used_us / 1000.0));
        }
    }
    out
}

/// `name` is a lowercase constant; `value` is ASCII digits and letters.
fn push(out: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        out.push((HeaderName::from_static(name), v));
    }
}

/// OpenAI's reset format: `17ms`, `1.5s`, `6m0s`, `1h2m3s`.
fn reset(ms: f64) -> String {
    let ms = ms.ceil().max(0.0) as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    if ms < 60_000 {
        let s = format!("{:.3}", ms as f64 / 1000.0);
        return format!("{}s", s.trim_end_matches('0').trim_end_matches('.'));
    }
    let secs = ms.div_ceil(1000);
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else {
        format!("{m}m{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_format() {
        assert_eq!(reset(17.2), "18ms");
        assert_eq!(reset(1000.0), "1s");
        assert_eq!(reset(1500.0), "1.5s");
        assert_eq!(reset(360_000.0), "6m0s");
        assert_eq!(reset(3_723_000.0), "1h2m3s");
    }
}
