//! What is safe to retry, and how long to wait.

use std::time::Duration;

use http::HeaderMap;
use rand::Rng;
use tollgate_config::RetryPolicy;

/// Statuses worth another attempt: rate limits and transient server errors
/// (529 is Anthropic's "overloaded").
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504 | 529)
}

/// Backoff before attempt `n + 1` (n ≥ 1 attempts made): exponential with
/// full jitter, at least the provider's `Retry-After` when it sent one.
pub(crate) fn backoff(
    p: &RetryPolicy,
    attempts_made: u32,
    retry_after: Option<Duration>,
) -> Duration {
    let exp = p
        .initial_backoff
        .saturating_mul(
            1u32.checked_shl(attempts_made.saturating_sub(1).min(20))
                .unwrap_or(u32::MAX),
        )
        .min(p.max_backoff);
    let jittered = Duration::from_secs_f64(rand::rng().random_range(0.0..=exp.as_secs_f64()));
    match retry_after {
        Some(ra) => ra.max(jittered),
        None => jittered,
    }
}

/// The provider's requested wait: `retry-after-ms`, or `Retry-After` in seconds.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0));
    }
    get("retry-after")
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(Duration::from_secs_f64)
}

/// True when an error body says the prompt did not fit the model's context
/// (OpenAI `context_length_exceeded`, Anthropic "prompt is too long").
pub(crate) fn is_context_length_error(status: u16, body: &[u8]) -> bool {
    if status != 400 && status != 413 {
        return false;
    }
    let text = String::from_utf8_lossy(body);
    text.contains("context_length_exceeded")
        || text.contains("prompt is too long")
        || text.contains("maximum context length")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            deadline: Duration::from_secs(10),
        }
    }

    #[test]
    fn full_jitter_within_the_exponential_ceiling() {
        let p = policy();
        for (n, ceiling) in [(1, 100), (2, 200), (3, 350), (9, 350)] {
            let max = (0..500).map(|_| backoff(&p, n, None)).max().unwrap();
            assert!(
                max <= Duration::from_millis(ceiling),
                "attempt {n}: {max:?}"
            );
            assert!(
                max >= Duration::from_millis(ceiling * 8 / 10),
                "jitter spans the range: {max:?}"
            );
        }
    }

    #[test]
    fn retry_after_is_honoured() {
        let p = policy();
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        let ra = retry_after(&h);
        assert_eq!(ra, Some(Duration::from_secs(2)));
        assert!(backoff(&p, 1, ra) >= Duration::from_secs(2));
        h.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.clear();
        h.insert(
            "retry-after",
            "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn classification() {
        assert!(retryable_status(429) && retryable_status(529) && retryable_status(503));
        assert!(!retryable_status(400) && !retryable_status(401) && !retryable_status(404));
        assert!(is_context_length_error(
            400,
            br#"{"error":{"code":"context_length_exceeded"}}"#
        ));
        assert!(is_context_length_error(400, br#"{"type":"error","error":{"message":"prompt is too long: 210000 tokens > 200000 maximum"}}"#));
        assert!(!is_context_length_error(
            400,
            br#"{"error":{"code":"invalid_value"}}"#
        ));
        assert!(!is_context_length_error(500, b"context_length_exceeded"));
    }
}
