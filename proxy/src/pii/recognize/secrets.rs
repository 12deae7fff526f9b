//! Secrets: provider API keys, cloud, registry and chat tokens of the major
//! platforms, JWTs and PEM private keys by their fixed prefixes and shapes;
//! keys without a prefix (AWS secret keys, Azure account keys, a GCP key
//! file's id, Twilio keys) by the name they come under; and high-entropy
//! values right after a word like `password`, `secret`, `token` or `key`.
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
    /// A name whose assigned value, when it has this type's shape, is of
    /// this type (else it is judged as a keyword's).
    Named(Builtin),
    /// A service name; a key of its shape within the next few words.
    Near(Builtin),
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
    ("AIza", Hit::Prefix(Builtin::GoogleApiKey, "AIza")),
    ("hf_", Hit::Prefix(Builtin::HuggingfaceToken, "hf_")),
    ("sk_live_", Hit::Prefix(Builtin::StripeKey, "sk_live_")),
    ("sk_test_", Hit::Prefix(Builtin::StripeKey, "sk_test_")),
    ("rk_live_", Hit::Prefix(Builtin::StripeKey, "rk_live_")),
    ("rk_test_", Hit::Prefix(Builtin::StripeKey, "rk_test_")),
    ("glpat-", Hit::Prefix(Builtin::GitlabToken, "glpat-")),
    ("glptt-", Hit::Prefix(Builtin::GitlabToken, "glptt-")),
    ("gldt-", Hit::Prefix(Builtin::GitlabToken, "gldt-")),
    ("glrt-", Hit::Prefix(Builtin::GitlabToken, "glrt-")),
    ("npm_", Hit::Prefix(Builtin::NpmToken, "npm_")),
    (
        "pypi-AgEIcHlwaS5vcmc",
        Hit::Prefix(Builtin::PypiToken, "pypi-AgEIcHlwaS5vcmc"),
    ),
    (
        "AccountKey=",
        Hit::Prefix(Builtin::AzureStorageKey, "AccountKey="),
    ),
    (
        "SharedAccessKey=",
        Hit::Prefix(Builtin::AzureStorageKey, "SharedAccessKey="),
    ),
    ("SG.", Hit::Prefix(Builtin::SendgridKey, "SG.")),
    (
        "discord.com/api/webhooks/",
        Hit::Prefix(Builtin::DiscordWebhook, "discord.com/api/webhooks/"),
    ),
    (
        "discordapp.com/api/webhooks/",
        Hit::Prefix(Builtin::DiscordWebhook, "discordapp.com/api/webhooks/"),
    ),
    (":AA", Hit::Prefix(Builtin::TelegramBotToken, ":AA")),
    ("dapi", Hit::Prefix(Builtin::DatabricksToken, "dapi")),
    (
        "\"private_key_id\"",
        Hit::Prefix(Builtin::GcpServiceAccount, "\"private_key_id\""),
    ),
    // Named after the service: the key follows within a few words.
    ("twilio", Hit::Near(Builtin::TwilioKey)),
    // AWS names the secret key; its value has a fixed shape.
    ("aws_secret_access_key", Hit::Named(Builtin::AwsSecretKey)),
    ("secretaccesskey", Hit::Named(Builtin::AwsSecretKey)),
    ("aws secret access key", Hit::Named(Builtin::AwsSecretKey)),
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
    pub(super) fn new() -> Secrets {
        let ac = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostFirst)
            .ascii_case_insensitive(true)
            .build(PATTERNS.iter().map(|(p, _)| p))
            .expect("secret patterns compile");
        Secrets { ac }
    }

    pub(super) fn scan(&self, text: &str, on: &Enabled, out: &mut Vec<Finding>) {
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
                    assigned_value(b, m.start(), m.end())
                        .and_then(|(j, n)| generic(b, j, n, password))
                }
                Hit::Named(ty) => {
                    let (j, n) = match assigned_value(b, m.start(), m.end()) {
                        Some(v) => v,
                        None => continue,
                    };
                    match shaped(b, j, n, ty) {
                        Some(f) if on.get(ty) => Some(f),
                        _ if on.get(Builtin::GenericSecret) => generic(b, j, n, false),
                        _ => None,
                    }
                }
                Hit::Near(ty) => {
                    if !on.get(ty) {
                        continue;
                    }
                    near(b, m.end(), ty)
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
    let mid_token = matches!(
        ty,
        Builtin::PrivateKey
            | Builtin::TelegramBotToken
            | Builtin::DiscordWebhook
            | Builtin::AzureStorageKey
    );
    if s > 0
        && (b[s - 1].is_ascii_alphanumeric() || (ty != Builtin::SlackToken && b[s - 1] == b'_'))
        && !mid_token
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
        Builtin::GoogleApiKey => {
            let n = run(b, s + 4, |c| alnum(c) || c == b'-' || c == b'_');
            (n == 35).then_some(())?;
            f(s + 39, 0.95)
        }
        Builtin::HuggingfaceToken => {
            let n = run(b, s + 3, alnum);
            (n >= 30 && !b[s + 3..s + 3 + n].iter().all(u8::is_ascii_digit)).then_some(())?;
            f(s + 3 + n, 0.95)
        }
        Builtin::StripeKey => {
            let n = run(b, s + 8, alnum);
            (n >= 24).then_some(())?;
            f(s + 8 + n, 1.0)
        }
        Builtin::GitlabToken => {
            let body = s + run(b, s, |c| c != b'-') + 1;
            let n = run(b, body, |c| alnum(c) || c == b'-' || c == b'_');
            (n >= 20).then_some(())?;
            f(body + n, 1.0)
        }
        Builtin::NpmToken => {
            let n = run(b, s + 4, alnum);
            (n == 36).then_some(())?;
            f(s + 40, 1.0)
        }
        Builtin::PypiToken => {
            let n = run(b, s + 20, |c| alnum(c) || c == b'-' || c == b'_');
            (n >= 50).then_some(())?;
            f(s + 20 + n, 1.0)
        }
        Builtin::AzureStorageKey => {
            // The value after `AccountKey=` / `SharedAccessKey=`: base64.
            let v = s + run(b, s, |c| c != b'=') + 1;
            let n = run(b, v, |c| alnum(c) || c == b'+' || c == b'/' || c == b'=');
            (n >= 40 && b[v + n - 1] == b'=').then_some(())?;
            Some(Finding::new(v, v + n, ty, 0.95))
        }
        Builtin::SendgridKey => {
            let tok = |c: u8| alnum(c) || c == b'-' || c == b'_';
            let a = run(b, s + 3, tok);
            (a == 22 && b.get(s + 25) == Some(&b'.')).then_some(())?;
            let c = run(b, s + 26, tok);
            (c == 43).then_some(())?;
            f(s + 69, 1.0)
        }
        Builtin::DiscordWebhook => {
            let path = s + run(b, s, |c| c != b'/') + 1; // after the host
            let path = path + "api/webhooks/".len();
            let id = run(b, path, |c| c.is_ascii_digit());
            (id >= 15 && b.get(path + id) == Some(&b'/')).then_some(())?;
            let t = run(b, path + id + 1, |c| alnum(c) || c == b'-' || c == b'_');
            (t >= 60).then_some(())?;
            let start = if s >= 8 && &b[s - 8..s] == b"https://" {
                s - 8
            } else {
                s
            };
            Some(Finding::new(start, path + id + 1 + t, ty, 1.0))
        }
        Builtin::TelegramBotToken => {
            // `123456789:AA…`: the bot id before the hit, 33 more after `AA`.
            let mut id = s;
            while id > 0 && b[id - 1].is_ascii_digit() {
                id -= 1;
            }
            let digits = s - id;
            ((8..=10).contains(&digits) && (id == 0 || !word_char(b[id - 1]))).then_some(())?;
            let n = run(b, s + 3, |c| alnum(c) || c == b'-' || c == b'_');
            (n == 33).then_some(())?;
            Some(Finding::new(id, s + 36, ty, 0.95))
        }
        Builtin::DatabricksToken => {
            let n = run(b, s + 4, |c| {
                c.is_ascii_digit() || (b'a'..=b'h').contains(&c)
            });
            (n == 32).then_some(())?;
            let mut end = s + 36;
            if b.get(end) == Some(&b'-') && b.get(end + 1).is_some_and(u8::is_ascii_digit) {
                end += 2;
            }
            f(end, 1.0)
        }
        Builtin::GcpServiceAccount => {
            // `"private_key_id": "<40 hex>"` of a service-account key file.
            let mut j = s + 16;
            j += run(b, j, |c| c == b' ');
            (b.get(j) == Some(&b':')).then_some(())?;
            j += 1 + run(b, j + 1, |c| c == b' ');
            (b.get(j) == Some(&b'"')).then_some(())?;
            let n = run(b, j + 1, |c| c.is_ascii_hexdigit());
            (n == 40 && b.get(j + 41) == Some(&b'"')).then_some(())?;
            Some(Finding::new(j + 1, j + 41, ty, 1.0))
        }
        _ => None,
    }
}

/// A value of `ty`'s fixed shape at `j` (`n` value bytes).
fn shaped(b: &[u8], j: usize, n: usize, ty: Builtin) -> Option<Finding> {
    let v = &b[j..j + n];
    match ty {
        // 40 characters of base64 (`wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`).
        Builtin::AwsSecretKey => (n == 40
            && v.iter()
                .all(|&c| c.is_ascii_alphanumeric() || c == b'/' || c == b'+')
            && v.iter().any(u8::is_ascii_digit)
            && v.iter().any(u8::is_ascii_uppercase)
            && v.iter().any(u8::is_ascii_lowercase))
        .then(|| Finding::new(j, j + n, ty, 0.95)),
        _ => None,
    }
}

/// A key of `ty` within 64 bytes after the service's name that ended at
/// `from`.
fn near(b: &[u8], from: usize, ty: Builtin) -> Option<Finding> {
    let window = &b[from..(from + 64).min(b.len())];
    match ty {
        // A Twilio API key: `SK` and 32 hex digits.
        Builtin::TwilioKey => {
            let s = from + find(window, b"SK")?;
            let n = run(b, s + 2, |c| c.is_ascii_hexdigit());
            (n == 32 && !b.get(s + 34).is_some_and(|c| word_char(*c)))
                .then(|| Finding::new(s, s + 34, ty, 0.95))
        }
        _ => None,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value at `j..j + n` assigned to a secret-looking name (`password:
/// Tr0ub4dor&3`, `API_KEY="9fQ2xL7pZ0bK4mW8..."`, `the token is ...`), if it
/// looks like a secret: mixed character classes, high entropy or a
/// password's length, not a placeholder, URL or identifier.
fn generic(b: &[u8], j: usize, n: usize, password: bool) -> Option<Finding> {
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
    let score = if n >= 16 && entropy(v) >= 3.0 && !identifier(v) {
        0.8
    } else if password && (nclasses >= 3 || n >= 10) {
        0.7
    } else {
        return None;
    };
    Some(Finding::new(j, j + n, Builtin::GenericSecret, score))
}

/// A name rather than a secret: words of one case joined by `_`, `-` or
/// `.` (`ssn_invalid_range`, `auth-svc.timeout`, `MAX_RETRY_COUNT`), each
/// perhaps ending in a short number (`v2`). Entropy is high for such
/// strings, but a key is never made of words.
fn identifier(v: &[u8]) -> bool {
    let words: Vec<&[u8]> = v.split(|c| matches!(c, b'_' | b'-' | b'.')).collect();
    words.len() >= 2
        && words.iter().all(|w| {
            let letters = w.iter().take_while(|c| c.is_ascii_alphabetic()).count();
            let digits = &w[letters..];
            letters >= 1
                && digits.len() <= 2
                && digits.iter().all(u8::is_ascii_digit)
                && (w[..letters].iter().all(u8::is_ascii_lowercase)
                    || w[..letters].iter().all(u8::is_ascii_uppercase))
        })
}

/// Where the value assigned to the name at `ks..ke` is, and its length:
/// `name: value`, `NAME="value"`, `name => value`, `the name is value`.
fn assigned_value(b: &[u8], ks: usize, ke: usize) -> Option<(usize, usize)> {
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
    Some((j, n))
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

    /// Key formats of the major platforms (shapes as gitleaks and
    /// trufflehog document them; the values here are made up).
    #[test]
    fn platform_keys() {
        let hex32 = "0123456789abcdef0123456789abcdef";
        let b64_40 = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let azure = format!("{}==", "Ab1+".repeat(21) + "xy");
        let cases: Vec<(String, Builtin, String)> = vec![
            (
                "maps key AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY here".into(),
                Builtin::GoogleApiKey,
                "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY".into(),
            ),
            (
                format!("aws_secret_access_key = {b64_40}"),
                Builtin::AwsSecretKey,
                b64_40.into(),
            ),
            (
                format!("{{\"SecretAccessKey\": \"{b64_40}\"}}"),
                Builtin::AwsSecretKey,
                b64_40.into(),
            ),
            (
                "HF_TOKEN=hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh".into(),
                Builtin::HuggingfaceToken,
                "hf_AbCdEfGhIjKlMnOpQrStUvWxYzAbCdEfGh".into(),
            ),
            (
                "stripe sk_live_51H8aBcDeFgHiJkLmNoPqRsTu ok".into(),
                Builtin::StripeKey,
                "sk_live_51H8aBcDeFgHiJkLmNoPqRsTu".into(),
            ),
            (
                "restricted rk_test_51H8aBcDeFgHiJkLmNoPqRsTu".into(),
                Builtin::StripeKey,
                "rk_test_51H8aBcDeFgHiJkLmNoPqRsTu".into(),
            ),
            (
                "token glpat-x9Yz8AbCdEfGhIjKlMnO done".into(),
                Builtin::GitlabToken,
                "glpat-x9Yz8AbCdEfGhIjKlMnO".into(),
            ),
            (
                "//registry.npmjs.org/:_authToken=npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789".into(),
                Builtin::NpmToken,
                "npm_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789".into(),
            ),
            (
                format!("password = pypi-AgEIcHlwaS5vcmc{}", "Ab1_".repeat(14)),
                Builtin::PypiToken,
                format!("pypi-AgEIcHlwaS5vcmc{}", "Ab1_".repeat(14)),
            ),
            (
                format!("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={azure};EndpointSuffix=core.windows.net"),
                Builtin::AzureStorageKey,
                azure.clone(),
            ),
            (
                "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 done".into(),
                Builtin::SendgridKey,
                "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".into(),
            ),
            (
                format!("twilio api key SK{hex32} for sms"),
                Builtin::TwilioKey,
                format!("SK{hex32}"),
            ),
            (
                format!("post to https://discord.com/api/webhooks/123456789012345678/{}", "aB3-".repeat(17)),
                Builtin::DiscordWebhook,
                format!("https://discord.com/api/webhooks/123456789012345678/{}", "aB3-".repeat(17)),
            ),
            (
                "bot 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_ here".into(),
                Builtin::TelegramBotToken,
                "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw_".into(),
            ),
            (
                format!("DATABRICKS_TOKEN=dapi{}-2", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),
                Builtin::DatabricksToken,
                format!("dapi{}-2", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"),
            ),
            (
                format!("{{\"type\": \"service_account\", \"private_key_id\": \"{}\"}}", "0a1b2c3d4e".repeat(4)),
                Builtin::GcpServiceAccount,
                "0a1b2c3d4e".repeat(4),
            ),
        ];
        for (t, ty, want) in cases {
            let got = find_all(&t);
            // A keyword's generic finding over the same value may come too;
            // the engine keeps the higher-scored, specific one.
            let specific: Vec<_> = got
                .iter()
                .filter(|(b, _)| *b != Builtin::GenericSecret)
                .collect();
            assert_eq!(specific, [&(ty, want)], "{t}: {got:?}");
        }
        // Near misses: a prefix without the shape that follows it.
        for neg in [
            "AIzaSyShort",
            "the hf_model_name field",
            "sk_live_short",
            "glpat-short",
            "npm_install_hint",
            "SG.short.value",
            "skip the dapi docs",
            "version 12:AAB",
            "twilio costs SKU 1234",
            "aws_secret_access_key = changeme",
        ] {
            assert!(find_all(neg).is_empty(), "{neg}: {:?}", find_all(neg));
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
        // Words of mixed case with digits are not an identifier.
        assert_eq!(
            find_all("secret: x9Fq_Lm27_pQ8z_Wv41")[0].1,
            "x9Fq_Lm27_pQ8z_Wv41"
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
            "auth-svc: ssn_invalid_range",
            "token: refresh_token_expired_v2",
            "secret = DATABASE_URL_FROM_ENV",
            "auth: user-service.default.svc",
        ] {
            assert!(find_all(neg).is_empty(), "{neg}: {:?}", find_all(neg));
        }
    }
}
