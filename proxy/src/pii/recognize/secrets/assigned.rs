//! Values by where they stand: assigned to a secret-looking name
//! (`password: ...`, `API_KEY="..."`), of a fixed shape under a known name
//! (AWS secret keys), or a service's key a few words after its name.

use tollgate_config::Builtin;

use super::{find, run, word_char};
use crate::pii::finding::Finding;
use crate::pii::validate::entropy;

/// A value of `ty`'s fixed shape at `j` (`n` value bytes).
pub(super) fn shaped(b: &[u8], j: usize, n: usize, ty: Builtin) -> Option<Finding> {
    let v = &b[j..j + n];
    match ty {
        // 40 characters of base64 (`wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`).
        Builtin::AwsSecretKey => (n == 40
            && v.iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+')
            && v.iter().any(u8::is_ascii_digit)
            && v.iter().any(u8::is_ascii_uppercase)
            && v.iter().any(u8::is_ascii_lowercase))
        .then(|| Finding::new(j, j + n, ty, 0.95)),
        _ => None,
    }
}

/// A key of `ty` within 64 bytes after the service's name that ended at
/// `from`.
pub(super) fn near(b: &[u8], from: usize, ty: Builtin) -> Option<Finding> {
    let window = &b[from..(from + 64).min(b.len())];
    match ty {
        // A Twilio API key: `SK` and 32 hex digits.
        Builtin::TwilioKey => {
            let s = from + find(window, b"SK")?;
            let n = run(b, s + 2, |c| c.is_ascii_hexdigit());
            (n == 32 && !b.get(s + 34).is_some_and(|c| word_char(*c)))
                .then(|| Finding::new(s, s + 34, ty, 0.95))
        }
        _ => None,
    }
}

/// The value at `j..j + n` assigned to a secret-looking name (`password:
/// Tr0ub4dor&3`, `API_KEY="9fQ2xL7pZ0bK4mW8..."`, `the token is ...`), if it
/// looks like a secret: mixed character classes, high entropy or a
/// password's length, not a placeholder, URL or identifier.
pub(super) fn generic(b: &[u8], j: usize, n: usize, password: bool) -> Option<Finding> {
    let v = &b[j..j + n];
    if n < 8 {
        return None;
    }
    let classes = [
        v.iter().any(u8::is_ascii_lowercase),
        v.iter().any(u8::is_ascii_uppercase),
        v.iter().any(u8::is_ascii_digit),
        v.iter().any(|c| !c.is_ascii_alphanumeric()),
    ];
    let nclasses = classes.iter().filter(|&&x| x).count();
    let placeholder = v.iter().all(|&c| c == v[0]) || v.starts_with(b"${") || v.starts_with(b"<");
    if placeholder || nclasses < 2 || !(classes[2] || classes[3]) {
        return None;
    }
    // URLs and paths are not secrets.
    if v.contains(&b'/') && !v.iter().any(|&c| c == b'+' || c == b'=')
        || v.windows(3).any(|w| w == b"://")
    {
        return None;
    }
    let score = if n >= 16 && entropy(v) >= 3.0 && !identifier(v) {
        0.8
    } else if password && (nclasses >= 3 || n >= 10) {
        0.7
    } else {
        return None;
    };
    Some(Finding::new(j, j + n, Builtin::GenericSecret, score))
}

/// A name rather than a secret: words of one case joined by `_`, `-` or
/// `.` (`ssn_invalid_range`, `auth-svc.timeout`, `MAX_RETRY_COUNT`), each
/// perhaps ending in a short number (`v2`). Entropy is high for such
/// strings, but a key is never made of words.
pub(super) fn identifier(v: &[u8]) -> bool {
    let words: Vec<&[u8]> = v.split(|c| matches!(c, b'_' | b'-' | b'.')).collect();
    words.len() >= 2
        && words.iter().all(|w| {
            let letters = w.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let digits = &w[letters..];
            letters >= 1
                && digits.len() <= 2
                && digits.iter().all(u8::is_ascii_digit)
                && (w[..letters].iter().all(u8::is_ascii_lowercase)
                    || w[..letters].iter().all(u8::is_ascii_uppercase))
        })
}

/// Where the value assigned to the name at `ks..ke` is, and its length:
/// `name: value`, `NAME="value"`, `name => value`, `the name is value`.
pub(super) fn assigned_value(b: &[u8], ks: usize, ke: usize) -> Option<(usize, usize)> {
    if ks > 0 && b[ks - 1].is_ascii_alphabetic() {
        return None;
    }
    // The rest of an identifier: `_ID`, `s`, `_value`.
    let mut j = ke
        + run(b, ke, |c| {
            c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
        })
        .min(24);
    j += run(b, j, |c| {
        matches!(c, b' ' | b'"' | b'\'' | b'`' | b']' | b')')
    })
    .min(4);
    let assigned = match b.get(j..j + 2) {
        Some(b":=" | b"=>") => {
            j += 2;
            true
        }
        _ => match b.get(j) {
            Some(b':' | b'=') => {
                j += 1;
                true
            }
            _ => {
                let rest = &b[j..];
                if rest.len() > 3 && (rest[..3].eq_ignore_ascii_case(b"is ")) {
                    j += 3;
                    true
                } else if rest.len() > 4 && rest[..4].eq_ignore_ascii_case(b"was ") {
                    j += 4;
                    true
                } else {
                    false
                }
            }
        },
    };
    if !assigned {
        return None;
    }
    j += run(b, j, |c| matches!(c, b' ' | b'"' | b'\'' | b'`' | b'\t')).min(4);
    let value_char = |c: u8| c.is_ascii_alphanumeric() || b"+/=_-.~!@#$%^&*?()".contains(&c);
    let mut n = run(b, j, value_char).min(512);
    while n > 0 && b".,;:!?".contains(&b[j + n - 1]) {
        n -= 1;
    }
    Some((j, n))
}
