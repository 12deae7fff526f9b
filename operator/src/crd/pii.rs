//! `spec.pii`: personal-data recognizers, their actions, and the prompt
//! guard. The same fields as the proxy's `pii` section, rendered into it as
//! written. The names the proxy knows (built-in entity types, guard rules)
//! come from its own lists, so the schema's enums follow them.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::{json_schema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tollgate_config::{Builtin, GUARD_RULES};

pub use tollgate_config::raw::{GuardAction, PiiAction, PiiValidator, Quantity};

/// PII filtering and prompt guard: personal data in prompts is masked,
/// hashed, pseudonymized or refused before it reaches a provider.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Pii {
    /// Scan requests. Default true once the section is present; false
    /// turns filtering off (admitted with a warning in a namespace labelled
    /// `tollgate.dev/personal-data: "true"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Action for every built-in entity type not listed in `entities`:
    /// `mask` (default, `[EMAIL]`), `hash` (salted token, equal values give
    /// equal tokens), `pseudonymize` (`[EMAIL_1]`, the original put back in
    /// the answer), `block` (400) or `audit` (counted only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PiiAction>,
    /// Findings scoring below this (0 to 1) are ignored. Default 0.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub min_score: Option<f64>,
    /// Not accepted by the operator: the salt would be stored in a
    /// ConfigMap. Leave it out; the `hash` action's key is derived from the
    /// policy's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_salt: Option<String>,
    /// Per built-in type: switch it off, or give it its own action or
    /// minimum score.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "entities")]
    pub entities: BTreeMap<String, EntityPolicy>,
    /// Recognizers of your own: a regex or a dictionary of terms, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub custom: Vec<CustomRecognizer>,
    /// Scanning of the provider's answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses: Option<Responses>,
    /// Prompt-injection detection on the input side.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_guard: Option<PromptGuard>,
}

/// The settings of one built-in entity type.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct EntityPolicy {
    /// Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Default: `pii.action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PiiAction>,
    /// Default: `pii.minScore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub min_score: Option<f64>,
}

/// A recognizer of your own: exactly one of `regex` or `terms`.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
#[x_kube(validation = Rule::new("has(self.regex) != (has(self.terms) && size(self.terms) > 0)")
    .message("set exactly one of regex or terms"))]
#[x_kube(validation = Rule::new("!has(self.validator) || has(self.regex)")
    .message("validator only applies to regex recognizers"))]
pub struct CustomRecognizer {
    /// The entity type it reports: lowercase letters, digits and `_`,
    /// starting with a letter, at most 48 characters; not a built-in
    /// type's name.
    #[schemars(schema_with = "custom_name")]
    pub name: String,
    /// A regex (Rust `regex` syntax), at most 4096 characters, that does
    /// not match the empty string; the whole match is the entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 4096))]
    pub regex: Option<String>,
    /// Exact terms (customer names, project code names), matched
    /// ASCII-case-insensitively on word boundaries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 100000))]
    pub terms: Vec<String>,
    /// Regex only: a checksum the match must pass: `luhn` (payment cards,
    /// IMEI) or `mod97` (IBAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validator: Option<PiiValidator>,
    /// Words that must appear near the match (case-insensitive).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub context: Vec<String>,
    /// How near, in characters before or after the match, 1 to 1000.
    /// Default 40.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub context_window: Option<u32>,
    /// Default: `pii.action`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PiiAction>,
}

/// Scanning of the provider's answers.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct Responses {
    /// Scan answers (whole and streamed) with the same recognizers: `mask`
    /// and `hash` apply, `block` masks (an answer cannot be refused
    /// midway), `pseudonymize` lets values through. Pseudonyms are put back
    /// in answers whether or not this is on. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<bool>,
    /// Streams: most text held back per choice while an entity may still be
    /// incomplete, bytes or a quantity, 64 to `1Mi`. Default `4Ki`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::crd::byte_size")]
    pub max_hold_back: Option<Quantity>,
}

/// Prompt-injection detection.
#[derive(KubeSchema, Serialize, Deserialize, Debug, Clone, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = crate::crd::own_docs)]
pub struct PromptGuard {
    /// Default true once the section is present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// For the app's user messages: `flag` (default: counted and named in
    /// `x-tollgate-guard`), `strip` (as flag, and invisible, bidirectional
    /// and tag characters removed) or `block` (400).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<GuardAction>,
    /// For tool results and retrieved content (indirect injection), as
    /// `user`. Default `flag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_results: Option<GuardAction>,
    /// Rules to switch off.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "guard_rules")]
    pub disabled_rules: Vec<String>,
    /// Shortest base64 or hex run counted as an encoded blob, at least 32.
    /// Default 256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 32))]
    pub min_blob_length: Option<u32>,
}

/// The built-in entity types' names, as a CEL list literal.
fn builtin_names() -> (Vec<&'static str>, String) {
    let names: Vec<&str> = Builtin::ALL.iter().map(|b| b.name()).collect();
    let cel = format!(
        "[{}]",
        names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    (names, cel)
}

/// `entities`: a map from a built-in type's name to its settings; other
/// keys are refused (CEL: a map's keys cannot be an enum).
fn entities(generator: &mut SchemaGenerator) -> Schema {
    let (names, cel) = builtin_names();
    let value = generator.subschema_for::<EntityPolicy>();
    let mut s = json_schema!({
        "type": "object",
        "additionalProperties": value,
        "maxProperties": names.len(),
    });
    s.insert(
        "x-kubernetes-validations".into(),
        json!([{
            "rule": format!("self.all(k, k in {cel})"),
            "message": format!("unknown entity type; the built-in types are {}", names.join(", ")),
        }]),
    );
    s
}

/// A custom recognizer's name: the proxy's pattern, and not a built-in
/// type's name.
fn custom_name(_: &mut SchemaGenerator) -> Schema {
    let (_, cel) = builtin_names();
    let mut s = json_schema!({
        "type": "string",
        "pattern": "^[a-z][a-z0-9_]{0,47}$",
        "maxLength": 48,
    });
    s.insert(
        "x-kubernetes-validations".into(),
        json!([{
            "rule": format!("!(self in {cel})"),
            "message": "is a built-in type; configure it under pii.entities",
        }]),
    );
    s
}

/// `disabledRules`: the proxy's guard rules.
fn guard_rules(_: &mut SchemaGenerator) -> Schema {
    let rules: Vec<Value> = GUARD_RULES.iter().map(|r| json!(r)).collect();
    json_schema!({
        "type": "array",
        "items": {"type": "string", "enum": rules},
    })
}
