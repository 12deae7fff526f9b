//! `pii:`: personal-data recognizers, their actions, and the prompt guard,
//! as written.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Quantity;

/// PII filtering and prompt guard.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPii {
    /// Scan requests. Default `true` once the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Action for every built-in entity type not listed in `entities`.
    /// Default `mask`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PiiAction>,
    /// Findings scoring below this (0 to 1) are ignored. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
    /// Key of the `hash` action's tokens (at least 16 characters). Equal
    /// values hash equal under one salt. Default: derived from
    /// `metadata.name`; set it to keep tokens unguessable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_salt: Option<String>,
    /// Per built-in type (`email`, `phone`, `credit_card`, ...): switch it
    /// off, or give it its own action or minimum score.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub entities: BTreeMap<String, RawEntityPolicy>,
    /// Recognizers of your own: a regex or a dictionary of terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom: Vec<RawCustomRecognizer>,
    /// Scanning of the provider's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<RawPiiResponses>,
    /// Prompt-injection detection on the input side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_guard: Option<RawPromptGuard>,
}

impl RawPii {
    /// True when nothing is configured.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// What happens to a detected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PiiAction {
    /// Replace it with its type, e.g. `[EMAIL]`.
    Mask,
    /// Replace it with a salted hash token, e.g. `[EMAIL_7f3a9c]`: equal
    /// values give equal tokens.
    Hash,
    /// Replace it with a placeholder (`[EMAIL_1]`) and put the original
    /// back in the answer the app receives.
    Pseudonymize,
    /// Refuse the request with 400 naming the types found.
    Block,
    /// Change nothing; count it.
    Audit,
}

/// Settings of one built-in entity type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawEntityPolicy {
    /// Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PiiAction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_score: Option<f64>,
}

/// Validators a custom regex may require of its match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PiiValidator {
    /// The digits pass the Luhn checksum (payment cards, IMEI, ...).
    Luhn,
    /// ISO 7064 mod 97-10, as IBANs use (letters count as 10..35).
    Mod97,
}

/// A recognizer from the policy: exactly one of `regex` or `terms`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCustomRecognizer {
    /// The entity type it reports: lowercase letters, digits and `_`; not a
    /// built-in type's name.
    pub name: String,
    /// A regex (Rust `regex` syntax); the whole match is the entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    /// Exact terms (customer names, project code names), matched
    /// ASCII-case-insensitively on word boundaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<String>,
    /// Regex only: a checksum the match must pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<PiiValidator>,
    /// Words that must appear near the match (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// How near, in characters before or after the match. Default 40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Default: `pii.action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PiiAction>,
}

/// Response scanning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPiiResponses {
    /// Scan answers (whole and streamed) with the same recognizers: `mask`
    /// and `hash` apply, `block` masks (an answer cannot be refused
    /// midway), `pseudonymize` lets values through. Pseudonyms are put back
    /// in answers whether or not this is on. Default `false`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<bool>,
    /// Streams: most text held back per choice while an entity may still
    /// be incomplete. Default `4Ki`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_hold_back: Option<Quantity>,
}

/// What the prompt guard does on a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum GuardAction {
    /// Count it and name the rules in `x-tollgate-guard`.
    Flag,
    /// As `flag`, and remove invisible, bidirectional and tag characters.
    Strip,
    /// Refuse the request with 400 naming the rules.
    Block,
}

/// Prompt-injection detection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawPromptGuard {
    /// Default `true` once the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// For the app's user messages. Default `flag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<GuardAction>,
    /// For tool results and retrieved content (indirect injection).
    /// Default `flag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_results: Option<GuardAction>,
    /// Rules to switch off: `instruction_override`, `role_play`,
    /// `prompt_leak`, `invisible_chars`, `bidi_chars`, `tag_chars`,
    /// `encoded_blob`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_rules: Vec<String>,
    /// Shortest base64 or hex run counted as an encoded blob. Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_blob_length: Option<u32>,
}
