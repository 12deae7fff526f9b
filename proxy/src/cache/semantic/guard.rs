//! The near-miss guard: checks, before a semantic hit is served, that two
//! prompts agree on what sentence embeddings blur.
//!
//! Embeddings place "Is 7 prime?" next to "Is 8 prime?", "How do I encrypt
//! a file" next to "… decrypt a file", and "Did Alice call Bob?" next to
//! "Did Bob call Alice?". Each prompt is reduced to a [`Profile`] when it is
//! embedded (the stored side keeps only that), and two profiles must pass
//! every enabled check:
//!
//! - **numbers**: the same multiset of numbers — digits (`1,000` = `1000`,
//!   `3.50` = `3.5`) and number words (`twenty five` = `25`, `second` = `2`);
//! - **negations**: the same count of `not`, `never`, `no`, `without`,
//!   `n't`, …;
//! - **opposites**: where both use a pair of opposites (`before` / `after`,
//!   `max` / `min`, `encrypt` / `decrypt`, `buy` / `sell`, …), the same
//!   side of it;
//! - **entities**: every name, acronym, identifier or file name of one
//!   prompt occurs as a word in the other;
//! - **order**: the words both share (less filler) come in the same order,
//!   up to moving one phrase ("in Python, how do I …" = "how do I … in
//!   Python"), so roles cannot swap.
//!
//! A failed check is a miss. The rules are deliberately strict: they cost
//! some true paraphrases (measured in `tests/semantic/REPORT.md`) to keep
//! wrong answers out.

use std::collections::HashMap;

use tollgate_config::Guard;

mod reading;

use reading::{digit_numbers, is_entity, number_words, stem, tokens};
mod wire;
mod words;

use words::{opposites, NEGATIONS, STOPWORDS};

/// What the guard keeps of a prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Profile {
    /// Normalized numbers, sorted.
    numbers: Vec<Box<str>>,
    negations: u32,
    /// `(group, side)` of each opposite used, sorted and deduplicated.
    opposites: Vec<(u16, u8)>,
    /// Hashes of entity words, sorted and deduplicated.
    entities: Vec<u64>,
    /// Hashes of every word, sorted and deduplicated.
    words: Vec<u64>,
    /// Hashes of the words the order check follows, in order.
    order: Vec<u64>,
}

/// The check that refused a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Numbers,
    Negations,
    Opposites,
    Entities,
    Order,
}

impl Check {
    pub fn label(self) -> &'static str {
        match self {
            Check::Numbers => "numbers",
            Check::Negations => "negations",
            Check::Opposites => "opposites",
            Check::Entities => "entities",
            Check::Order => "order",
        }
    }
}

impl Profile {
    /// The profile of a prompt's texts.
    pub fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Profile {
        let mut p = Profile::default();
        for text in texts {
            p.add(text);
        }
        p.numbers.sort();
        p.opposites.sort();
        p.opposites.dedup();
        p.entities.sort_unstable();
        p.entities.dedup();
        p.words.sort_unstable();
        p.words.dedup();
        p
    }

    fn add(&mut self, text: &str) {
        let toks = tokens(text);
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            let lower = t.lower.as_str();
            // Number words, joined into one value ("twenty five").
            if let Some((value, used)) =
                number_words(&toks[i..], i.checked_sub(1).map(|j| &toks[j]))
            {
                // Numbers mark positions too: "dollars in one euro" is not
                // "euros in one dollar".
                self.order.push(fnv(&value));
                self.numbers.push(value.into());
                for u in &toks[i..i + used] {
                    self.words.push(fnv(&u.lower));
                }
                i += used;
                continue;
            }
            let digits = digit_numbers(&t.text);
            for n in &digits {
                self.numbers.push(n.as_str().into());
            }
            if NEGATIONS.contains(&lower) || lower.ends_with("n't") {
                self.negations += 1;
            }
            self.opposites.extend(opposites(lower));
            let h = fnv(lower);
            self.words.push(h);
            if is_entity(t) {
                self.entities.push(h);
            }
            if !digits.is_empty() && !t.text.starts_with(char::is_alphabetic) {
                for n in &digits {
                    self.order.push(fnv(n));
                }
            } else if !STOPWORDS.contains(&lower) {
                self.order.push(fnv(&stem(lower)));
            }
            i += 1;
        }
    }

    /// The first enabled check the two prompts fail, if any.
    pub fn compare(&self, other: &Profile, guard: &Guard) -> Result<(), Check> {
        if guard.numbers && self.numbers != other.numbers {
            return Err(Check::Numbers);
        }
        if guard.negations && self.negations != other.negations {
            return Err(Check::Negations);
        }
        if guard.opposites && !same_sides(&self.opposites, &other.opposites) {
            return Err(Check::Opposites);
        }
        if guard.entities
            && !(contained(&self.entities, &other.words) && contained(&other.entities, &self.words))
        {
            return Err(Check::Entities);
        }
        if guard.order && !same_order(&self.order, &other.order) {
            return Err(Check::Order);
        }
        Ok(())
    }

    /// Heap bytes held, for the index's memory estimate.
    pub fn heap_bytes(&self) -> usize {
        self.numbers.iter().map(|n| n.len() + 16).sum::<usize>()
            + self.opposites.len() * 4
            + (self.entities.len() + self.words.len() + self.order.len()) * 8
    }
}

/// True when every group of opposites both use is used on the same sides.
fn same_sides(a: &[(u16, u8)], b: &[(u16, u8)]) -> bool {
    let sides = |v: &[(u16, u8)], g: u16| -> Vec<u8> {
        v.iter().filter(|(x, _)| *x == g).map(|(_, s)| *s).collect()
    };
    a.iter()
        .map(|(g, _)| *g)
        .filter(|g| b.iter().any(|(x, _)| x == g))
        .all(|g| sides(a, g) == sides(b, g))
}

/// True when every element of sorted `a` is in sorted `b`.
fn contained(a: &[u64], b: &[u64]) -> bool {
    a.iter().all(|x| b.binary_search(x).is_ok())
}

/// True when the words `a` and `b` share come in the same order, up to
/// moving one contiguous phrase.
fn same_order(a: &[u64], b: &[u64]) -> bool {
    let mut count_a: HashMap<u64, usize> = HashMap::new();
    for x in a {
        *count_a.entry(*x).or_default() += 1;
    }
    let mut count_b: HashMap<u64, usize> = HashMap::new();
    for x in b {
        *count_b.entry(*x).or_default() += 1;
    }
    let keep = |seq: &[u64]| -> Vec<u64> {
        let mut left: HashMap<u64, usize> = count_a
            .iter()
            .map(|(k, n)| (*k, (*n).min(count_b.get(k).copied().unwrap_or(0))))
            .collect();
        seq.iter()
            .copied()
            .filter(|x| match left.get_mut(x) {
                Some(n) if *n > 0 => {
                    *n -= 1;
                    true
                }
                _ => false,
            })
            .collect()
    };
    let (a, b) = (keep(a), keep(b));
    let prefix = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (a, b) = (&a[prefix..], &b[prefix..]);
    let suffix = a
        .iter()
        .rev()
        .zip(b.iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let (a, b) = (&a[..a.len() - suffix], &b[..b.len() - suffix]);
    // What is left must be one phrase moved: a rotation.
    a.is_empty() || (0..a.len()).any(|k| a[k..] == b[..a.len() - k] && a[..k] == b[a.len() - k..])
}

/// FNV-1a, for compact word identities.
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests;
