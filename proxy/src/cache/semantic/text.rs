//! What the semantic cache compares: a request's texts, and the scope hash
//! of everything else.
//!
//! The texts are the system prompt (Anthropic's `system`) and every message
//! text — a string `content` or the `text` of a `type: text` part — in
//! order. The scope hash covers what the exact key covers (policy, API,
//! operation, route and targets, tenant, every parameter) over the body
//! with those texts blanked: roles, the number and order of messages,
//! images, tool calls and tool results, tools and sampling parameters must
//! all match exactly; only the wording of the texts may differ.

use serde_json::Value;

use crate::cache::key::{hash, normalized, Key, Scope};

/// A request as the semantic cache sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompt {
    /// Non-empty texts, system prompt first.
    pub texts: Vec<String>,
    /// The partition of the index it may match in.
    pub scope: Key,
}

impl Prompt {
    /// The request's texts and scope, or `None` when it has no text.
    pub fn of(scope: &Scope<'_>, body: &Value) -> Option<Prompt> {
        let obj = body.as_object()?;
        let mut blank = normalized(obj);
        let mut texts = Vec::new();
        if let Some(system) = blank.get_mut("system") {
            take_texts(system, &mut texts);
        }
        if let Some(Value::Array(messages)) = blank.get_mut("messages") {
            for m in messages {
                if let Some(content) = m.get_mut("content") {
                    take_texts(content, &mut texts);
                }
            }
        }
        texts.retain(|t| !t.trim().is_empty());
        if texts.is_empty() {
            return None;
        }
        Some(Prompt {
            texts,
            scope: hash("tollgate-semantic-v1", scope, &blank),
        })
    }

    /// The text the index is searched with: the last one (normally the
    /// app's question).
    pub fn query(&self) -> &str {
        self.texts.last().map(String::as_str).unwrap_or("")
    }

    /// All texts together, when there is more than one: a long shared system
    /// prompt cannot hide a different question, because the query must match
    /// on its own too.
    pub fn context(&self) -> Option<String> {
        (self.texts.len() > 1).then(|| self.texts.join("\n\n"))
    }
}

/// Moves the texts out of a `content` (or `system`) value, leaving empty
/// strings in their place.
fn take_texts(content: &mut Value, out: &mut Vec<String>) {
    match content {
        Value::String(s) => out.push(std::mem::take(s)),
        Value::Array(parts) => {
            for p in parts {
                if p.get("type").and_then(Value::as_str) != Some("text") {
                    continue;
                }
                if let Some(Value::String(s)) = p.get_mut("text") {
                    out.push(std::mem::take(s));
                }
            }
        }
        _ => {}
    }
}
