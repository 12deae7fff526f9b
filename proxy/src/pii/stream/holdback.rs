//! How much of a channel's held text may go out now: everything before the
//! earliest point where an entity may still be growing (an unfinished word,
//! a run of digits, a date, a number waiting for its context words, an
//! open private key block), within `maxHoldBack`.

use crate::pii::recognize::context;

/// Longest run of digits and separators held as a possible entity.
const MAX_RUN: usize = 96;

pub(super) fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn run_char(c: u8) -> bool {
    c.is_ascii_digit()
        || c.is_ascii_uppercase()
        || matches!(c, b' ' | b'-' | b'.' | b'(' | b')' | b'+' | b'/' | b',')
}

/// How much of `pending` can go out now: everything before the earliest
/// point where an entity may still be growing.
pub(crate) fn safe_cut(pending: &str, max_hold: usize) -> usize {
    let p = pending.as_bytes();
    let n = p.len();
    // The unfinished last word.
    let mut cut = p
        .iter()
        .rposition(|c| c.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    // A run of digits and separators that may continue (cards, phones,
    // IBANs in groups, dates), when the tail does not close it.
    if p[cut..].iter().all(|&c| run_char(c)) {
        let mut s = cut;
        while s > 0 && run_char(p[s - 1]) && n - s < MAX_RUN {
            s -= 1;
        }
        while s < cut && !(p[s].is_ascii_alphanumeric() || matches!(p[s], b'+' | b'(')) {
            s += 1;
        }
        if p[s..].iter().any(u8::is_ascii_digit) {
            cut = cut.min(s);
            // A month name before a day (`March 3, 1985`).
            if cut >= 2 && p[cut - 1] == b' ' {
                let ws = p[..cut - 1]
                    .iter()
                    .rposition(|c| !c.is_ascii_alphabetic())
                    .map_or(0, |i| i + 1);
                if is_month(&p[ws..cut - 1]) {
                    cut = ws;
                }
            }
        }
    }
    cut = date_tail(p, cut);
    // Context words up to `AFTER` bytes after a number change its score
    // (`4111 1111 1111 1111 (order …)`): the last number stays held until
    // that much text follows it, so a stream decides as the whole answer
    // would.
    if let Some(d) = p.iter().rposition(u8::is_ascii_digit) {
        if n - d <= context::AFTER {
            let mut s = p[..d]
                .iter()
                .rposition(u8::is_ascii_whitespace)
                .map_or(0, |i| i + 1);
            while s > 0 && run_char(p[s - 1]) && d - s < MAX_RUN {
                s -= 1;
            }
            cut = cut.min(s);
        }
    }
    // An unterminated private key block holds everything after it.
    // It ends with the dashes after `-----END <label>`.
    if let Some(b) = find_last(p, b"-----BEGIN") {
        let closed = find_last(&p[b..], b"-----END")
            .is_some_and(|e| find_last(&p[b + e + 8..], b"-----").is_some());
        if !closed {
            cut = cut.min(b);
        }
    }
    // Bound the window.
    if n - cut > max_hold {
        cut = floor_boundary(pending, n - max_hold);
    }
    floor_boundary(pending, cut)
}

/// Moves `cut` back over trailing words that may begin a date with a month
/// name (`March `, `3rd of `, `14 March `), so it is judged whole.
fn date_tail(p: &[u8], cut: usize) -> usize {
    let mut end = cut;
    let mut start = cut;
    let mut dateish = false;
    for _ in 0..3 {
        let e = p[..end]
            .iter()
            .rposition(|c| !matches!(c, b' ' | b',' | b'.'))
            .map_or(0, |i| i + 1);
        let s = p[..e]
            .iter()
            .rposition(|c| !c.is_ascii_alphanumeric())
            .map_or(0, |i| i + 1);
        let w = &p[s..e];
        if w.is_empty() || e == end && end != cut {
            break;
        }
        let digits = w.iter().take_while(|c| c.is_ascii_digit()).count();
        let number = (1..=4).contains(&digits)
            && matches!(&w[digits..], b"" | b"st" | b"nd" | b"rd" | b"th");
        if is_month(w) || number {
            dateish = true;
            start = s;
        } else if !w.eq_ignore_ascii_case(b"of") {
            break;
        }
        end = s;
    }
    if dateish {
        start
    } else {
        cut
    }
}

fn is_month(w: &[u8]) -> bool {
    // A prefix of a full month name: `Sep`, `Sept`, `Septem` while the
    // rest of the word has not arrived.
    w.len() >= 3
        && crate::pii::recognize::MONTHS[..12]
            .iter()
            .any(|m| m.len() >= w.len() && m.as_bytes()[..w.len()].eq_ignore_ascii_case(w))
}

fn find_last(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}
