//! JSON the fuzz targets build: a whole OpenAI answer around a text, and
//! a value written another way (keys reversed, whitespace, escaped characters).

use bytes::Bytes;
use serde_json::{json, Value};

pub(crate) fn openai_completion(content: &str) -> Bytes {
    Bytes::from(
        json!({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop"}]})
        .to_string(),
    )
}

/// `v` serialized with object keys in reverse order, spaces and newlines
/// between tokens, and every non-ASCII or control character escaped.
pub(crate) fn rewritten(v: &Value) -> Vec<u8> {
    let mut out = String::new();
    write(v, &mut out);
    out.into_bytes()
}

fn write(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push_str("{ ");
            for (i, (k, v)) in m.iter().rev().enumerate() {
                if i > 0 {
                    out.push_str(" ,\n ");
                }
                string(k, out);
                out.push_str(" :\t");
                write(v, out);
            }
            out.push_str(" }");
        }
        Value::Array(a) => {
            out.push_str("[ ");
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(" , ");
                }
                write(v, out);
            }
            out.push_str(" ]");
        }
        Value::String(s) => string(s, out),
        other => out.push_str(&other.to_string()),
    }
}

fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04X}"));
                }
            }
        }
    }
    out.push('"');
}

/// JSON equality with numbers compared by value (`0` and `0.0` are the
/// same number; a translator may write either).
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// [`same`] after joining each message content made only of text blocks
/// into one string and consecutive plain messages of one role into one
/// (blank line between): forms a translator may give the same prompt.
pub(crate) fn same_prompt(a: &Value, b: &Value) -> bool {
    same(&merged(joined(a)), &merged(joined(b)))
}

/// Consecutive plain-text messages of one role as one (blank line
/// between): the Messages API combines such turns itself.
fn merged(mut v: Value) -> Value {
    let Some(msgs) = v.get_mut("messages").and_then(Value::as_array_mut) else {
        return v;
    };
    let plain = |m: &Value| {
        m.as_object()
            .is_some_and(|o| o.len() == 2 && o.get("content").is_some_and(Value::is_string))
    };
    let mut out: Vec<Value> = Vec::new();
    for m in msgs.drain(..) {
        match out.last_mut() {
            Some(prev) if plain(prev) && plain(&m) && prev["role"] == m["role"] => {
                let text = format!(
                    "{}\n\n{}",
                    prev["content"].as_str().unwrap_or(""),
                    m["content"].as_str().unwrap_or("")
                );
                prev["content"] = Value::String(text);
            }
            _ => out.push(m),
        }
    }
    *msgs = out;
    v
}

fn joined(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    let text_only = v.as_array().and_then(|parts| {
                        parts
                            .iter()
                            .map(|p| {
                                let o = p.as_object()?;
                                (o.len() == 2 && o.get("type")? == "text")
                                    .then(|| o.get("text")?.as_str())
                                    .flatten()
                            })
                            .collect::<Option<Vec<&str>>>()
                    });
                    match text_only {
                        Some(texts) if k == "content" && !texts.is_empty() => {
                            (k.clone(), Value::String(texts.join("\n\n")))
                        }
                        _ => (k.clone(), joined(v)),
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(joined).collect()),
        other => other.clone(),
    }
}
