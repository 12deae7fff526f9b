//! Phone numbers: where one may start, and its digit count and group
//! shapes.

use super::{boundary_after, digits_at};

/// A phone number may start at a `+` or `(` just before the digit.
pub(super) fn phone_start(b: &[u8], i: usize) -> usize {
    match i.checked_sub(1).map(|k| b[k]) {
        Some(b'+') | Some(b'(') => {
            let k = i - 1;
            if k > 0 && b[k] == b'(' && b[k - 1] == b'+' {
                k - 1
            } else {
                k
            }
        }
        _ => i,
    }
}

/// Digit groups split by single separators (space, dash, dot), with an
/// optional `+country` prefix, a parenthesized area code or `(0)` trunk,
/// and an extension (`x123`, `ext. 123`). The shape decides the score:
/// an international prefix or area-code parentheses are strong; a bare
/// run of digits is weak and needs a context word.
pub(super) fn phone(b: &[u8], s: usize) -> Option<(usize, f32)> {
    let mut j = s;
    let plus = b.get(j) == Some(&b'+');
    if plus {
        j += 1;
    }
    let mut groups: Vec<u8> = Vec::with_capacity(8);
    let mut seps: Vec<u8> = Vec::with_capacity(8);
    let mut paren = false;
    let mut digits = 0usize;
    let mut end;
    loop {
        if b.get(j) == Some(&b'(') {
            let n = digits_at(b, j + 1);
            if n == 0 || n > 5 || b.get(j + 1 + n) != Some(&b')') {
                return None;
            }
            paren = true;
            groups.push(n as u8);
            digits += n;
            j += n + 2;
            end = j;
            // `(0)1632` or `(415)555-...`: a group may follow directly.
            if b.get(j).is_some_and(u8::is_ascii_digit) {
                seps.push(b')');
                continue;
            }
        } else {
            let n = digits_at(b, j);
            if n == 0 {
                return None;
            }
            groups.push(n.min(255) as u8);
            digits += n;
            j += n;
            end = j;
        }
        if groups.len() > 7 || digits > 17 {
            return None;
        }
        match b.get(j) {
            Some(&c @ (b' ' | b'-' | b'.'))
                if b.get(j + 1)
                    .is_some_and(|d| d.is_ascii_digit() || *d == b'(') =>
            {
                seps.push(c);
                j += 1;
            }
            // `+44(0)...`: parentheses right after a group.
            Some(b'(') => seps.push(b'('),
            _ => break,
        }
    }
    // Extension.
    let mut k = end;
    if b.get(k) == Some(&b' ') {
        k += 1;
    }
    let ext_len = if b.get(k) == Some(&b'x') {
        1
    } else if b[k.min(b.len())..].len() >= 3 && b[k..k + 3].eq_ignore_ascii_case(b"ext") {
        if b.get(k + 3) == Some(&b'.') {
            4
        } else {
            3
        }
    } else {
        0
    };
    if ext_len > 0 {
        let mut m = k + ext_len;
        if b.get(m) == Some(&b' ') {
            m += 1;
        }
        let n = digits_at(b, m);
        if (1..=5).contains(&n) {
            end = m + n;
        }
    }
    if !boundary_after(b, end) {
        return None;
    }

    let g: &[u8] = &groups;
    let uniform = seps.windows(2).all(|w| w[0] == w[1]);
    let dots = !seps.is_empty() && seps.iter().all(|&c| c == b'.');
    let intl00 = !plus && b[s..].starts_with(b"00") && digits >= 10;
    let min = if plus { 8 } else { 7 };
    if digits < min || digits > if intl00 { 17 } else { 15 } {
        return None;
    }
    // Shapes that are something else.
    let date = matches!(g, [4, 2, 2] | [2, 2, 4] | [1, 2, 4] | [2, 1, 4] | [1, 1, 4]);
    let ssn_shape = g == [3, 2, 4];
    let ipish = !plus && dots && g.len() == 4 && g.iter().all(|&n| n <= 3);
    let card_shape = !plus && !paren && g.len() >= 3 && g.iter().all(|&n| n == 4);
    let thousands =
        !plus && !paren && g.len() >= 2 && g[0] <= 3 && g[1..].iter().all(|&n| n == 3) && uniform;
    let spaced = seps.iter().all(|&c| c == b' ');
    let decimal = dots && g.len() == 2;
    if date || ssn_shape || ipish || (thousands && !spaced) || (decimal && g[0] < 4) {
        return None;
    }
    let score = if thousands || decimal || card_shape {
        // `532 317 022`, `7443.1835`: a phone only with a phone word near.
        0.2
    } else if plus && b.get(s + 1) != Some(&b'0') {
        0.75
    } else if paren && g.len() >= 2 {
        0.7
    } else if intl00 {
        0.6
    } else if (g == [3, 3, 4] || g == [1, 3, 3, 4]) && !seps.is_empty() {
        0.65
    } else if g.len() >= 3 && (9..=13).contains(&digits) && uniform {
        0.55
    } else if g.len() >= 2 && (9..=13).contains(&digits) && b[s] == b'0' {
        0.5
    } else if g.len() == 1 && (8..=12).contains(&digits) && matches!(b[s], b'0' | b'1') {
        0.3
    } else {
        0.2
    };
    Some((end, score))
}
