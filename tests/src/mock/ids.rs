//! Identifiers and timestamps in the providers' formats.
//!
//! Ids only need to be unique and look plausible, so they come from a process
//! counter scrambled by splitmix64 rather than from a random generator.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU64 = AtomicU64::new(0);

const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `prefix` followed by `len` base-62 characters, unique in this process.
pub(crate) fn id(prefix: &str, len: usize) -> String {
    let seed = COUNTER.fetch_add(1, Ordering::Relaxed) ^ process_salt();
    let mut out = String::with_capacity(prefix.len() + len);
    out.push_str(prefix);
    let mut state = seed;
    let mut bits = 0u64;
    let mut left = 0u32;
    for _ in 0..len {
        if left < 6 {
            bits = splitmix64(&mut state);
            left = 64;
        }
        out.push(ALPHABET[(bits % 62) as usize] as char);
        bits /= 62;
        left -= 6;
    }
    out
}

/// 32 lower-case hex digits, unique in this process (OpenAI's `x-request-id` shape).
pub(crate) fn hex_id(prefix: &str) -> String {
    let mut state = COUNTER.fetch_add(1, Ordering::Relaxed) ^ process_salt();
    let mut out = String::with_capacity(prefix.len() + 32);
    out.push_str(prefix);
    let _ = write!(
        out,
        "{:016x}{:016x}",
        splitmix64(&mut state),
        splitmix64(&mut state)
    );
    out
}

pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Differs between runs so ids from two mock processes don't collide.
fn process_salt() -> u64 {
    static SALT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *SALT.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ u64::from(std::process::id()).rotate_left(32)
    })
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `secs` as RFC 3339 UTC (`2024-01-02T03:04:05Z`), as Anthropic's reset headers use.
pub(crate) fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_shaped() {
        let a = id("chatcmpl-", 29);
        let b = id("chatcmpl-", 29);
        assert_ne!(a, b);
        assert_eq!(a.len(), "chatcmpl-".len() + 29);
        assert!(a["chatcmpl-".len()..]
            .bytes()
            .all(|c| c.is_ascii_alphanumeric()));
        let h = hex_id("");
        assert_eq!(h.len(), 32);
        assert!(h.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn formats_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_704_164_645), "2024-01-02T03:04:05Z");
    }
}
