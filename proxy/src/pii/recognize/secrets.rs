//! Secrets: provider API keys, cloud, registry and chat tokens of the major
//! platforms, JWTs and PEM private keys by their fixed prefixes and shapes;
//! keys without a prefix (AWS secret keys, Azure account keys, a GCP key
//! file's id, Twilio keys) by the name they come under; and high-entropy
//! values right after a word like `password`, `secret`, `token` or `key`.
//!
//! One Aho-Corasick automaton finds every prefix and keyword in a single
//! pass (its SIMD prefilter skips clean prose quickly); each hit is then
//! checked where it stands: a prefixed token's shape in [`prefixed`], a
//! value by the name it is assigned to in [`assigned`].

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use tollgate_config::Builtin;

use super::Enabled;
use crate::pii::finding::Finding;

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

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

mod assigned;
mod prefixed;

use assigned::{assigned_value, generic, near, shaped};
use prefixed::prefixed;

#[cfg(test)]
mod tests;
