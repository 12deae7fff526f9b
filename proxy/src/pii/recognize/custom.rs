//! Recognizers from the policy: regexes (with an optional checksum and
//! required context words) and dictionaries of exact terms.
//!
//! All regexes are first run together as one `RegexSet`, so a text none of
//! them matches costs one pass; all terms of all dictionaries share one
//! Aho-Corasick automaton.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::{Regex, RegexSet};
use tollgate_config::{CustomMatcher, CustomRecognizer, PiiValidator};

use super::context::near;
use crate::pii::finding::{Entity, Finding};
use crate::pii::validate;

struct Spec {
    validator: Option<PiiValidator>,
    context: Vec<String>,
    window: usize,
}

pub(super) struct Custom {
    specs: Vec<Spec>,
    set: Option<RegexSet>,
    /// (recognizer index, regex), in `set` order.
    regexes: Vec<(u16, Regex)>,
    dict: Option<AhoCorasick>,
    /// Recognizer index of each dictionary pattern.
    dict_owner: Vec<u16>,
}

impl Custom {
    pub(super) fn new(recognizers: &[CustomRecognizer]) -> Custom {
        let mut regexes = Vec::new();
        let mut terms: Vec<&str> = Vec::new();
        let mut dict_owner = Vec::new();
        for (i, r) in recognizers.iter().enumerate() {
            match &r.matcher {
                CustomMatcher::Regex(re) => {
                    regexes.push((i as u16, Regex::new(re).expect("validated at load")));
                }
                CustomMatcher::Terms(ts) => {
                    for t in ts {
                        terms.push(t);
                        dict_owner.push(i as u16);
                    }
                }
            }
        }
        let set = (!regexes.is_empty()).then(|| {
            RegexSet::new(regexes.iter().map(|(_, r)| r.as_str())).expect("validated at load")
        });
        let dict = (!terms.is_empty()).then(|| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostLongest)
                .ascii_case_insensitive(true)
                .build(&terms)
                .expect("terms compile")
        });
        Custom {
            specs: recognizers
                .iter()
                .map(|r| Spec {
                    validator: r.validator,
                    context: r.context.clone(),
                    window: r.context_window,
                })
                .collect(),
            set,
            regexes,
            dict,
            dict_owner,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    pub(super) fn scan(&self, text: &str, out: &mut Vec<Finding>) {
        if let Some(set) = &self.set {
            for k in set.matches(text).iter() {
                let (idx, re) = &self.regexes[k];
                for m in re.find_iter(text) {
                    if m.is_empty() {
                        continue;
                    }
                    if self.accept(*idx, text, m.start(), m.end()) {
                        out.push(custom(*idx, m.start(), m.end()));
                    }
                }
            }
        }
        if let Some(dict) = &self.dict {
            for m in dict.find_iter(text) {
                let idx = self.dict_owner[m.pattern().as_usize()];
                if word_bounded(text, m.start(), m.end())
                    && self.accept(idx, text, m.start(), m.end())
                {
                    out.push(custom(idx, m.start(), m.end()));
                }
            }
        }
    }

    fn accept(&self, idx: u16, text: &str, start: usize, end: usize) -> bool {
        let spec = &self.specs[idx as usize];
        let value = &text.as_bytes()[start..end];
        let valid = match spec.validator {
            None => true,
            Some(PiiValidator::Luhn) => validate::luhn(value),
            Some(PiiValidator::Mod97) => {
                let v: Vec<u8> = value
                    .iter()
                    .copied()
                    .filter(|c| c.is_ascii_alphanumeric())
                    .collect();
                validate::mod97(&v)
            }
        };
        if !valid {
            return false;
        }
        if spec.context.is_empty() {
            return true;
        }
        let words: Vec<&str> = spec.context.iter().map(String::as_str).collect();
        near(text, start, end, spec.window, spec.window, &words)
    }
}

fn custom(idx: u16, start: usize, end: usize) -> Finding {
    Finding {
        start,
        end,
        entity: Entity::Custom(idx),
        score: 1.0,
    }
}

/// No letter or digit (any script) touches the match on either side.
fn word_bounded(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_config::PiiAction;

    fn rec(
        name: &str,
        m: CustomMatcher,
        validator: Option<PiiValidator>,
        ctx: &[&str],
    ) -> CustomRecognizer {
        CustomRecognizer {
            name: name.into(),
            matcher: m,
            validator,
            context: ctx.iter().map(|s| s.to_string()).collect(),
            context_window: 30,
            action: PiiAction::Mask,
        }
    }

    fn spans(c: &Custom, t: &str) -> Vec<(u16, String)> {
        let mut out = Vec::new();
        c.scan(t, &mut out);
        out.iter()
            .map(|f| match f.entity {
                Entity::Custom(i) => (i, t[f.start..f.end].to_string()),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn regex_validator_and_context() {
        let c = Custom::new(&[
            rec(
                "emp",
                CustomMatcher::Regex(r"EMP-\d{6}".into()),
                None,
                &["employee"],
            ),
            rec(
                "acct",
                CustomMatcher::Regex(r"\b\d{16}\b".into()),
                Some(PiiValidator::Luhn),
                &[],
            ),
        ]);
        assert_eq!(
            spans(&c, "employee EMP-123456"),
            [(0, "EMP-123456".to_string())]
        );
        assert!(
            spans(&c, "ticket EMP-123456").is_empty(),
            "context required"
        );
        assert_eq!(
            spans(&c, "4111111111111111 4111111111111112"),
            [(1, "4111111111111111".to_string())]
        );
    }

    #[test]
    fn dictionary_is_case_insensitive_on_word_boundaries() {
        let c = Custom::new(&[rec(
            "code",
            CustomMatcher::Terms(vec!["Bluebird".into(), "Project Falcon".into()]),
            None,
            &[],
        )]);
        assert_eq!(
            spans(&c, "BLUEBIRD ships; project falcon slips"),
            [
                (0, "BLUEBIRD".to_string()),
                (0, "project falcon".to_string())
            ]
        );
        assert!(spans(&c, "bluebirds and xbluebird").is_empty());
    }
}
