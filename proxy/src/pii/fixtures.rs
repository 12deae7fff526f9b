//! Test builders: an engine from a `pii:` YAML snippet.
// The fuzz targets (feature `fuzzing`) use only some of these.
#![cfg_attr(not(test), allow(dead_code))]

use std::sync::Arc;

use super::Engine;

/// An engine for `pii` (the YAML body of the `pii:` section, indented by
/// two spaces per level as it would be under `pii:`).
pub(crate) fn engine(pii: &str) -> Arc<Engine> {
    let yaml = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nmetadata: {{name: t}}\nproviders:\n  - {{name: openai, type: openai, credentials: {{env: K}}, models: [m]}}\npii:\n{pii}\n"
    );
    let config = tollgate_config::from_yaml_str(&yaml).expect("test config loads");
    Engine::new(&config.pii).expect("policy is active")
}

/// Every built-in recognizer on, with `mask`.
pub(crate) fn default_engine() -> Arc<Engine> {
    engine("  enabled: true")
}

/// (type name, matched text) of each finding, in order.
pub(crate) fn found(e: &Engine, text: &str) -> Vec<(String, String)> {
    e.scanner
        .scan(text)
        .iter()
        .map(|f| {
            (
                e.name(f.entity).to_string(),
                text[f.start..f.end].to_string(),
            )
        })
        .collect()
}

/// An OpenAI stream chunk carrying `content` as choice 0's delta.
pub(crate) fn openai_chunk(content: &str) -> Vec<u8> {
    serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    .to_string()
    .into_bytes()
}

/// The OpenAI stream chunk that ends choice 0.
pub(crate) fn openai_finish() -> Vec<u8> {
    serde_json::json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    .to_string()
    .into_bytes()
}
