//! Tokens a fixed prefix starts (`sk-`, `ghp_`, `AKIA`, `xoxb-`, JWTs, PEM
//! keys): each type's length, alphabet and checks from where the prefix
//! stands.

use tollgate_config::Builtin;

use super::{find, run, word_char};
use crate::pii::finding::Finding;

/// Validates the token a prefix starts.
pub(super) fn prefixed(b: &[u8], s: usize, ty: Builtin) -> Option<Finding> {
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
