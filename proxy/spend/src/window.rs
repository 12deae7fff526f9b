//! Where "now" falls in a budget window: calendar windows aligned to the
//! configured time zone (DST and month lengths included), rolling windows
//! as 60 sliding slots, and the lease epochs that expire forgotten
//! reservations in Redis.

use chrono::{DateTime, Datelike, NaiveDate, Offset, TimeZone};
use tollgate_config::{Tz, Window};

/// Slots a rolling window is split into.
pub const ROLLING_SLOTS: i64 = 60;
/// A lease is counted in its epoch and this many following ones.
pub const LEASE_EPOCHS: i64 = 4;

/// The window containing `now`, as the store needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// `[start_ms, end_ms)`; the counter key carries `start_ms`.
    Calendar { start_ms: i64, end_ms: i64 },
    /// Slot `slot` of `slot_ms` each; the window is the last 60 slots.
    Rolling { slot: i64, slot_ms: i64 },
}

impl Span {
    /// The window containing `now_ms`.
    pub fn of(window: Window, tz: Tz, now_ms: i64) -> Span {
        match window {
            Window::Minute => fixed(tz, now_ms, 60_000),
            Window::Hour => fixed(tz, now_ms, 3_600_000),
            Window::Day => {
                let date = local_date(tz, now_ms);
                Span::Calendar {
                    start_ms: midnight(tz, date),
                    end_ms: midnight(tz, date.succ_opt().unwrap_or(date)),
                }
            }
            Window::Month => {
                let date = local_date(tz, now_ms);
                let first = date.with_day(1).unwrap_or(date);
                let next = if first.month() == 12 {
                    NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
                } else {
                    NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
                }
                .unwrap_or(first);
                Span::Calendar {
                    start_ms: midnight(tz, first),
                    end_ms: midnight(tz, next),
                }
            }
            Window::Rolling(d) => {
                let slot_ms = (d.as_millis() as i64 / ROLLING_SLOTS).max(1);
                Span::Rolling {
                    slot: now_ms.div_euclid(slot_ms),
                    slot_ms,
                }
            }
        }
    }

    /// Until the window frees budget: its end for calendar windows; for
    /// rolling ones, until the oldest slot holding spend leaves (or the next
    /// slot boundary when only reservations fill it).
    pub fn retry_after_ms(&self, now_ms: i64, oldest_slot: Option<i64>) -> i64 {
        match *self {
            Span::Calendar { end_ms, .. } => (end_ms - now_ms).max(1),
            Span::Rolling { slot, slot_ms } => {
                let frees = oldest_slot.map_or(slot + 1, |s| s + ROLLING_SLOTS);
                (frees * slot_ms - now_ms).max(1)
            }
        }
    }

    /// When the counter stops mattering and may be deleted.
    pub fn expires_ms(&self) -> i64 {
        match *self {
            Span::Calendar { end_ms, .. } => end_ms,
            Span::Rolling { slot, slot_ms } => (slot + ROLLING_SLOTS) * slot_ms,
        }
    }

    /// The oldest rolling slot still inside the window.
    pub fn first_live_slot(&self) -> i64 {
        match *self {
            Span::Calendar { .. } => 0,
            Span::Rolling { slot, .. } => slot - ROLLING_SLOTS + 1,
        }
    }
}

/// Minute and hour windows: fixed lengths aligned to the zone's offset at
/// `now` (offsets of :30 and :45 move the hour boundary; DST changes happen
/// on hour boundaries, so the offset at `now` is the right one).
fn fixed(tz: Tz, now_ms: i64, len_ms: i64) -> Span {
    let offset_ms = offset_ms(tz, now_ms);
    let local = now_ms + offset_ms;
    let start_ms = local.div_euclid(len_ms) * len_ms - offset_ms;
    Span::Calendar {
        start_ms,
        end_ms: start_ms + len_ms,
    }
}

fn offset_ms(tz: Tz, now_ms: i64) -> i64 {
    let utc = DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    i64::from(utc.with_timezone(&tz).offset().fix().local_minus_utc()) * 1000
}

fn local_date(tz: Tz, now_ms: i64) -> NaiveDate {
    let utc = DateTime::from_timestamp_millis(now_ms).unwrap_or_default();
    utc.with_timezone(&tz).date_naive()
}

/// The first instant of `date` in `tz` (the day may start after 00:00 where
/// a DST change skips midnight).
fn midnight(tz: Tz, date: NaiveDate) -> i64 {
    for hour in 0..4 {
        let Some(naive) = date.and_hms_opt(hour, 0, 0) else {
            break;
        };
        if let Some(t) = tz.from_local_datetime(&naive).earliest() {
            return t.timestamp_millis();
        }
    }
    date.and_hms_opt(0, 0, 0)
        .unwrap_or_default()
        .and_utc()
        .timestamp_millis()
}

/// Lease epoch of `now` for reservations of `lease_ms`.
pub fn lease_epoch(lease_ms: i64, now_ms: i64) -> i64 {
    now_ms.div_euclid(lease_epoch_ms(lease_ms))
}

/// Length of one lease epoch: reservations live `LEASE_EPOCHS` to
/// `LEASE_EPOCHS + 1` epochs, i.e. between the lease timeout and 1.25 times it.
pub fn lease_epoch_ms(lease_ms: i64) -> i64 {
    (lease_ms / LEASE_EPOCHS).max(1)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono_tz::{America, Asia, Europe};

    use super::*;

    fn ms(rfc3339: &str) -> i64 {
        DateTime::parse_from_rfc3339(rfc3339)
            .unwrap()
            .timestamp_millis()
    }

    fn cal(window: Window, tz: Tz, at: &str) -> (i64, i64) {
        match Span::of(window, tz, ms(at)) {
            Span::Calendar { start_ms, end_ms } => (start_ms, end_ms),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn day_in_berlin_starts_at_local_midnight() {
        let (s, e) = cal(Window::Day, Europe::Berlin, "2025-01-15T23:30:00Z");
        assert_eq!(s, ms("2025-01-16T00:00:00+01:00"));
        assert_eq!(e, ms("2025-01-17T00:00:00+01:00"));
        // Spring forward: the day of 2025-03-30 is 23 hours long.
        let (s, e) = cal(Window::Day, Europe::Berlin, "2025-03-30T12:00:00Z");
        assert_eq!(e - s, 23 * 3_600_000);
    }

    #[test]
    fn month_boundaries_in_a_non_utc_zone() {
        // 2025-01-31 23:30 UTC is already February in Berlin.
        let (s, e) = cal(Window::Month, Europe::Berlin, "2025-01-31T23:30:00Z");
        assert_eq!(s, ms("2025-02-01T00:00:00+01:00"));
        assert_eq!(e, ms("2025-03-01T00:00:00+01:00"));
        // December rolls into the next year; New York is behind UTC.
        let (s, e) = cal(Window::Month, America::New_York, "2026-01-01T03:00:00Z");
        assert_eq!(s, ms("2025-12-01T00:00:00-05:00"));
        assert_eq!(e, ms("2026-01-01T00:00:00-05:00"));
        // Leap February.
        let (s, e) = cal(Window::Month, Tz::UTC, "2028-02-10T00:00:00Z");
        assert_eq!(e - s, 29 * 86_400_000);
    }

    #[test]
    fn hour_follows_half_hour_offsets() {
        let (s, e) = cal(Window::Hour, Asia::Kolkata, "2025-05-05T10:10:00Z");
        assert_eq!(s, ms("2025-05-05T09:30:00Z"));
        assert_eq!(e, ms("2025-05-05T10:30:00Z"));
        let (s, e) = cal(Window::Minute, Tz::UTC, "2025-05-05T10:10:59.999Z");
        assert_eq!(
            (s, e),
            (ms("2025-05-05T10:10:00Z"), ms("2025-05-05T10:11:00Z"))
        );
    }

    #[test]
    fn rolling_slots() {
        let span = Span::of(Window::Rolling(Duration::from_secs(3600)), Tz::UTC, 125_000);
        assert_eq!(
            span,
            Span::Rolling {
                slot: 2,
                slot_ms: 60_000
            }
        );
        assert_eq!(span.retry_after_ms(125_000, None), 55_000);
        assert_eq!(span.retry_after_ms(125_000, Some(1)), 61 * 60_000 - 125_000);
        assert_eq!(span.first_live_slot(), -57);
        assert_eq!(span.expires_ms(), 62 * 60_000);
    }

    #[test]
    fn lease_epochs() {
        assert_eq!(lease_epoch_ms(1_800_000), 450_000);
        assert_eq!(lease_epoch(1_800_000, 900_001), 2);
    }
}
