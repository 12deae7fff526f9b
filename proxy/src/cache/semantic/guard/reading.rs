//! A prompt as the guard reads it: words, entities, numbers (digits and
//! number words, normalised) and stems.

use super::words::{self, number_word, STARTERS, STOPWORDS};

/// A word of a prompt.
#[derive(Debug)]
pub(super) struct Token {
    /// As written.
    pub(super) text: String,
    /// Lower-case, curly apostrophes straightened, possessive `'s` dropped.
    pub(super) lower: String,
    /// First word of a sentence (its capital says nothing).
    pub(super) sentence_start: bool,
}

/// Splits text into words: letters, digits, `_` and apostrophes, with `.`
/// inside a word (`3.14`, `os.path`, `e.g`) and `,` between digits
/// (`1,000`).
pub(super) fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut start_of_sentence = true;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !(c.is_alphanumeric() || c == '_') {
            if matches!(c, '.' | '!' | '?' | ':' | ';' | '\n') {
                start_of_sentence = true;
            }
            i += 1;
            continue;
        }
        let begin = i;
        while i < chars.len() {
            let c = chars[i];
            let next = chars.get(i + 1).copied();
            let prev = if i > begin { chars[i - 1] } else { ' ' };
            let keep = c.is_alphanumeric()
                || c == '_'
                || (i > begin && matches!(c, '\'' | '’') && next.is_some_and(char::is_alphabetic))
                || (i > begin
                    && c == '.'
                    && prev.is_alphanumeric()
                    && next.is_some_and(char::is_alphanumeric))
                || (i > begin
                    && c == ','
                    && prev.is_ascii_digit()
                    && next.is_some_and(|n| n.is_ascii_digit()));
            if !keep {
                break;
            }
            i += 1;
        }
        let text: String = chars[begin..i].iter().collect();
        let mut lower = text.to_lowercase().replace('’', "'");
        if let Some(stem) = lower.strip_suffix("'s") {
            lower = stem.to_string();
        }
        out.push(Token {
            text,
            lower,
            sentence_start: start_of_sentence,
        });
        start_of_sentence = false;
    }
    out
}

/// A name, acronym, identifier or file name: a capital inside the word
/// (`iPhone`, `NASA`), a capitalized word not opening a sentence
/// (`France`), one opening a sentence that is not a common opener
/// (`Python lists …`), or a word starting with a letter that has digits,
/// `_` or `.` in it.
pub(super) fn is_entity(t: &Token) -> bool {
    let mut chars = t.text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let has_letter = t.text.chars().any(char::is_alphabetic);
    if !has_letter || t.text.chars().count() < 2 {
        return false;
    }
    if chars.any(char::is_uppercase) {
        return true;
    }
    // `gpt4o`, `h100`, `snake_case`, `os.path`; not `2nd` or `5km` (a
    // number and its unit, which the numbers check covers).
    if first.is_alphabetic()
        && t.text
            .chars()
            .any(|c| c.is_ascii_digit() || c == '_' || c == '.')
    {
        return true;
    }
    if first.is_uppercase() {
        let common = STOPWORDS.contains(&t.lower.as_str()) || STARTERS.contains(&t.lower.as_str());
        return !t.sentence_start || !common;
    }
    false
}

/// Numbers written with digits inside a word: `1,000` → `1000`, `3.50` →
/// `3.5`, `007` → `7`, `gpt4o` → `4`, `5th` → `5`.
pub(super) fn digit_numbers(word: &str) -> Vec<String> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let begin = i;
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || (matches!(chars[i], '.' | ',')
                    && chars.get(i + 1).is_some_and(|c| c.is_ascii_digit())))
        {
            i += 1;
        }
        out.push(normalize_number(
            &chars[begin..i].iter().collect::<String>(),
        ));
    }
    out
}

fn normalize_number(raw: &str) -> String {
    // `,` followed by groups of exactly three digits separates thousands;
    // any other `,` is a decimal comma.
    let groups: Vec<&str> = raw.split(',').collect();
    let thousands = groups.len() > 1
        && groups[1..]
            .iter()
            .all(|g| g.len() == 3 || (g.len() > 3 && g.as_bytes()[3] == b'.'));
    let s = if thousands {
        raw.replace(',', "")
    } else {
        raw.replace(',', ".")
    };
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) if !f.contains('.') => (i.to_string(), f.trim_end_matches('0').to_string()),
        // Versions and dates (`1.2.3`) stay as written.
        Some(_) => return s,
        None => (s.clone(), String::new()),
    };
    let int = int.trim_start_matches('0');
    let int = if int.is_empty() { "0" } else { int };
    if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    }
}

/// A run of number words at the start of `toks` ("two hundred and five"),
/// as its value and the number of tokens used.
pub(super) fn number_words(toks: &[Token], previous: Option<&Token>) -> Option<(String, usize)> {
    number_word(&toks[0].lower)?;
    // "which one", "the one", "this one": a pronoun, not a count.
    if toks[0].lower == "one"
        && previous.is_some_and(|p| {
            matches!(
                p.lower.as_str(),
                "which"
                    | "the"
                    | "this"
                    | "that"
                    | "each"
                    | "any"
                    | "every"
                    | "no"
                    | "some"
                    | "another"
                    | "a"
                    | "one"
                    | "only"
                    | "no-one"
                    | "someone"
            )
        })
    {
        return None;
    }
    let (mut total, mut current, mut used) = (0u64, 0u64, 0usize);
    let mut last_was_number = 0;
    for (k, t) in toks.iter().enumerate() {
        if let Some(w) = number_word(&t.lower) {
            match w {
                words::NumberWord::Unit(v) => current += v,
                words::NumberWord::Scale(100) => current = current.max(1) * 100,
                words::NumberWord::Scale(s) => {
                    total += current.max(1) * s;
                    current = 0;
                }
                words::NumberWord::Ordinal(v) => {
                    current += v;
                    used = k + 1;
                    break;
                }
            }
            used = k + 1;
            last_was_number = k;
        } else if t.lower == "and" && k == last_was_number + 1 && k + 1 < toks.len() {
            // "two hundred and five": keep going only if a number follows.
            if number_word(&toks[k + 1].lower).is_none() {
                break;
            }
        } else {
            break;
        }
    }
    Some(((total + current).to_string(), used))
}

/// A plural's singular, roughly (`dollars` → `dollar`, `cities` →
/// `city`), so the order check pairs up the same word in either number.
pub(super) fn stem(w: &str) -> std::borrow::Cow<'_, str> {
    if w.len() > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..w.len() - 3]).into();
    }
    if w.len() > 3 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") {
        return w[..w.len() - 1].into();
    }
    w.into()
}
