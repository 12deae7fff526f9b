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
            &usd_text(micro),
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

/// Micro-dollars as dollars with six decimals: what
/// `format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)` writes,
/// without the formatting machinery (once per admission).
fn usd_text(micro: u64) -> String {
    let mut s = String::with_capacity(24);
    push_decimal(&mut s, micro / 1_000_000);
    s.push('.');
    let frac = micro % 1_000_000;
    let mut div = 100_000;
    while div > 0 {
        s.push(char::from(b'0' + (frac / div % 10) as u8));
        div /= 10;
    }
    s
}

/// Appends `n` in decimal.
fn push_decimal(s: &mut String, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    s.extend(digits[i..].iter().map(|&d| char::from(d)));
}

/// OpenAI's reset format: `17ms`, `1.5s`, `6m0s`, `1h2m3s`.
fn reset(ms: f64) -> String {
    let ms = ms.ceil().max(0.0) as u64;
    if ms < 1000 {
        let mut s = String::with_capacity(6);
        push_decimal(&mut s, ms);
        s.push_str("ms");
        return s;
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
        assert_eq!(reset(0.0), "0ms");
        assert_eq!(reset(-3.0), "0ms");
        assert_eq!(reset(999.0), "999ms");
    }

    #[test]
    fn usd_is_written_as_format_writes_it() {
        for micro in [
            0,
            1,
            9,
            10,
            999_999,
            1_000_000,
            1_000_001,
            123_456_789,
            u64::MAX,
        ] {
            assert_eq!(
                usd_text(micro),
                format!("{}.{:06}", micro / 1_000_000, micro % 1_000_000)
            );
        }
        let mut s = String::new();
        push_decimal(&mut s, u64::MAX);
        assert_eq!(s, u64::MAX.to_string());
    }
}
