//! Errors the mock answers with, before an API puts them in its own shape,
//! and the switch logic that decides when to inject one.

use http::StatusCode;

use super::state::State;
use super::switches::{ErrorSwitch, Switches};

/// An error response in the making.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    /// `None`: the API's stock text for the status.
    pub message: Option<String>,
    /// OpenAI's `param`.
    pub param: Option<&'static str>,
    /// OpenAI's `code`; `None` lets the API pick one for the status.
    pub code: Option<&'static str>,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub(super) fn status(status: StatusCode) -> Self {
        ApiError {
            status,
            message: None,
            param: None,
            code: None,
            retry_after: None,
        }
    }

    pub(super) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            message: Some(message.into()),
            ..ApiError::status(status)
        }
    }

    pub(super) fn bad_request(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(super) fn with_param(mut self, param: &'static str) -> Self {
        self.param = Some(param);
        self
    }

    pub(super) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

/// What the switches ask to go wrong with this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Answer with this status instead of doing the work.
    Status(StatusCode),
    /// Answer with the API's context-length 400 once the prompt is known.
    ContextLength,
}

/// Decides the fault for one request. With `fail_first: N` this counts the
/// request against its scenario, so call it once per request, after auth.
pub(crate) fn fault(state: &State, sw: &Switches) -> Option<Fault> {
    let injected = || match (sw.error, sw.status) {
        (Some(ErrorSwitch::ContextLength), _) => Some(Fault::ContextLength),
        (None, Some(code)) if code >= 400 => StatusCode::from_u16(code).ok().map(Fault::Status),
        _ => None,
    };
    match sw.fail_first {
        Some(n) => {
            let before = state.bump_scenario(sw.scenario.as_deref().unwrap_or(""));
            (before < n)
                .then(|| injected().unwrap_or(Fault::Status(StatusCode::SERVICE_UNAVAILABLE)))
        }
        None => injected(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockConfig;

    fn sw(f: impl FnOnce(&mut Switches)) -> Switches {
        let mut s = Switches::default();
        f(&mut s);
        s
    }

    #[test]
    fn status_and_error_switches() {
        let state = State::new(&MockConfig::default());
        assert_eq!(fault(&state, &Switches::default()), None);
        let s = sw(|s| s.status = Some(429));
        assert_eq!(
            fault(&state, &s),
            Some(Fault::Status(StatusCode::TOO_MANY_REQUESTS))
        );
        let s = sw(|s| s.status = Some(200));
        assert_eq!(fault(&state, &s), None);
        let s = sw(|s| s.error = Some(ErrorSwitch::ContextLength));
        assert_eq!(fault(&state, &s), Some(Fault::ContextLength));
    }

    #[test]
    fn fail_first_counts_per_scenario() {
        let state = State::new(&MockConfig::default());
        let a = sw(|s| {
            s.fail_first = Some(2);
            s.scenario = Some("a".into());
        });
        let b = sw(|s| {
            s.fail_first = Some(1);
            s.status = Some(529);
            s.scenario = Some("b".into());
        });
        let unavailable = Some(Fault::Status(StatusCode::SERVICE_UNAVAILABLE));
        assert_eq!(fault(&state, &a), unavailable);
        assert_eq!(
            fault(&state, &b),
            Some(Fault::Status(StatusCode::from_u16(529).unwrap()))
        );
        assert_eq!(fault(&state, &a), unavailable);
        assert_eq!(fault(&state, &a), None);
        assert_eq!(fault(&state, &b), None);
        state.clear();
        assert_eq!(fault(&state, &a), unavailable);
    }
}
