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
    let index = Index::new(words);
    index.any_word(&b[lo..start]) || index.any_word(&b[end..hi])
}

/// The words of one search, bucketed by their first letter, so each word
/// start of a window is compared only with the words that begin alike.
struct Index<'w> {
    words: &'w [&'w str],
    /// Per bucket of first letters, a bit per word (lists of up to 64
    /// words; longer ones are compared with every word start).
    buckets: Option<[u64; 32]>,
}

impl<'w> Index<'w> {
    fn new(words: &'w [&'w str]) -> Index<'w> {
        let buckets = (words.len() <= 64).then(|| {
            let mut buckets = [0u64; 32];
            for (k, w) in words.iter().enumerate() {
                if let Some(&c) = w.as_bytes().first() {
                    buckets[bucket(c)] |= 1 << k;
                }
            }
            buckets
        });
        Index { words, buckets }
    }

    /// True when a word of the index starts at a word start of `hay`.
    fn any_word(&self, hay: &[u8]) -> bool {
        for i in 0..hay.len() {
            if i > 0 && hay[i - 1].is_ascii_alphanumeric() {
                continue;
            }
            let found = match &self.buckets {
                Some(buckets) => {
                    let mut candidates = buckets[bucket(hay[i])];
                    let mut found = false;
                    while candidates != 0 && !found {
                        let k = candidates.trailing_zeros() as usize;
                        candidates &= candidates - 1;
                        found = word_at(hay, i, self.words[k].as_bytes());
                    }
                    found
                }
                None => self.words.iter().any(|w| word_at(hay, i, w.as_bytes())),
            };
            if found {
                return true;
            }
        }
        false
    }
}

/// The bucket of a first letter: ASCII letters of either case share one,
/// and no two letters share one.
fn bucket(c: u8) -> usize {
    (c.to_ascii_lowercase() & 31) as usize
}

/// True when `w` occurs at `i` (case-insensitively; words of three letters
/// or fewer must also end at a word boundary).
fn word_at(hay: &[u8], i: usize, w: &[u8]) -> bool {
    let j = i + w.len();
    j <= hay.len()
        && !w.is_empty()
        && hay[i..j].eq_ignore_ascii_case(w)
        && (w.len() > 3 || j == hay.len() || !hay[j].is_ascii_alphanumeric())
}

#[cfg(test)]
fn any_word(hay: &[u8], words: &[&str]) -> bool {
    Index::new(words).any_word(hay)
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

    #[test]
    fn long_word_lists_are_searched_whole() {
        let mut words: Vec<String> = (0..70).map(|i| format!("w{i}x")).collect();
        words.push("phone".into());
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        assert!(any_word(b"my phone is", &words));
        assert!(any_word(b"see w69x", &words));
        assert!(!any_word(b"see w70x and telephone", &words));
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
