//! The deterministic reply text and how it is cut into stream deltas.
//!
//! The rules are stated in the [module docs](super); this file is their only
//! implementation, shared by both APIs and by streamed and whole responses.

use super::switches::Switches;
use super::tokens::words;

/// Words of the last user message that make it into the reply.
const ECHO_WORDS: usize = 12;

const FILLER: [&str; 8] = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
];

/// The reply after switches and `max_tokens` were applied.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Reply {
    pub text: String,
    /// `max_tokens` cut it short.
    pub truncated: bool,
}

impl Reply {
    pub(super) fn build(
        model: &str,
        last_user: &str,
        sw: &Switches,
        max_tokens: Option<u64>,
    ) -> Reply {
        let mut text = match &sw.reply {
            Some(verbatim) => verbatim.clone(),
            None => {
                let mut t = generated(model, last_user);
                // Only an explicit chunk count pads; the default never does.
                pad(&mut t, sw.chunks.unwrap_or(0) as usize);
                t
            }
        };
        let truncated = match max_tokens {
            Some(max) => truncate_words(&mut text, max),
            None => false,
        };
        Reply { text, truncated }
    }

    pub(super) fn tokens(&self) -> u64 {
        words(&self.text)
    }
}

fn generated(model: &str, last_user: &str) -> String {
    let mut t = String::with_capacity(24 + model.len() + last_user.len().min(128));
    t.push_str("Mock reply from ");
    t.push_str(model);
    t.push(':');
    for w in last_user.split_whitespace().take(ECHO_WORDS) {
        t.push(' ');
        t.push_str(w);
    }
    t
}

/// Appends filler words until `text` has at least `min_words` words.
fn pad(text: &mut String, min_words: usize) {
    let have = words(text) as usize;
    for i in have..min_words {
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(FILLER[(i - have) % FILLER.len()]);
    }
}

/// Keeps the first `max` words; returns whether anything was dropped.
fn truncate_words(text: &mut String, max: u64) -> bool {
    let keep = usize::try_from(max).unwrap_or(usize::MAX);
    let Some((first_dropped, _)) = word_spans(text).nth(keep) else {
        return false;
    };
    let end = text[..first_dropped].trim_end().len();
    text.truncate(end);
    true
}

/// Byte offset and text of each whitespace-separated word.
fn word_spans(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.split_whitespace()
        .map(move |w| (w.as_ptr() as usize - text.as_ptr() as usize, w))
}

/// Cut points of a text: piece `i` is `text[b[i]..b[i + 1]]`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Pieces(Vec<usize>);

impl Pieces {
    /// At most `n` pieces (at least one), each starting at a word, words spread evenly.
    pub(super) fn by_words(text: &str, n: usize) -> Pieces {
        let starts: Vec<usize> = word_spans(text).map(|(s, _)| s).collect();
        let p = n.min(starts.len()).max(1);
        let mut b = Vec::with_capacity(p + 1);
        b.push(0);
        for i in 1..p {
            b.push(starts[i * starts.len() / p]);
        }
        b.push(text.len());
        Pieces(b)
    }

    /// At most `n` pieces (at least one) of about equal character count.
    pub(super) fn by_chars(text: &str, n: usize) -> Pieces {
        let chars = text.chars().count();
        let p = n.min(chars).max(1);
        let mut b = Vec::with_capacity(p + 1);
        b.push(0);
        let mut next = 1;
        for (ci, (bi, _)) in text.char_indices().enumerate() {
            if next < p && ci == next * chars / p {
                b.push(bi);
                next += 1;
            }
        }
        b.push(text.len());
        Pieces(b)
    }

    pub(super) fn len(&self) -> usize {
        self.0.len() - 1
    }

    pub(super) fn get<'t>(&self, text: &'t str, i: usize) -> &'t str {
        &text[self.0[i]..self.0[i + 1]]
    }
}

#[cfg(test)]
mod tests;
