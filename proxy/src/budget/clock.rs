//! Wall-clock time for windows and rate limits, injectable so tests can move
//! across window boundaries without sleeping.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// For tests and fuzz targets only.
#[cfg(any(test, feature = "fuzzing"))]
mod fake {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::Clock;

    /// A clock that only moves when told to.
    #[derive(Debug, Default)]
    pub(crate) struct FakeClock(AtomicI64);

    impl FakeClock {
        pub(crate) fn new(now_ms: i64) -> FakeClock {
            FakeClock(AtomicI64::new(now_ms))
        }

        #[cfg(test)]
        pub(crate) fn set(&self, now_ms: i64) {
            self.0.store(now_ms, Ordering::SeqCst);
        }

        pub(crate) fn advance(&self, ms: i64) {
            self.0.fetch_add(ms, Ordering::SeqCst);
        }
    }

    impl Clock for FakeClock {
        fn now_ms(&self) -> i64 {
            self.0.load(Ordering::SeqCst)
        }
    }
}

#[cfg(any(test, feature = "fuzzing"))]
pub(crate) use fake::FakeClock;
