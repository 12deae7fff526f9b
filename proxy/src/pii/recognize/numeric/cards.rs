//! Account numbers: payment cards (Luhn and issuer ranges), US SSNs
//! (area, group and serial rules) and IBANs (country length, mod 97).

use super::{boundary_after, digits_at, num};
use crate::pii::validate;

/// 12-19 digits, contiguous or in groups split by one kind of separator
/// (space or dash), a valid Luhn checksum and a brand that fits (a known
/// issuer range scores high, a plausible one lower; 12 digits, as some
/// Maestro cards have, need a card word nearby).
pub(super) fn card(b: &[u8], s: usize) -> Option<(usize, f32)> {
    let mut digits: Vec<u8> = Vec::with_capacity(20);
    let mut ends: Vec<(usize, usize)> = Vec::with_capacity(6);
    let mut sep = None;
    let mut j = s;
    loop {
        let n = digits_at(b, j);
        if n == 0 || digits.len() + n > 19 {
            break;
        }
        digits.extend_from_slice(&b[j..j + n]);
        j += n;
        ends.push((digits.len(), j));
        match b.get(j) {
            Some(&c @ (b' ' | b'-'))
                if sep.is_none_or(|x| x == c) && b.get(j + 1).is_some_and(u8::is_ascii_digit) =>
            {
                sep = Some(c);
                j += 1;
            }
            _ => break,
        }
        if ends.len() >= 6 {
            break;
        }
    }
    let last = ends.len();
    ends.iter().enumerate().rev().find_map(|(k, &(n, end))| {
        // A shorter prefix only when one group follows after a space
        // (`4111111111111111 2030`), not inside a longer grouped number.
        let whole = k + 1 == last || (k + 2 == last && b[end] == b' ' && n >= 13);
        if !whole
            || !(12..=19).contains(&n)
            || !boundary_after(b, end)
            || !validate::luhn(&digits[..n])
        {
            return None;
        }
        match (validate::card_fit(&digits[..n]), n) {
            (0, _) => None,
            (_, 12) if validate::maestro(&digits[..n]) => Some((end, 0.55)),
            (_, 12) => Some((end, 0.45)),
            (2, _) => Some((end, 0.85)),
            _ => Some((end, 0.65)),
        }
    })
}

/// `AAA-GG-SSSS` (dashes or spaces) or nine digits, with the issuing rules.
pub(super) fn ssn(b: &[u8], s: usize) -> Option<(usize, f32)> {
    let a = digits_at(b, s);
    if a == 9 {
        let end = s + 9;
        let d = &b[s..end];
        return (boundary_after(b, end)
            && validate::ssn(num(&d[..3]), num(&d[3..5]), num(&d[5..])))
        .then_some((end, 0.2));
    }
    if a != 3 {
        return None;
    }
    let sep = *b.get(s + 3)?;
    if !matches!(sep, b'-' | b' ' | b'.')
        || digits_at(b, s + 4) != 2
        || b.get(s + 6) != Some(&sep)
        || digits_at(b, s + 7) != 4
    {
        return None;
    }
    let end = s + 11;
    if !boundary_after(b, end)
        || !validate::ssn(
            num(&b[s..s + 3]),
            num(&b[s + 4..s + 6]),
            num(&b[s + 7..end]),
        )
    {
        return None;
    }
    Some((end, if sep == b'-' { 0.7 } else { 0.45 }))
}

/// Country code, check digits and BBAN (groups of four may be separated
/// by single spaces), exactly the country's length, mod-97 valid.
pub(super) fn iban(b: &[u8], s: usize) -> Option<usize> {
    let want = validate::iban_length(&b[s..s + 2])?;
    let mut chars: Vec<u8> = Vec::with_capacity(want);
    let mut j = s;
    while chars.len() < want {
        match b.get(j) {
            Some(&c) if c.is_ascii_digit() || c.is_ascii_uppercase() => {
                chars.push(c);
                j += 1;
            }
            Some(b' ')
                if chars.len().is_multiple_of(4)
                    && b.get(j + 1).is_some_and(|c| c.is_ascii_alphanumeric()) =>
            {
                j += 1
            }
            _ => return None,
        }
    }
    if !chars[2..4].iter().all(u8::is_ascii_digit) || !boundary_after(b, j) {
        return None;
    }
    validate::mod97(&chars).then_some(j)
}
