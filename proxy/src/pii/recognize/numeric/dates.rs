//! Dates of birth: a numeric date or one with a month name, after a
//! birth word.

use super::{back_while, boundary_after, digits_at, num, DOB_CTX, MONTHS};
use crate::pii::recognize::context::near;

/// A date (numeric or with a month name) preceded by a birth word.
pub(super) fn dob(text: &str, s: usize) -> Option<(usize, usize)> {
    let b = text.as_bytes();
    if !near(text, s, s, 64, 0, DOB_CTX) {
        return None;
    }
    if let Some(end) = numeric_date(b, s) {
        return Some((s, end));
    }
    // `3 March 1985`, `3rd of March, 1985`.
    let d = digits_at(b, s);
    if (1..=2).contains(&d) && (1..=31).contains(&num(&b[s..s + d])) {
        let mut j = ordinal(b, s + d);
        if b.get(j) == Some(&b' ') {
            j += 1;
            if b[j..].starts_with(b"of ") {
                j += 3;
            }
            if let Some(m) = month_at(b, j) {
                if let Some(end) = year_after(b, m) {
                    return Some((s, end));
                }
            }
        }
    }
    // `March 3, 1985`: the month comes before the digit.
    if (1..=2).contains(&d) && s >= 4 && b[s - 1] == b' ' {
        let ws = back_while(b, s - 1, |c| c.is_ascii_alphabetic() || c == b'.');
        if month_at(b, ws).is_some_and(|e| e + 1 == s || e == s - 1)
            && (1..=31).contains(&num(&b[s..s + d]))
        {
            let j = ordinal(b, s + d);
            let j = if b.get(j) == Some(&b',') { j + 1 } else { j };
            if b.get(j) == Some(&b' ')
                && digits_at(b, j + 1) == 4
                && year_ok(num(&b[j + 1..j + 5]))
                && boundary_after(b, j + 5)
            {
                return Some((ws, j + 5));
            }
        }
    }
    None
}

pub(super) fn ordinal(b: &[u8], j: usize) -> usize {
    match b.get(j..j + 2) {
        Some(b"st" | b"nd" | b"rd" | b"th") => j + 2,
        _ => j,
    }
}

/// End of a month name (optionally abbreviated with a dot) at `j`.
pub(super) fn month_at(b: &[u8], j: usize) -> Option<usize> {
    let n = b[j.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    let word = &b[j..j + n];
    if !MONTHS
        .iter()
        .any(|m| m.as_bytes().eq_ignore_ascii_case(word))
    {
        return None;
    }
    Some(if b.get(j + n) == Some(&b'.') {
        j + n + 1
    } else {
        j + n
    })
}

/// `, 1985` or ` 1985` after a month name.
pub(super) fn year_after(b: &[u8], j: usize) -> Option<usize> {
    let j = if b.get(j) == Some(&b',') { j + 1 } else { j };
    if b.get(j) != Some(&b' ') || digits_at(b, j + 1) != 4 {
        return None;
    }
    let end = j + 5;
    (year_ok(num(&b[j + 1..end])) && boundary_after(b, end)).then_some(end)
}

pub(super) fn year_ok(y: u32) -> bool {
    (1900..=2030).contains(&y)
}

/// `1985-03-14`, `14.03.1985`, `03/14/1985`, `14-03-85`.
pub(super) fn numeric_date(b: &[u8], s: usize) -> Option<usize> {
    let a = digits_at(b, s);
    let sep = *b.get(s + a)?;
    if !matches!(sep, b'-' | b'/' | b'.') {
        return None;
    }
    let m = digits_at(b, s + a + 1);
    if !(1..=2).contains(&m) || b.get(s + a + 1 + m) != Some(&sep) {
        return None;
    }
    let c0 = s + a + 2 + m;
    let c = digits_at(b, c0);
    let end = c0 + c;
    let (x, y, z) = (
        num(&b[s..s + a]),
        num(&b[s + a + 1..s + a + 1 + m]),
        num(&b[c0..end]),
    );
    let ok = if a == 4 {
        year_ok(x) && (1..=12).contains(&y) && (1..=31).contains(&z) && (1..=2).contains(&c)
    } else {
        (1..=2).contains(&a)
            && (c == 4 && year_ok(z) || c == 2)
            && (1..=31).contains(&x)
            && (1..=31).contains(&y)
            && (x <= 12 || y <= 12)
    };
    (ok && boundary_after(b, end)).then_some(end)
}
