//! Context words: terms near a candidate that make it more (or less) likely
//! to be what it looks like, as Presidio's context enhancer does. A
//! ten-digit number after "call me at" is a phone number; after "order"
//! it is not.

/// How far before a candidate context words are looked for (bytes).
pub(crate) const BEFORE: usize = 48;
/// How far after.
pub(crate) const AFTER: usize = 24;

/// Score added when a context word is near.
pub(crate) const BOOST: f32 = 0.35;
/// Score removed when a negative context word is near.
pub(crate) const PENALTY: f32 = 0.4;
/// Negative words count only this close before a candidate.
pub(crate) const NEG_BEFORE: usize = 24;

/// True when one of `words` occurs within `before` bytes before `start` or
/// `after` bytes after `end`, ASCII case-insensitively, starting at a word
/// boundary (words of three letters or fewer must also end at one).
pub(crate) fn near(
    text: &str,
    start: usize,
    end: usize,
    before: usize,
    after: usize,
    words: &[&str],
) -> bool {
    let b = text.as_bytes();
    let lo = start.saturating_sub(before);
    let hi = (end + after).min(b.len());
    any_word(&b[lo..start], words) || any_word(&b[end..hi], words)
}

fn any_word(hay: &[u8], words: &[&str]) -> bool {
    // One pass over the word starts of the window, each compared with the
    // words that begin with its letter.
    for i in 0..hay.len() {
        if i > 0 && hay[i - 1].is_ascii_alphanumeric() {
            continue;
        }
        let first = hay[i].to_ascii_lowercase();
        for w in words.iter().map(|w| w.as_bytes()) {
            if w.first().map(u8::to_ascii_lowercase) != Some(first) || hay.len() - i < w.len() {
                continue;
            }
            if !hay[i..i + w.len()].eq_ignore_ascii_case(w) {
                continue;
            }
            let j = i + w.len();
            if w.len() <= 3 && j < hay.len() && hay[j].is_ascii_alphanumeric() {
                continue;
            }
            return true;
        }
    }
    false
}

/// `score`, raised by a positive and lowered by a negative context word.
pub(crate) fn adjust(
    text: &str,
    start: usize,
    end: usize,
    score: f32,
    pos: &[&str],
    neg: &[&str],
) -> f32 {
    adjust_weak(text, start, end, score, pos, &[], neg)
}

/// [`adjust`], where the `weak` words are positive only while no negative
/// word is near: "number" speaks for a phone, but in "order number" or
/// "account number" it is that word's noun.
pub(crate) fn adjust_weak(
    text: &str,
    start: usize,
    end: usize,
    score: f32,
    pos: &[&str],
    weak: &[&str],
    neg: &[&str],
) -> f32 {
    let negative = !neg.is_empty() && near(text, start, end, NEG_BEFORE, 8, neg);
    let positive = (!pos.is_empty() && near(text, start, end, BEFORE, AFTER, pos))
        || (!negative && !weak.is_empty() && near(text, start, end, BEFORE, AFTER, weak));
    let mut s = score;
    if positive {
        s += BOOST;
    }
    if negative {
        s -= PENALTY;
    }
    s.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_at_boundaries() {
        let t = "Call me at 415 555 0100 please";
        assert!(near(t, 11, 23, 48, 24, &["call"]));
        assert!(near(t, 11, 23, 48, 24, &["please"]));
        assert!(!near(t, 11, 23, 48, 24, &["all"]), "not mid-word");
        assert!(
            !near("my id3 tag 1234", 11, 15, 48, 24, &["id"]),
            "short words end at a boundary"
        );
        assert!(near("PHONE: 1234", 7, 11, 48, 24, &["phone"]));
    }

    /// The straightforward search: every position, every word.
    fn any_word_reference(hay: &[u8], words: &[&str]) -> bool {
        words.iter().any(|w| {
            let w = w.as_bytes();
            (0..hay.len()).any(|i| {
                !w.is_empty()
                    && hay.len() - i >= w.len()
                    && (i == 0 || !hay[i - 1].is_ascii_alphanumeric())
                    && hay[i..i + w.len()].eq_ignore_ascii_case(w)
                    && (w.len() > 3
                        || i + w.len() >= hay.len()
                        || !hay[i + w.len()].is_ascii_alphanumeric())
            })
        })
    }

    #[test]
    fn one_pass_search_agrees_with_the_reference() {
        let words = [
            "tel",
            "tel.",
            "phone",
            "social security",
            "ss#",
            "ip",
            "v",
            "Card",
        ];
        let alphabet = b"telphonsciaury#.vdC -1";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut found = 0;
        for _ in 0..20_000 {
            let mut hay = Vec::new();
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            for k in 0..len {
                let r = seed.rotate_left(k as u32 * 5);
                hay.push(alphabet[(r % alphabet.len() as u64) as usize]);
            }
            for n in 1..=words.len() {
                assert_eq!(
                    any_word(&hay, &words[..n]),
                    any_word_reference(&hay, &words[..n]),
                    "{:?} {:?}",
                    String::from_utf8_lossy(&hay),
                    &words[..n]
                );
            }
            found += usize::from(any_word(&hay, &words));
        }
        assert!(found > 500, "the inputs exercise matches ({found})");
    }
}
