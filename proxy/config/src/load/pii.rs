//! Validation of `pii:`.

use std::collections::HashSet;

use super::Validator;
use crate::model::{
    Builtin, CustomMatcher, CustomRecognizer, EntityPolicy, Pii, PromptGuard, GUARD_RULES,
};
use crate::raw::{PiiAction, RawCustomRecognizer, RawMetadata, RawPii};

/// Longest custom regex source and most dictionary terms, to keep a
/// policy's scan cost bounded.
const MAX_REGEX_LEN: usize = 4096;
const MAX_TERMS: usize = 100_000;

impl Validator {
    pub(super) fn pii(&mut self, raw: &RawPii, metadata: Option<&RawMetadata>) -> Pii {
        let d = Pii::default();
        if raw.is_empty() {
            return d;
        }
        let action = raw.action.unwrap_or(PiiAction::Mask);
        let min_score = self.score("pii.minScore", raw.min_score, d.min_score);
        let mut builtins: Vec<EntityPolicy> = Builtin::ALL
            .iter()
            .map(|_| EntityPolicy {
                enabled: true,
                action,
                min_score,
            })
            .collect();
        for (name, p) in &raw.entities {
            let at = format!("pii.entities.{name}");
            let Some(b) = Builtin::from_name(name) else {
                let known: Vec<_> = Builtin::ALL.iter().map(|b| b.name()).collect();
                self.err(
                    &at,
                    format!("unknown entity type (known: {})", known.join(", ")),
                );
                continue;
            };
            builtins[b.index()] = EntityPolicy {
                enabled: p.enabled.unwrap_or(true),
                action: p.action.unwrap_or(action),
                min_score: self.score(&format!("{at}.minScore"), p.min_score, min_score),
            };
        }

        let mut names = HashSet::new();
        let custom = raw
            .custom
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.custom(&format!("pii.custom[{i}]"), c, action, &mut names))
            .collect();

        let hash_salt = match &raw.hash_salt {
            Some(s) if s.chars().count() < 16 => {
                self.err("pii.hashSalt", "must be at least 16 characters".into());
                s.clone()
            }
            Some(s) => s.clone(),
            None => format!(
                "tollgate-pii:{}",
                metadata.and_then(|m| m.name.as_deref()).unwrap_or("")
            ),
        };
        let responses = raw.responses.clone().unwrap_or_default();
        let max_hold_back = self.bytes(
            "pii.responses.maxHoldBack",
            responses.max_hold_back.as_ref(),
            d.max_hold_back as u64,
        );
        if !(64..=1 << 20).contains(&max_hold_back) {
            self.err(
                "pii.responses.maxHoldBack",
                "must be between 64 bytes and 1Mi".into(),
            );
        }
        let guard = match &raw.prompt_guard {
            None => PromptGuard::default(),
            Some(g) => {
                for (i, r) in g.disabled_rules.iter().enumerate() {
                    if !GUARD_RULES.contains(&r.as_str()) {
                        self.err(
                            &format!("pii.promptGuard.disabledRules[{i}]"),
                            format!("unknown rule `{r}` (known: {})", GUARD_RULES.join(", ")),
                        );
                    }
                }
                let min_blob_length = g.min_blob_length.unwrap_or(256) as usize;
                if min_blob_length < 32 {
                    self.err(
                        "pii.promptGuard.minBlobLength",
                        "must be at least 32".into(),
                    );
                }
                PromptGuard {
                    enabled: g.enabled.unwrap_or(true),
                    user: g.user.unwrap_or(crate::raw::GuardAction::Flag),
                    tool_results: g.tool_results.unwrap_or(crate::raw::GuardAction::Flag),
                    disabled_rules: g.disabled_rules.clone(),
                    min_blob_length,
                }
            }
        };
        Pii {
            enabled: raw.enabled.unwrap_or(true),
            builtins,
            custom,
            min_score,
            hash_salt,
            scan_responses: responses.scan.unwrap_or(false),
            max_hold_back: max_hold_back as usize,
            guard,
        }
    }

    fn score(&mut self, path: &str, value: Option<f64>, default: f64) -> f64 {
        match value {
            None => default,
            Some(s) if (0.0..=1.0).contains(&s) => s,
            Some(s) => {
                self.err(path, format!("must be between 0 and 1, got {s}"));
                default
            }
        }
    }

    fn custom<'a>(
        &mut self,
        at: &str,
        c: &'a RawCustomRecognizer,
        action: PiiAction,
        names: &mut HashSet<&'a str>,
    ) -> Option<CustomRecognizer> {
        let valid_name = !c.name.is_empty()
            && c.name.len() <= 48
            && c.name.starts_with(|ch: char| ch.is_ascii_lowercase())
            && c.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            self.err(
                &format!("{at}.name"),
                format!(
                    "`{}` must be lowercase letters, digits and `_`, starting with a letter, at most 48 characters",
                    c.name
                ),
            );
        } else if Builtin::from_name(&c.name).is_some() {
            self.err(
                &format!("{at}.name"),
                format!(
                    "`{}` is a built-in type; configure it under pii.entities",
                    c.name
                ),
            );
        } else if !names.insert(c.name.as_str()) {
            self.err(
                &format!("{at}.name"),
                format!("`{}` is already a custom recognizer", c.name),
            );
        }
        let matcher = match (&c.regex, c.terms.is_empty()) {
            (Some(re), true) => {
                if re.len() > MAX_REGEX_LEN {
                    self.err(
                        &format!("{at}.regex"),
                        format!("longer than {MAX_REGEX_LEN} characters"),
                    );
                } else if let Err(e) = regex::RegexBuilder::new(re).size_limit(4 << 20).build() {
                    self.err(&format!("{at}.regex"), format!("does not compile: {e}"));
                } else if regex::Regex::new(re).is_ok_and(|r| r.is_match("")) {
                    self.err(&format!("{at}.regex"), "matches the empty string".into());
                }
                CustomMatcher::Regex(re.clone())
            }
            (None, false) => {
                if c.validator.is_some() {
                    self.err(
                        &format!("{at}.validator"),
                        "only applies to `regex` recognizers".into(),
                    );
                }
                if c.terms.len() > MAX_TERMS {
                    self.err(&format!("{at}.terms"), format!("at most {MAX_TERMS} terms"));
                }
                for (j, t) in c.terms.iter().enumerate() {
                    if t.trim().is_empty() {
                        self.err(&format!("{at}.terms[{j}]"), "must not be empty".into());
                    }
                }
                CustomMatcher::Terms(c.terms.iter().map(|t| t.trim().to_string()).collect())
            }
            (Some(_), false) => {
                self.err(at, "set exactly one of `regex` or `terms`, not both".into());
                return None;
            }
            (None, true) => {
                self.err(at, "set exactly one of `regex` or `terms`".into());
                return None;
            }
        };
        for (j, w) in c.context.iter().enumerate() {
            if w.trim().is_empty() {
                self.err(&format!("{at}.context[{j}]"), "must not be empty".into());
            }
        }
        let context_window = c.context_window.unwrap_or(40) as usize;
        if !(1..=1000).contains(&context_window) {
            self.err(
                &format!("{at}.contextWindow"),
                "must be between 1 and 1000".into(),
            );
        }
        Some(CustomRecognizer {
            name: c.name.clone(),
            matcher,
            validator: c.validator,
            context: c.context.iter().map(|w| w.trim().to_lowercase()).collect(),
            context_window,
            action: c.action.unwrap_or(action),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::from_yaml_str;
    use crate::model::*;

    const BASE: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {name: shop}
providers:
  - name: openai
    type: openai
    credentials: {env: OPENAI_API_KEY}
    models: [gpt-4o-mini]
"#;

    fn errors(pii: &str) -> Vec<String> {
        match from_yaml_str(&format!("{BASE}{pii}")) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.field_errors().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn absent_section_is_off() {
        let c = from_yaml_str(BASE).unwrap();
        assert!(!c.pii.is_active());
    }

    #[test]
    fn full_policy_loads() {
        let c = from_yaml_str(&format!(
            "{BASE}{}",
            r#"
pii:
  action: hash
  minScore: 0.6
  entities:
    email: {action: pseudonymize}
    ip_address: {enabled: false}
    phone: {minScore: 0.8}
  custom:
    - {name: employee_id, regex: 'EMP-\d{6}', context: [Employee], action: block}
    - {name: codename, terms: [" Bluebird ", Falcon]}
  responses: {scan: true, maxHoldBack: 1Ki}
  promptGuard: {user: strip, toolResults: block, disabledRules: [encoded_blob]}
"#
        ))
        .unwrap();
        let p = &c.pii;
        assert!(p.enabled && p.scan_responses && p.guard.enabled);
        assert_eq!(p.max_hold_back, 1024);
        assert_eq!(p.policy(Builtin::Email).action, PiiAction::Pseudonymize);
        assert_eq!(p.policy(Builtin::Iban).action, PiiAction::Hash);
        assert_eq!(p.policy(Builtin::Iban).min_score, 0.6);
        assert!(!p.policy(Builtin::IpAddress).enabled);
        assert_eq!(p.policy(Builtin::Phone).min_score, 0.8);
        assert_eq!(p.custom[0].context, ["employee"]);
        assert_eq!(p.custom[0].action, PiiAction::Block);
        assert_eq!(
            p.custom[1].matcher,
            CustomMatcher::Terms(vec!["Bluebird".into(), "Falcon".into()])
        );
        assert_eq!(p.custom[1].action, PiiAction::Hash);
        assert_eq!(p.hash_salt, "tollgate-pii:shop");
        assert_eq!(p.guard.tool_results, GuardAction::Block);
    }

    #[test]
    fn errors_name_their_field() {
        let errs = errors(
            r#"
pii:
  minScore: 2
  hashSalt: short
  entities: {emial: {action: mask}}
  custom:
    - {name: Bad-Name, regex: '('}
    - {name: email, terms: [x]}
    - {name: both, regex: 'a', terms: [a]}
    - {name: empty, regex: 'a*'}
    - {name: dict, terms: [a], validator: luhn}
  responses: {maxHoldBack: 8}
  promptGuard: {disabledRules: [nope]}
"#,
        );
        let want = [
            "pii.minScore: must be between 0 and 1",
            "pii.entities.emial: unknown entity type",
            "pii.custom[0].name: `Bad-Name` must be lowercase",
            "pii.custom[0].regex: does not compile",
            "pii.custom[1].name: `email` is a built-in type",
            "pii.custom[2]: set exactly one of `regex` or `terms`, not both",
            "pii.custom[3].regex: matches the empty string",
            "pii.custom[4].validator: only applies to `regex`",
            "pii.hashSalt: must be at least 16 characters",
            "pii.responses.maxHoldBack: must be between 64 bytes and 1Mi",
            "pii.promptGuard.disabledRules[0]: unknown rule `nope`",
        ];
        for w in want {
            assert!(
                errs.iter().any(|e| e.starts_with(w)),
                "missing {w:?} in {errs:#?}"
            );
        }
    }

    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../../../README.md");
        let start = readme
            .find("```yaml\npii:\n")
            .expect("README has a pii example")
            + 8;
        let block = &readme[start..start + readme[start..].find("```").unwrap()];
        let c = from_yaml_str(&format!("{BASE}{block}")).unwrap();
        assert_eq!(c.pii.custom.len(), 3);
        assert_eq!(c.pii.policy(Builtin::CreditCard).action, PiiAction::Block);
        assert_eq!(c.pii.guard.tool_results, GuardAction::Block);
    }

    #[test]
    fn unknown_field_is_a_parse_error_with_its_path() {
        let errs = errors("pii:\n  entities: {email: {acton: mask}}\n");
        assert!(errs[0].starts_with("pii.entities.email"), "{errs:?}");
    }
}
