//! Why a request to a provider failed before its answer began. Reasons
//! come from the connection or the credential source, never from the
//! request's content.

use std::time::Duration;

/// A failed upstream request.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("credentials for provider `{provider}` are not available ({reason})")]
    CredentialsUnavailable { provider: String, reason: String },
    #[error("could not reach provider `{provider}`: {reason}")]
    Connect { provider: String, reason: String },
    /// No response headers in time (the caller sets and enforces the wait).
    #[error("provider `{provider}` did not respond within {}s", timeout.as_secs_f64())]
    Timeout { provider: String, timeout: Duration },
    #[error("provider `{provider}` sent an invalid response: {reason}")]
    Protocol { provider: String, reason: String },
    /// The model or query cannot be part of the provider's URL.
    #[error("invalid request: cannot form the upstream URL: {0}")]
    Uri(String),
}

impl UpstreamError {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            UpstreamError::CredentialsUnavailable { .. } => "credentials_unavailable",
            UpstreamError::Connect { .. } => "upstream_connect",
            UpstreamError::Timeout { .. } => "upstream_timeout",
            UpstreamError::Protocol { .. } => "upstream_protocol",
            UpstreamError::Uri(_) => "invalid_field",
        }
    }
}
