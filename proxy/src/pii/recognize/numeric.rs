//! Numbers with structure, tried where a run of digits starts: payment
//! cards (Luhn and brand), US SSNs (area/group/serial rules), phone numbers
//! (digit counts and group shapes), IBANs (country length and mod 97),
//! IPv4, IPv6 and MAC addresses, dates of birth (only near birth words).
//!
//! Each parser is hand-written over bytes: a candidate costs a few dozen
//! byte comparisons, and clean prose (few digits) costs nothing. This file
//! decides which parsers try a digit ([`at_digit`]) and scores what they
//! find by the words around it; the parsers live in [`cards`] (cards, SSNs,
//! IBANs), [`phone`], [`network`] (IP and MAC addresses) and [`dates`].

use tollgate_config::Builtin;

use super::context::{adjust, adjust_weak};
use super::Enabled;
use crate::pii::finding::Finding;

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

mod cards;
mod dates;
mod network;
mod phone;

use cards::{card, iban, ssn};
use dates::dob;
use network::{hex_addr, ipv4, mac};
use phone::{phone, phone_start};

#[cfg(test)]
mod tests;
