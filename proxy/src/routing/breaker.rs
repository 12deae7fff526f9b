//! Per-target circuit breaker.
//!
//! Closed: every attempt allowed; failures counted in a row and in a
//! sliding window. Open (ejected): attempts refused until the ejection ends;
//! each ejection in a row lasts twice the previous, up to a maximum.
//! Half-open: one probe at a time; its success closes the breaker, its
//! failure ejects again for longer.

use std::time::{Duration, Instant};

use tollgate_config::BreakerPolicy;

/// Breaker state, as exported in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

#[derive(Debug)]
pub struct Breaker {
    state: State,
    consecutive: u32,
    /// Ring of (time, failed) for the error-rate window.
    window: std::collections::VecDeque<(Instant, bool)>,
    ejected_until: Option<Instant>,
    /// Ejections in a row (reset when a probe succeeds).
    ejections: u32,
    probe_in_flight: bool,
}

/// What the breaker says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Yes,
    /// The attempt is the half-open probe; report its result.
    Probe,
    No,
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker {
            state: State::Closed,
            consecutive: 0,
            window: Default::default(),
            ejected_until: None,
            ejections: 0,
            probe_in_flight: false,
        }
    }
}

impl Breaker {
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether an attempt may go to this target now. Moves Open → HalfOpen
    /// when the ejection is over.
    pub fn admit(&mut self, p: &BreakerPolicy, now: Instant) -> Admit {
        if !p.enabled {
            return Admit::Yes;
        }
        match self.state {
            State::Closed => Admit::Yes,
            State::Open => {
                if self.ejected_until.is_some_and(|t| now >= t) {
                    self.state = State::HalfOpen;
                    self.probe_in_flight = true;
                    Admit::Probe
                } else {
                    Admit::No
                }
            }
            State::HalfOpen => {
                if self.probe_in_flight {
                    Admit::No
                } else {
                    self.probe_in_flight = true;
                    Admit::Probe
                }
            }
        }
    }

    /// True if the target would currently be skipped (without side effects).
    pub fn is_ejected(&self, p: &BreakerPolicy, now: Instant) -> bool {
        p.enabled
            && match self.state {
                State::Closed => false,
                State::Open => self.ejected_until.is_none_or(|t| now < t),
                State::HalfOpen => self.probe_in_flight,
            }
    }

    /// Records an attempt's result; returns the new state if it changed.
    pub fn record(&mut self, p: &BreakerPolicy, now: Instant, failed: bool) -> Option<State> {
        if !p.enabled {
            return None;
        }
        let before = self.state;
        while self
            .window
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > p.window)
        {
            self.window.pop_front();
        }
        self.window.push_back((now, failed));
        if self.window.len() > 4096 {
            self.window.pop_front();
        }
        match (self.state, failed) {
            (State::HalfOpen, false) => {
                self.state = State::Closed;
                self.consecutive = 0;
                self.ejections = 0;
                self.probe_in_flight = false;
                self.window.clear();
            }
            (State::HalfOpen, true) => {
                self.probe_in_flight = false;
                self.eject(p, now);
            }
            (State::Closed, false) => self.consecutive = 0,
            (State::Closed, true) => {
                self.consecutive += 1;
                let total = self.window.len() as u32;
                let failures = self.window.iter().filter(|(_, f)| *f).count() as f64;
                let rate_trip = total >= p.min_requests && failures / total as f64 >= p.error_rate;
                if self.consecutive >= p.consecutive_failures || rate_trip {
                    self.eject(p, now);
                }
            }
            // Results of attempts admitted before the breaker opened.
            (State::Open, _) => {}
        }
        (self.state != before).then_some(self.state)
    }

    fn eject(&mut self, p: &BreakerPolicy, now: Instant) {
        let factor = 1u32.checked_shl(self.ejections.min(16)).unwrap_or(u32::MAX);
        let d = p.base_ejection.saturating_mul(factor).min(p.max_ejection);
        self.ejections += 1;
        self.ejected_until = Some(now + d);
        self.state = State::Open;
        self.consecutive = 0;
        self.window.clear();
    }

    /// Time left in the current ejection.
    pub fn ejection_left(&self, now: Instant) -> Option<Duration> {
        self.ejected_until
            .and_then(|t| t.checked_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            enabled: true,
            consecutive_failures: 3,
            error_rate: 0.5,
            min_requests: 10,
            window: Duration::from_secs(30),
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(25),
        }
    }

    #[test]
    fn opens_skips_half_opens_and_closes() {
        let p = policy();
        let mut b = Breaker::default();
        let t0 = Instant::now();
        assert_eq!(b.record(&p, t0, true), None);
        assert_eq!(b.record(&p, t0, false), None, "a success resets the run");
        b.record(&p, t0, true);
        b.record(&p, t0, true);
        assert_eq!(b.record(&p, t0, true), Some(State::Open));
        assert_eq!(b.admit(&p, t0 + Duration::from_secs(9)), Admit::No);
        assert!(b.is_ejected(&p, t0 + Duration::from_secs(9)));
        // Ejection over: exactly one probe.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(b.admit(&p, t1), Admit::Probe);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.admit(&p, t1), Admit::No);
        // Probe fails: ejected twice as long.
        assert_eq!(b.record(&p, t1, true), Some(State::Open));
        assert_eq!(b.ejection_left(t1), Some(Duration::from_secs(20)));
        // Capped at maxEjection.
        let t2 = t1 + Duration::from_secs(20);
        assert_eq!(b.admit(&p, t2), Admit::Probe);
        b.record(&p, t2, true);
        assert_eq!(b.ejection_left(t2), Some(Duration::from_secs(25)));
        let t3 = t2 + Duration::from_secs(25);
        assert_eq!(b.admit(&p, t3), Admit::Probe);
        assert_eq!(b.record(&p, t3, false), Some(State::Closed));
        assert_eq!(b.admit(&p, t3), Admit::Yes);
    }

    #[test]
    fn error_rate_trips_after_min_requests() {
        let mut p = policy();
        p.consecutive_failures = 100;
        let mut b = Breaker::default();
        let t = Instant::now();
        for i in 0..9 {
            assert_eq!(b.record(&p, t, i % 2 == 0), None);
        }
        assert_eq!(b.record(&p, t, false), None, "4 of 10 failed: below 0.5");
        assert_eq!(b.record(&p, t, true), Some(State::Open), "6 of 11 failed");
    }

    #[test]
    fn old_results_leave_the_window() {
        let mut p = policy();
        p.consecutive_failures = 100;
        p.min_requests = 4;
        let mut b = Breaker::default();
        let t = Instant::now();
        for _ in 0..3 {
            b.record(&p, t, true);
        }
        let later = t + Duration::from_secs(31);
        for _ in 0..3 {
            assert_eq!(b.record(&p, later, false), None);
        }
        assert_eq!(b.record(&p, later, true), None, "1 of 4 in the window");
    }

    #[test]
    fn disabled_never_trips() {
        let mut p = policy();
        p.enabled = false;
        let mut b = Breaker::default();
        for _ in 0..10 {
            b.record(&p, Instant::now(), true);
        }
        assert_eq!(b.admit(&p, Instant::now()), Admit::Yes);
    }
}
