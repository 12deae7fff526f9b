//! The checks on values carried between the APIs, and the text of parts
//! and blocks.

use serde_json::Value;

use super::{plain_text, Result, TranslateError};

/// The `text` of a text part or block: a string, as both APIs require.
pub(super) fn text_of<'a>(part: &'a Value, field: &str) -> Result<&'a str> {
    part.get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| TranslateError::invalid(format!("{field}.text"), "must be a string"))
}

/// The `text` of a text part or block that becomes (or is) an Anthropic
/// text block: the Messages API refuses an empty one.
pub(super) fn block_text<'a>(block: &'a Value, field: &str) -> Result<&'a str> {
    non_empty(text_of(block, field)?, &format!("{field}.text"))
}

// Values carried from one API to the other keep the type both give them:
// anything else is refused here, naming the field, rather than passed on
// for the provider to refuse (or to read some other way).

pub(super) fn positive_int(v: &Value, field: &str) -> Result<u64> {
    v.as_u64()
        .filter(|n| *n > 0)
        .ok_or_else(|| TranslateError::invalid(field, "must be a positive integer"))
}

pub(super) fn boolean(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::Bool(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(field, "must be a boolean")),
    }
}

pub(super) fn string(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::String(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(field, "must be a string")),
    }
}

pub(super) fn strings(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::Array(a) if a.iter().all(Value::is_string) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(
            field,
            "must be an array of strings",
        )),
    }
}

pub(super) fn object(v: &Value, field: &str) -> Result<Value> {
    match v {
        Value::Object(_) => Ok(v.clone()),
        _ => Err(TranslateError::invalid(field, "must be a JSON object")),
    }
}

/// A tool result's text: absent is empty, anything but text is refused.
pub(super) fn optional_text(content: &Value, field: &str) -> Result<String> {
    match content {
        Value::Null => Ok(String::new()),
        _ => plain_text(content).ok_or_else(|| TranslateError::invalid(field, "must be text")),
    }
}

/// Text the Messages API takes: a text block must not be empty.
pub(super) fn non_empty<'a>(text: &'a str, field: &str) -> Result<&'a str> {
    if text.is_empty() {
        return Err(TranslateError::invalid(field, "must not be empty"));
    }
    Ok(text)
}
