//! Numbers with structure, tried where a run of digits starts: payment
//! cards (Luhn and brand), US SSNs (area/group/serial rules), phone numbers
//! (digit counts and group shapes), IBANs (country length and mod 97),
//! IPv4, IPv6 and MAC addresses, dates of birth (only near birth words).
//!
//! Each parser is hand-written over bytes: a candidate costs a few dozen
//! byte comparisons, and clean prose (few digits) costs nothing.

use tollgate_config::Builtin;

use super::context::{adjust, adjust_weak, near};
use super::Enabled;
use crate::pii::finding::Finding;
use crate::pii::validate;

const PHONE_CTX: &[&str] = &[
    "phone",
    "tel",
    "tel.",
    "telephone",
    "mobile",
    "cell",
    "call",
    "fax",
    "contact",
    "reach",
    "whatsapp",
    "sms",
    "text",
    "dial",
    "ring",
    "landline",
    "handy",
    "telefon",
    "téléphone",
    "telefono",
    "teléfono",
    "tél",
    "ph",
    "mob",
    "cellphone",
    "hotline",
];
/// Phone words only while no negative word is near ("order number").
const PHONE_WEAK: &[&str] = &["number"];
const PHONE_NEG: &[&str] = &[
    "card",
    "ssn",
    "social security",
    "order",
    "invoice",
    "account",
    "acct",
    "ref",
    "reference",
    "tracking",
    "serial",
    "isbn",
    "ticket",
    "sku",
    "id",
    "version",
    "build",
    "zip",
    "postal",
    "case",
    "policy",
    "confirmation",
    "transaction",
    "part",
    "batch",
    "lot",
    "code",
    "pin",
    "otp",
    "customer no",
    "item",
];
const CARD_CTX: &[&str] = &[
    "card",
    "paid",
    "maestro",
    "credit",
    "debit",
    "visa",
    "mastercard",
    "amex",
    "payment",
    "cc",
    "pay",
    "charge",
];
const CARD_NEG: &[&str] = &[
    "order", "tracking", "invoice", "isbn", "serial", "ticket", "imei",
];
const SSN_CTX: &[&str] = &[
    "ssn",
    "social security",
    "social-security",
    "ss#",
    "taxpayer",
    "tin",
    "ssa",
];
const SSN_NEG: &[&str] = &[
    "order", "invoice", "tracking", "ticket", "account", "serial", "part",
];
const IP_CTX: &[&str] = &[
    "ip", "address", "server", "host", "ping", "subnet", "gateway", "dns", "router", "connect",
    "network", "firewall", "vpn", "proxy", "client", "from", "ipv4", "ipv6",
];
const IP_NEG: &[&str] = &["version", "release", "build", "ver", "firmware", "oid", "v"];
const MAC_CTX: &[&str] = &[
    "mac", "ethernet", "hwaddr", "hardware", "ether", "bssid", "wifi", "wi-fi", "nic", "device",
];
const DOB_CTX: &[&str] = &[
    "born",
    "birth",
    "dob",
    "d.o.b",
    "birthday",
    "birthdate",
    "bday",
    "geboren",
    "née",
    "né",
    "nacido",
    "nata",
    "nato",
    "date de naissance",
    "geburtsdatum",
];
/// Month names, then their abbreviations (the first twelve are the full
/// names; the stream's hold-back reads prefixes of those).
pub(crate) const MONTHS: &[&str] = &[
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
];

/// Tries every enabled numeric recognizer at the digit `b[i]`, which
/// follows a non-digit; returns the index scanning continues from.
pub(super) fn at_digit(text: &str, i: usize, on: &Enabled, out: &mut Vec<Finding>) -> usize {
    let b = text.as_bytes();
    let before = out.len();
    let prev = if i > 0 { b[i - 1] } else { b' ' };

    // Hex-led tokens: IPv6 (`fe80::1`, `::1`) and MAC (`a4:5e:...`, `CC-A6-...`).
    let mut hs = back_while(b, i, |c| c.is_ascii_hexdigit() || c == b':' || c == b'-');
    while hs < i && b[hs] == b'-' {
        hs += 1;
    }
    if (on.ip || on.mac) && boundary_before(b, hs) {
        hex_addr(text, hs, on, out);
    }
    // A Cisco MAC (`fceb.1f27.6a82`) may lead with letters and dots before
    // its first digit.
    let cs = back_while(b, i, |c| c.is_ascii_hexdigit() || c == b'.');
    if on.mac && cs < hs && out.len() == before && boundary_before(b, cs) {
        if let Some(end) = mac(b, cs) {
            let score = adjust(text, cs, end, 0.7, MAC_CTX, &[]);
            out.push(Finding::new(cs, end, Builtin::MacAddress, score));
        }
    }
    if prev.is_ascii_alphabetic() {
        // Inside a word: only an IBAN (`DE89...`) starts before the digit.
        let ws = back_while(b, i, |c| c.is_ascii_alphanumeric());
        if on.iban
            && i - ws == 2
            && b[ws].is_ascii_uppercase()
            && b[ws + 1].is_ascii_uppercase()
            && boundary_before(b, ws)
        {
            if let Some(end) = iban(b, ws) {
                out.push(Finding::new(ws, end, Builtin::Iban, 1.0));
            }
        }
    } else if boundary_before(b, i) || matches!(prev, b'+' | b'(') {
        if on.card {
            if let Some((end, base)) = card(b, i) {
                let s = adjust(text, i, end, base, CARD_CTX, CARD_NEG);
                out.push(Finding::new(i, end, Builtin::CreditCard, s));
            }
        }
        if on.ssn {
            if let Some((end, base)) = ssn(b, i) {
                let s = adjust(text, i, end, base, SSN_CTX, SSN_NEG);
                out.push(Finding::new(i, end, Builtin::UsSsn, s));
            }
        }
        let card_end = out[before..]
            .iter()
            .find(|f| f.entity == crate::pii::finding::Entity::Builtin(Builtin::CreditCard))
            .map(|f| f.end);
        if on.phone {
            let start = phone_start(b, i);
            // A Luhn-valid number with a card's shape is not a phone too.
            if let Some((end, base)) = phone(b, start).filter(|&(end, _)| Some(end) != card_end) {
                let s = adjust_weak(text, start, end, base, PHONE_CTX, PHONE_WEAK, PHONE_NEG);
                out.push(Finding::new(start, end, Builtin::Phone, s));
            }
        }
        if on.ip && prev != b'.' {
            if let Some(end) = ipv4(b, i) {
                let s = adjust(text, i, end, 0.6, IP_CTX, IP_NEG);
                out.push(Finding::new(i, end, Builtin::IpAddress, s));
            }
        }
        if on.dob {
            if let Some((start, end)) = dob(text, i) {
                out.push(Finding::new(start, end, Builtin::DateOfBirth, 0.85));
            }
        }
    }
    // Continue after the whole run of digit groups, so that the tail of a
    // number that failed validation is not tried again as a shorter one.
    let found_end = out[before..].iter().map(|f| f.end).max().unwrap_or(0);
    let mut j = i + digits_at(b, i);
    while j + 1 < b.len()
        && matches!(b[j], b' ' | b'-' | b'.' | b'/' | b'(' | b')')
        && b[j + 1].is_ascii_digit()
    {
        j += 1 + digits_at(b, j + 1);
    }
    j.max(found_end).max(i + 1)
}

fn back_while(b: &[u8], i: usize, f: impl Fn(u8) -> bool) -> usize {
    let mut s = i;
    while s > 0 && f(b[s - 1]) {
        s -= 1;
    }
    s
}

fn boundary_before(b: &[u8], s: usize) -> bool {
    s == 0 || !(b[s - 1].is_ascii_alphanumeric() || b[s - 1] == b'_')
}

/// No letter or digit continues the token at `end`, nor a separator
/// followed by a digit (the number goes on).
fn boundary_after(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => false,
        Some(b'-' | b'.' | b'/' | b':') => !b.get(end + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

fn digits_at(b: &[u8], j: usize) -> usize {
    b[j.min(b.len())..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count()
}

fn num(b: &[u8]) -> u32 {
    b.iter().fold(0u32, |a, d| {
        a.saturating_mul(10).saturating_add(u32::from(d - b'0'))
    })
}

// === cards ===

/// 12-19 digits, contiguous or in groups split by one kind of separator
/// (space or dash), a valid Luhn checksum and a brand that fits (a known
/// issuer range scores high, a plausible one lower; 12 digits, as some
/// Maestro cards have, need a card word nearby).
fn card(b: &[u8], s: usize) -> Option<(usize, f32)> {
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

// === US SSN ===

/// `AAA-GG-SSSS` (dashes or spaces) or nine digits, with the issuing rules.
fn ssn(b: &[u8], s: usize) -> Option<(usize, f32)> {
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

// === phones ===

/// A phone number may start at a `+` or `(` just before the digit.
fn phone_start(b: &[u8], i: usize) -> usize {
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
fn phone(b: &[u8], s: usize) -> Option<(usize, f32)> {
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

// === IBAN ===

/// Country code, check digits and BBAN (groups of four may be separated
/// by single spaces), exactly the country's length, mod-97 valid.
fn iban(b: &[u8], s: usize) -> Option<usize> {
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

// === IP and MAC ===

fn ipv4(b: &[u8], s: usize) -> Option<usize> {
    let mut j = s;
    for part in 0..4 {
        let n = digits_at(b, j);
        if n == 0 || n > 3 || num(&b[j..j + n]) > 255 {
            return None;
        }
        j += n;
        if part < 3 {
            if b.get(j) != Some(&b'.') {
                return None;
            }
            j += 1;
        }
    }
    // CIDR suffix.
    if b.get(j) == Some(&b'/') {
        let n = digits_at(b, j + 1);
        if (1..=2).contains(&n) && num(&b[j + 1..j + 1 + n]) <= 32 {
            j += 1 + n;
        }
    }
    // A port (`10.1.2.3:8080`): the address is the finding, the port stays.
    if b.get(j) == Some(&b':') {
        let n = digits_at(b, j + 1);
        if (1..=5).contains(&n) && num(&b[j + 1..j + 1 + n]) <= 65535 {
            return boundary_after(b, j + 1 + n).then_some(j);
        }
    }
    boundary_after(b, j).then_some(j)
}

/// MAC (`aa:bb:cc:dd:ee:ff`, dashes, or `aabb.ccdd.eeff`) or IPv6 at `s`.
fn hex_addr(text: &str, s: usize, on: &Enabled, out: &mut Vec<Finding>) {
    let b = text.as_bytes();
    if on.mac {
        if let Some(end) = mac(b, s) {
            let score = adjust(text, s, end, 0.7, MAC_CTX, &[]);
            out.push(Finding::new(s, end, Builtin::MacAddress, score));
            return;
        }
    }
    if !on.ip {
        return;
    }
    let len = b[s..]
        .iter()
        .take(45)
        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, b':' | b'.'))
        .count();
    let mut end = s + len;
    while end > s && b[end - 1] == b'.' || (end > s + 1 && b[end - 1] == b':' && b[end - 2] != b':')
    {
        end -= 1;
    }
    let span = &text[s..end];
    if span.bytes().filter(|&c| c == b':').count() < 2 || !span.bytes().any(|c| c.is_ascii_digit())
    {
        return;
    }
    if span.parse::<std::net::Ipv6Addr>().is_err() {
        return;
    }
    // Prefix length.
    if b.get(end) == Some(&b'/') {
        let n = digits_at(b, end + 1);
        if (1..=3).contains(&n) {
            end += 1 + n;
        }
    }
    if !boundary_after(b, end) && b.get(end) != Some(&b'%') {
        return;
    }
    let score = adjust(text, s, end, 0.7, IP_CTX, &[]);
    out.push(Finding::new(s, end, Builtin::IpAddress, score));
}

fn mac(b: &[u8], s: usize) -> Option<usize> {
    let hex2 = |j: usize| {
        b.get(j..j + 2)
            .is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
    };
    if hex2(s) {
        if let Some(&sep @ (b':' | b'-')) = b.get(s + 2) {
            let ok =
                (0..6).all(|k| hex2(s + 3 * k) && (k == 5 || b.get(s + 3 * k + 2) == Some(&sep)));
            let end = s + 17;
            if ok
                && !b
                    .get(end)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || *c == sep)
            {
                return Some(end);
            }
        }
    }
    let hex4 = |j: usize| {
        b.get(j..j + 4)
            .is_some_and(|p| p.iter().all(u8::is_ascii_hexdigit))
    };
    // Not the tail of a longer dotted hex run (`c6f9.bf11.89e9.ab12`).
    let inside = s >= 2 && b[s - 1] == b'.' && b[s - 2].is_ascii_hexdigit();
    let cisco = !inside
        && hex4(s)
        && b.get(s + 4) == Some(&b'.')
        && hex4(s + 5)
        && b.get(s + 9) == Some(&b'.')
        && hex4(s + 10);
    // A full stop ends it unless another group follows (`....89e9.` ends a
    // sentence; `....89e9.ab` is something longer).
    let continues = match b.get(s + 14) {
        Some(c) if c.is_ascii_alphanumeric() => true,
        Some(b'.') => b.get(s + 15).is_some_and(u8::is_ascii_alphanumeric),
        _ => false,
    };
    (cisco && !continues).then_some(s + 14)
}

// === dates of birth ===

/// A date (numeric or with a month name) preceded by a birth word.
fn dob(text: &str, s: usize) -> Option<(usize, usize)> {
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

fn ordinal(b: &[u8], j: usize) -> usize {
    match b.get(j..j + 2) {
        Some(b"st" | b"nd" | b"rd" | b"th") => j + 2,
        _ => j,
    }
}

/// End of a month name (optionally abbreviated with a dot) at `j`.
fn month_at(b: &[u8], j: usize) -> Option<usize> {
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
fn year_after(b: &[u8], j: usize) -> Option<usize> {
    let j = if b.get(j) == Some(&b',') { j + 1 } else { j };
    if b.get(j) != Some(&b' ') || digits_at(b, j + 1) != 4 {
        return None;
    }
    let end = j + 5;
    (year_ok(num(&b[j + 1..end])) && boundary_after(b, end)).then_some(end)
}

fn year_ok(y: u32) -> bool {
    (1900..=2030).contains(&y)
}

/// `1985-03-14`, `14.03.1985`, `03/14/1985`, `14-03-85`.
fn numeric_date(b: &[u8], s: usize) -> Option<usize> {
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

#[cfg(test)]
mod tests;
