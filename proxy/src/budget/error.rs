//! Why a request is refused admission, and what can go wrong building or
//! running the engine. Messages name limits and headers from the config,
//! never a header's value.

use std::path::PathBuf;
use std::time::Duration;

use http::StatusCode;

/// A request the budget engine does not admit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("budget `{limit}` is exhausted for the current window; retry in {}s", ceil_secs(*.retry_after))]
    BudgetExceeded {
        limit: String,
        retry_after: Duration,
    },
    #[error("rate limit `{limit}` exceeded; retry in {}s", ceil_secs(*.retry_after))]
    RateLimited {
        limit: String,
        retry_after: Duration,
    },
    #[error("budget `{limit}` requires the `{header}` request header")]
    MissingHeader { limit: String, header: String },
    #[error("no price is known for model `{model}`, and a USD budget applies")]
    UnknownPrice { model: String },
    #[error("the budget store is unavailable ({reason}); retry shortly")]
    StoreUnavailable { reason: String },
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::BudgetExceeded { .. } | Refusal::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Refusal::MissingHeader { .. } | Refusal::UnknownPrice { .. } => StatusCode::BAD_REQUEST,
            Refusal::StoreUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The error `code` in the response body; also the metric label.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::BudgetExceeded { .. } => "budget_exceeded",
            Refusal::RateLimited { .. } => "rate_limit_exceeded",
            Refusal::MissingHeader { .. } => "missing_budget_header",
            Refusal::UnknownPrice { .. } => "unknown_model_price",
            Refusal::StoreUnavailable { .. } => "budget_store_unavailable",
        }
    }

    pub fn metric_label(&self) -> &'static str {
        self.code()
    }

    /// For `Retry-After` (whole seconds, rounded up, at least 1).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Refusal::BudgetExceeded { retry_after, .. }
            | Refusal::RateLimited { retry_after, .. } => Some(*retry_after),
            Refusal::StoreUnavailable { .. } => Some(Duration::from_secs(1)),
            _ => None,
        }
    }

    /// `Retry-After` header value: whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after().map(|d| ceil_secs(d).max(1))
    }
}

/// A counter store call that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("timed out after {}ms", .0.as_millis())]
    Timeout(Duration),
    /// Redis' error kind and message (never the URL or password).
    #[error("redis: {0}")]
    Redis(String),
    /// [`StoreError::Redis`] for a call that may have run, its reply lost
    /// (`redis_conn::reply_lost`).
    #[error("redis: {0}")]
    Lost(String),
    #[error("unexpected reply: {0}")]
    Reply(String),
}

impl StoreError {
    /// The call may have reached Redis and run there, its reply lost: a
    /// timeout or a connection dropped mid-call (a refused connection sent
    /// nothing).
    pub fn maybe_applied(&self) -> bool {
        matches!(self, StoreError::Timeout(_) | StoreError::Lost(_))
    }

    pub fn metric_label(&self) -> &'static str {
        match self {
            StoreError::Timeout(_) => "timeout",
            StoreError::Redis(_) | StoreError::Lost(_) => "redis",
            StoreError::Reply(_) => "reply",
        }
    }
}

/// Building or persisting the engine failed.
#[derive(Debug, thiserror::Error)]
pub enum BudgetError {
    /// The password or a TLS file (the error names which, never its contents).
    #[error(transparent)]
    Secrets(#[from] tollgate_spend::SecretError),
    #[error("invalid Redis settings: {0}")]
    RedisConfig(String),
    #[error("cannot write budget state to {path}: {source}")]
    Persist {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("budget state file {path} is unreadable: {reason}")]
    StateFile { path: PathBuf, reason: String },
    #[error("{pending} budget settlements could not be written to Redis: {source}")]
    Unflushed {
        pending: usize,
        #[source]
        source: StoreError,
    },
}

impl BudgetError {
    pub fn metric_label(&self) -> &'static str {
        match self {
            BudgetError::Secrets(e) => e.metric_label(),
            BudgetError::RedisConfig(_) => "redis_config",
            BudgetError::Persist { .. } => "persist",
            BudgetError::StateFile { .. } => "state_file",
            BudgetError::Unflushed { .. } => "unflushed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_codes_and_messages() {
        let r = Refusal::BudgetExceeded {
            limit: "team-daily".into(),
            retry_after: Duration::from_millis(1500),
        };
        assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(r.code(), "budget_exceeded");
        assert_eq!(r.retry_after_secs(), Some(2));
        assert_eq!(
            r.to_string(),
            "budget `team-daily` is exhausted for the current window; retry in 2s"
        );
        let cases = [
            (
                Refusal::RateLimited {
                    limit: "u".into(),
                    retry_after: Duration::ZERO,
                },
                429,
                "rate_limit_exceeded",
            ),
            (
                Refusal::MissingHeader {
                    limit: "l".into(),
                    header: "x-team".into(),
                },
                400,
                "missing_budget_header",
            ),
            (
                Refusal::UnknownPrice { model: "m".into() },
                400,
                "unknown_model_price",
            ),
            (
                Refusal::StoreUnavailable {
                    reason: "timeout".into(),
                },
                503,
                "budget_store_unavailable",
            ),
        ];
        for (r, status, code) in cases {
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.code(), code);
        }
    }
}
