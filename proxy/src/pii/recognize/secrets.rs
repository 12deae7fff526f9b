//! Secrets: provider API keys, cloud and chat tokens, JWTs and PEM private
//! keys by their fixed prefixes, and high-entropy values right after a
//! word like `password`, `secret`, `token` or `key`.
//!
//! One Aho-Corasick automaton finds every prefix and keyword in a single
//! pass (its SIMD prefilter skips clean prose quickly); each hit is then
//! checked where it stands.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use tollgate_config::Builtin;

use super::Enabled;
use crate::pii::finding::Finding;
use crate::pii::validate::entropy;

#[derive(Clone, Copy)]
enum Hit {
    /// A case-sensitive literal prefix.
    Prefix(Builtin, &'static str),
    /// A word after which a secret value may follow. `password`-like words
    /// admit shorter values.
    Keyword { password: bool },
}

const PATTERNS: &[(&str, Hit)] = &[
    ("sk-ant-", Hit::Prefix(Builtin::AnthropicKey, "sk-ant-")),
    ("sk-", Hit::Prefix(Builtin::OpenaiKey, "sk-")),
    ("AKIA", Hit::Prefix(Builtin::AwsAccessKey, "AKIA")),
    ("ASIA", Hit::Prefix(Builtin::AwsAccessKey, "ASIA")),
    ("ABIA", Hit::Prefix(Builtin::AwsAccessKey, "ABIA")),
    ("ACCA", Hit::Prefix(Builtin::AwsAccessKey, "ACCA")),
    ("ghp_", Hit::Prefix(Builtin::GithubToken, "ghp_")),
    ("gho_", Hit::Prefix(Builtin::GithubToken, "gho_")),
    ("ghu_", Hit::Prefix(Builtin::GithubToken, "ghu_")),
    ("ghs_", Hit::Prefix(Builtin::GithubToken, "ghs_")),
    ("ghr_", Hit::Prefix(Builtin::GithubToken, "ghr_")),
    (
        "github_pat_",
        Hit::Prefix(Builtin::GithubToken, "github_pat_"),
    ),
    ("xox", Hit::Prefix(Builtin::SlackToken, "xox")),
    ("xapp-", Hit::Prefix(Builtin::SlackToken, "xapp-")),
    (
        "hooks.slack.com/",
        Hit::Prefix(Builtin::SlackToken, "hooks.slack.com/"),
    ),
    ("eyJ", Hit::Prefix(Builtin::Jwt, "eyJ")),
    (
        "-----BEGIN ",
        Hit::Prefix(Builtin::PrivateKey, "-----BEGIN "),
    ),
    ("password", Hit::Keyword { password: true }),
    ("passwd", Hit::Keyword { password: true }),
    ("passphrase", Hit::Keyword { password: true }),
    ("pwd", Hit::Keyword { password: true }),
    ("passwort", Hit::Keyword { password: true }),
    ("mot de passe", Hit::Keyword { password: true }),
    ("secret", Hit::Keyword { password: false }),
    ("token", Hit::Keyword { password: false }),
    ("apikey", Hit::Keyword { password: false }),
    ("api_key", Hit::Keyword { password: false }),
    ("api-key", Hit::Keyword { password: false }),
    ("api key", Hit::Keyword { password: false }),
    ("access key", Hit::Keyword { password: false }),
    ("credential", Hit::Keyword { password: false }),
    ("auth", Hit::Keyword { password: false }),
    ("bearer", Hit::Keyword { password: false }),
    ("key", Hit::Keyword { password: false }),
];

pub(super) struct Secrets {
    ac: AhoCorasick,
}

impl Secrets {
    pub fn new() -> Secrets {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .ascii_case_insensitive(true)
            .build(PATTERNS.iter().map(|(p, _)| p))
            .expect("secret patterns compile");
        Secrets { ac }
    }

    pub fn scan(&self, text: &str, on: &Enabled, out: &mut Vec<Finding>) {
        let b = text.as_bytes();
        let mut skip_to = 0;
        for m in self.ac.find_iter(text) {
            if m.start() < skip_to {
                continue;
            }
            let found = match PATTERNS[m.pattern().as_usize()].1 {
                Hit::Prefix(ty, lit) => {
                    if !on.get(ty) || &b[m.start()..m.end()] != lit.as_bytes() {
                        continue;
                    }
                    prefixed(b, m.start(), ty)
                }
                Hit::Keyword { password } => {
                    if !on.get(Builtin::GenericSecret) {
                        continue;
                    }
                    after_keyword(b, m.start(), m.end(), password)
                }
            };
            if let Some(f) = found {
                // A prefixed token is skipped whole; a keyword's value may
                // itself start with a prefix (`API_KEY=sk-...`), which then wins.
                if f.entity != crate::pii::finding::Entity::Builtin(Builtin::GenericSecret) {
                    skip_to = f.end;
                }
                out.push(f);
            }
        }
    }
}

fn word_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

fn run(b: &[u8], j: usize, f: impl Fn(u8) -> bool) -> usize {
    b[j.min(b.len())..].iter().take_while(|&&c| f(c)).count()
}

/// Validates the token a prefix starts.
fn prefixed(b: &[u8], s: usize, ty: Builtin) -> Option<Finding> {
    if s > 0
        && (b[s - 1].is_ascii_alphanumeric() || (ty != Builtin::SlackToken && b[s - 1] == b'_'))
        && ty != Builtin::PrivateKey
    {
        return None;
    }
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    let f = |end: usize, score: f32| Some(Finding::new(s, end, ty, score));
    match ty {
        Builtin::AnthropicKey => {
            let n = run(b, s + 7, word_char);
            (n >= 20).then_some(())?;
            f(s + 7 + n, 1.0)
        }
        Builtin::OpenaiKey => {
            let n = run(b, s + 3, word_char);
            let body = &b[s + 3..s + 3 + n];
            let mixed =
                body.iter().any(u8::is_ascii_digit) && body.iter().any(u8::is_ascii_alphabetic);
            (n >= 20 && mixed).then_some(())?;
            f(s + 3 + n, 0.95)
        }
        Builtin::AwsAccessKey => {
            let n = run(b, s + 4, |c| c.is_ascii_uppercase() || c.is_ascii_digit());
            (n == 16 && !b.get(s + 20).is_some_and(|c| c.is_ascii_alphanumeric())).then_some(())?;
            f(s + 20, 0.95)
        }
        Builtin::GithubToken => {
            let start = if b[s..].starts_with(b"github_pat_") {
                s + 11
            } else {
                s + 4
            };
            let n = run(b, start, |c| alnum(c) || c == b'_');
            (n >= 30).then_some(())?;
            f(start + n, 1.0)
        }
        Builtin::SlackToken if b[s..].starts_with(b"hooks.slack.com/") => {
            let path = s + 16;
            let n = run(b, path, |c| alnum(c) || c == b'/' || c == b'_');
            (b[path..].starts_with(b"services/") && n >= 20).then_some(())?;
            // Include the scheme when present.
            let start = if s >= 8 && &b[s - 8..s] == b"https://" {
                s - 8
            } else {
                s
            };
            Some(Finding::new(start, path + n, ty, 0.95))
        }
        Builtin::SlackToken => {
            let body = if b[s..].starts_with(b"xapp-") {
                s + 5
            } else {
                let kind = *b.get(s + 3)?;
                (matches!(kind, b'a' | b'b' | b'p' | b'o' | b'r' | b's' | b'e')
                    && b.get(s + 4) == Some(&b'-'))
                .then_some(())?;
                s + 5
            };
            let n = run(b, body, |c| alnum(c) || c == b'-');
            (n >= 10 && b[body..body + n].iter().any(u8::is_ascii_digit)).then_some(())?;
            f(body + n, 0.95)
        }
        Builtin::Jwt => {
            let b64 = |c: u8| alnum(c) || c == b'-' || c == b'_';
            let h = run(b, s, b64);
            (h >= 10 && b.get(s + h) == Some(&b'.')).then_some(())?;
            let p = run(b, s + h + 1, b64);
            (p >= 10 && b.get(s + h + 1 + p) == Some(&b'.')).then_some(())?;
            let sig = run(b, s + h + p + 2, b64);
            f(s + h + p + 2 + sig, 0.95)
        }
        Builtin::PrivateKey => {
            let label_end = s
                + 11
                + run(b, s + 11, |c| {
                    c.is_ascii_uppercase() || c.is_ascii_digit() || c == b' '
                });
            let label = &b[s + 11..label_end];
            (label.windows(11).any(|w| w == b"PRIVATE KEY")
                && b[label_end..].starts_with(b"-----"))
            .then_some(())?;
            let body = label_end + 5;
            let end = match find(&b[body..], b"-----END ") {
                Some(k) => {
                    let e = body + k + 9;
                    match find(&b[e..], b"-----") {
                        Some(k2) if k2 <= 40 => e + k2 + 5,
                        _ => b.len(),
                    }
                }
                // An unterminated block: everything after it is key material.
                None => b.len(),
            };
            f(end, 1.0)
        }
        _ => None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A value assigned to a secret-looking name: `password: Tr0ub4dor&3`,
/// `API_KEY="9fQ2xL7pZ0bK4mW8..."`, `the token is ...`.
fn after_keyword(b: &[u8], ks: usize, ke: usize, password: bool) -> Option<Finding> {
    if ks > 0 && b[ks - 1].is_ascii_alphabetic() {
        return None;
    }
    // The rest of an identifier: `_ID`, `s`, `_value`.
    let mut j = ke
        + run(b, ke, |c| {
            c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
        })
        .min(24);
    j += run(b, j, |c| {
        matches!(c, b' ' | b'"' | b'\'' | b'`' | b']' | b')')
    })
    .min(4);
    let assigned = match b.get(j..j + 2) {
        Some(b":=" | b"=>") => {
            j += 2;
            true
        }
        _ => match b.get(j) {
            Some(b':' | b'=') => {
                j += 1;
                true
            }
            _ => {
                let rest = &b[j..];
                if rest.len() > 3 && (rest[..3].eq_ignore_ascii_case(b"is ")) {
                    j += 3;
                    true
                } else if rest.len() > 4 && rest[..4].eq_ignore_ascii_case(b"was ") {
                    j += 4;
                    true
                } else {
                    false
                }
            }
        },
    };
    if !assigned {
        return None;
    }
    j += run(b, j, |c| matches!(c, b' ' | b'"' | b'\'' | b'`' | b'\t')).min(4);
    let value_char = |c: u8| c.is_ascii_alphanumeric() || b"+/=_-.~!@#$%^&*?()".contains(&c);
    let mut n = run(b, j, value_char).min(512);
    while n > 0 && b".,;:!?".contains(&b[j + n - 1]) {
        n -= 1;
    }
    let v = &b[j..j + n];
    if n < 8 {
        return None;
    }
    let classes = [
        v.iter().any(u8::is_ascii_lowercase),
        v.iter().any(u8::is_ascii_uppercase),
        v.iter().any(u8::is_ascii_digit),
        v.iter().any(|c| !c.is_ascii_alphanumeric()),
    ];
    let nclasses = classes.iter().filter(|&&x| x).count();
    let placeholder = v.iter().all(|&c| c == v[0]) || v.starts_with(b"${") || v.starts_with(b"<");
    if placeholder || nclasses < 2 || !(classes[2] || classes[3]) {
        return None;
    }
    // URLs and paths are not secrets.
    if v.contains(&b'/') && !v.iter().any(|&c| c == b'+' || c == b'=')
        || v.windows(3).any(|w| w == b"://")
    {
        return None;
    }
    let score = if n >= 16 && entropy(v) >= 3.0 {
        0.8
    } else if password && (nclasses >= 3 || n >= 10) {
        0.7
    } else {
        return None;
    };
    Some(Finding::new(j, j + n, Builtin::GenericSecret, score))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find_all(t: &str) -> Vec<(Builtin, String)> {
        let mut out = Vec::new();
        Secrets::new().scan(t, &Enabled::all(), &mut out);
        out.iter()
            .map(|f| match f.entity {
                crate::pii::finding::Entity::Builtin(b) => (b, t[f.start..f.end].to_string()),
                _ => unreachable!(),
            })
            .collect()
    }

    #[test]
    fn prefixed_tokens() {
        let cases = [
            ("key sk-proj-AbCdEf0123456789xYzAbCdEf01 ok", Builtin::OpenaiKey, "sk-proj-AbCdEf0123456789xYzAbCdEf01"),
            ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789", Builtin::AnthropicKey, "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"),
            ("aws AKIAIOSFODNN7EXAMPLE.", Builtin::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            ("ghp_0123456789abcdefghijABCDEFGHIJklmnop", Builtin::GithubToken, "ghp_0123456789abcdefghijABCDEFGHIJklmnop"),
            ("xoxb-1234567890-abcdefghij", Builtin::SlackToken, "xoxb-1234567890-abcdefghij"),
            ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX", Builtin::SlackToken, "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXX"),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U x", Builtin::Jwt, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
        ];
        for (t, ty, want) in cases {
            assert_eq!(find_all(t), [(ty, want.to_string())], "{t}");
        }
    }

    #[test]
    fn pem_blocks() {
        let t = "k: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- done";
        assert_eq!(
            find_all(t)[0].1,
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----"
        );
        let open = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNz";
        assert_eq!(find_all(open)[0].1, open, "unterminated: to the end");
        assert!(
            find_all("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----").is_empty()
        );
    }

    #[test]
    fn keyword_values() {
        assert_eq!(find_all("password: Tr0ub4dor&3")[0].1, "Tr0ub4dor&3");
        assert_eq!(
            find_all("export API_KEY=\"9fQ2xL7pZ0bK4mW8vR3t\"")[0].1,
            "9fQ2xL7pZ0bK4mW8vR3t"
        );
        assert_eq!(
            find_all("the client secret is aB3dE5gH7jK9mN1pQ3")[0].1,
            "aB3dE5gH7jK9mN1pQ3"
        );
        for neg in [
            "the password is strong",
            "max tokens: 4096",
            "key: value",
            "the keyboard is 12345678",
            "token = ${TOKEN}",
            "password: ********",
            "desk-top sk-short",
            "api key: https://example.com/docs/keys",
        ] {
            assert!(find_all(neg).is_empty(), "{neg}: {:?}", find_all(neg));
        }
    }
}
