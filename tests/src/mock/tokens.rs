//! The mock's tokenizer: one token per whitespace-separated word.

use serde_json::Value;

/// Words in a text.
pub(crate) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

/// Words in a message `content` (or `system`) value: a string, or an array of
/// parts whose `text` strings count, with `tool_result` contents counted
/// recursively. Anything else (images, tool calls) counts zero.
pub(crate) fn content_words(v: &Value) -> u64 {
    match v {
        Value::String(s) => words(s),
        Value::Array(parts) => parts.iter().map(part_words).sum(),
        _ => 0,
    }
}

fn part_words(part: &Value) -> u64 {
    match part {
        Value::String(s) => words(s),
        Value::Object(o) => {
            let text = o.get("text").and_then(Value::as_str).map_or(0, words);
            let nested = o.get("content").map_or(0, content_words);
            text + nested
        }
        _ => 0,
    }
}

/// Words of every message's content, at least 1.
pub(crate) fn prompt_words<'a>(contents: impl IntoIterator<Item = &'a Value>) -> u64 {
    contents.into_iter().map(content_words).sum::<u64>().max(1)
}

/// The text of the last `role: "user"` message: a string content as is, or
/// its text parts joined by a space.
pub(crate) fn last_user_text(messages: &[Value]) -> String {
    let Some(content) = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .and_then(|m| m.get("content"))
    else {
        return String::new();
    };
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => {
            let texts: Vec<&str> = parts
                .iter()
                .filter_map(|p| p.as_str().or_else(|| p.get("text")?.as_str()))
                .collect();
            texts.join(" ")
        }
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn counts_words_not_characters() {
        assert_eq!(words(""), 0);
        assert_eq!(words("  one\ttwo\nthree  "), 3);
    }

    #[test]
    fn counts_string_and_block_contents() {
        assert_eq!(content_words(&json!("a b c")), 3);
        let blocks = json!([
            {"type": "text", "text": "a b"},
            {"type": "image_url", "image_url": {"url": "x"}},
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "c d e"}]},
            {"type": "tool_result", "tool_use_id": "t", "content": "f"}
        ]);
        assert_eq!(content_words(&blocks), 6);
        assert_eq!(content_words(&Value::Null), 0);
    }

    #[test]
    fn prompt_is_at_least_one() {
        assert_eq!(prompt_words([&json!("")]), 1);
        assert_eq!(prompt_words([&json!("x y"), &json!("z")]), 3);
    }

    #[test]
    fn finds_last_user_text() {
        let msgs = vec![
            json!({"role": "system", "content": "sys"}),
            json!({"role": "user", "content": "first"}),
            json!({"role": "assistant", "content": "ok"}),
            json!({"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}),
        ];
        assert_eq!(last_user_text(&msgs), "a b");
        assert_eq!(last_user_text(&msgs[..3]), "first");
        assert_eq!(last_user_text(&[]), "");
    }
}
