//! The recognizers, run together in as few passes as the text allows.
//!
//! 1. One byte loop finds the seeds of structured values: a digit starting
//!    a run (cards, SSNs, phones, IBANs, IP and MAC addresses, dates) and
//!    `@` (emails, URLs with credentials). Each seed is checked where it
//!    stands by a hand-written parser with its validator; clean prose has
//!    few seeds and costs about one table lookup per byte.
//! 2. One Aho-Corasick pass finds secret prefixes and secret keywords.
//! 3. Custom regexes (one `RegexSet` pass first) and dictionaries.
//!
//! Scores then pass each type's `minScore`, and overlaps keep the strongest.

pub(crate) mod context;
mod custom;
mod numeric;
pub(crate) use numeric::MONTHS;
mod secrets;
mod web;

use tollgate_config::{Builtin, Pii};

use super::finding::{resolve, Entity, Finding};

/// Which built-in recognizers run.
#[derive(Debug, Clone)]
pub(crate) struct Enabled {
    pub email: bool,
    pub url_credentials: bool,
    pub card: bool,
    pub ssn: bool,
    pub phone: bool,
    pub iban: bool,
    pub ip: bool,
    pub mac: bool,
    pub dob: bool,
    all: [bool; Builtin::ALL.len()],
}

impl Enabled {
    pub(crate) fn from_flags(all: [bool; Builtin::ALL.len()]) -> Enabled {
        let on = |b: Builtin| all[b.index()];
        Enabled {
            email: on(Builtin::Email),
            url_credentials: on(Builtin::UrlCredentials),
            card: on(Builtin::CreditCard),
            ssn: on(Builtin::UsSsn),
            phone: on(Builtin::Phone),
            iban: on(Builtin::Iban),
            ip: on(Builtin::IpAddress),
            mac: on(Builtin::MacAddress),
            dob: on(Builtin::DateOfBirth),
            all,
        }
    }

    #[cfg(test)]
    pub(crate) fn all() -> Enabled {
        Enabled::from_flags([true; Builtin::ALL.len()])
    }

    pub(crate) fn get(&self, b: Builtin) -> bool {
        self.all[b.index()]
    }

    fn numeric(&self) -> bool {
        self.card || self.ssn || self.phone || self.iban || self.ip || self.mac || self.dob
    }

    fn secrets(&self) -> bool {
        Builtin::ALL
            .into_iter()
            .any(|b| b.is_secret() && self.get(b))
    }
}

/// Seeds of the byte loop.
const DIGIT: u8 = 1;
const AT: u8 = 2;
static SEED: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = DIGIT;
        c += 1;
    }
    t[b'@' as usize] = AT;
    t
};

/// The first seed at or after `i` (`b.len()` when none): eight bytes at a
/// time while none of them is in `0`..=`@` (the digits, `@`, and the few
/// punctuation marks between them), which in prose is most of the text.
fn next_seed(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES * 0x80;
    const LOW7: u64 = ONES * 0x7f;
    // Per byte, without carries between bytes: the high bit is set for a
    // byte above 0x2F and below 0x41 (Bit Twiddling Hacks' hasbetween).
    let in_range = |w: u64| {
        ((ONES * (127 + 0x41) - (w & LOW7)) & !w & ((w & LOW7) + ONES * (127 - 0x2F))) & HIGH != 0
    };
    loop {
        while let Some(chunk) = b.get(i..i + 8) {
            let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
            if in_range(w) {
                break;
            }
            i += 8;
        }
        let end = (i + 8).min(b.len());
        while i < end {
            if SEED[b[i] as usize] != 0 {
                return i;
            }
            i += 1;
        }
        if i >= b.len() {
            return b.len();
        }
    }
}

/// Every recognizer of one policy, compiled.
pub struct Scanner {
    on: Enabled,
    min_score: [f32; Builtin::ALL.len()],
    custom_min: f32,
    secrets: secrets::Secrets,
    custom: custom::Custom,
}

impl Scanner {
    pub fn new(p: &Pii) -> Scanner {
        let mut flags = [false; Builtin::ALL.len()];
        let mut min_score = [0.5f32; Builtin::ALL.len()];
        for b in Builtin::ALL {
            flags[b.index()] = p.enabled && p.policy(b).enabled;
            min_score[b.index()] = p.policy(b).min_score as f32;
        }
        Scanner {
            on: Enabled::from_flags(flags),
            min_score,
            custom_min: p.min_score as f32,
            secrets: secrets::Secrets::new(),
            custom: custom::Custom::new(if p.enabled { &p.custom } else { &[] }),
        }
    }

    /// Findings in `text` above their type's minimum score, without
    /// overlaps, in order.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let mut out = Vec::new();
        self.scan_into(text, &mut out);
        out.retain(|f| {
            f.score
                >= match f.entity {
                    Entity::Builtin(b) => self.min_score[b.index()],
                    Entity::Custom(_) => self.custom_min,
                }
        });
        resolve(out)
    }

    /// Raw candidates with their scores, before thresholds and overlaps.
    pub fn scan_into(&self, text: &str, out: &mut Vec<Finding>) {
        let b = text.as_bytes();
        let numeric = self.on.numeric();
        let at = self.on.email || self.on.url_credentials;
        if numeric || at {
            let mut i = 0;
            while i < b.len() {
                let seed = SEED[b[i] as usize];
                if seed == 0 {
                    i = next_seed(b, i + 1);
                    continue;
                }
                if seed == DIGIT {
                    if numeric {
                        i = numeric::at_digit(text, i, &self.on, out);
                    } else {
                        i += 1;
                    }
                    // Stay off the middle of a digit run.
                    while i < b.len() && b[i].is_ascii_digit() {
                        i += 1;
                    }
                } else {
                    if at {
                        web::at_sign(text, i, &self.on, out);
                    }
                    i += 1;
                }
            }
        }
        if self.on.secrets() {
            self.secrets.scan(text, &self.on, out);
        }
        if !self.custom.is_empty() {
            self.custom.scan(text, out);
        }
    }
}

#[cfg(test)]
mod tests;
