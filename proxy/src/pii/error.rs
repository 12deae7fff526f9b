//! Refusals by the PII policy or the prompt guard. Messages name entity
//! types and rules, never the values that matched.

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PiiError {
    #[error("request blocked by the PII policy: it contains {}", .types.join(", "))]
    Blocked { types: Vec<String> },
    #[error("request blocked by the prompt guard: {} matched", .rules.join(", "))]
    Guard { rules: Vec<&'static str> },
}

impl PiiError {
    /// Low-cardinality label for metrics, logs and the error code.
    pub fn metric_label(&self) -> &'static str {
        match self {
            PiiError::Blocked { .. } => "pii_blocked",
            PiiError::Guard { .. } => "prompt_blocked",
        }
    }
}
