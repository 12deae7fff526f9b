//! Offline token estimates with tiktoken: `o200k_base` for the gpt-4o,
//! gpt-4.1, gpt-5 and o-series families, `cl100k_base` for everything else
//! (Claude included, as an approximation: Anthropic publishes no tokenizer).
//!
//! Admission reserves with [`prompt_token_bound`]: the UTF-8 bytes of the
//! same texts, which no byte-level BPE count can exceed (every token is at
//! least one byte), computed without loading or running a tokenizer. The
//! tokenizer's count ([`estimate_prompt_tokens`]) is taken only where the
//! bound would be refused, and to settle a request whose provider reported
//! no usage. Message framing and images are counted with OpenAI's
//! documented overheads in both.

use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};

use tiktoken_rs::{cl100k_base_singleton, o200k_base_singleton, CoreBPE};

use crate::api::Family;

/// Framing tokens per chat message, and for priming the reply.
const PER_MESSAGE: u64 = 3;
const REPLY_PRIMING: u64 = 3;
/// An image at high detail (OpenAI: 1024×1024 = 765 tokens; Anthropic's
/// rule of thumb tops out near 1600).
const OPENAI_IMAGE: u64 = 765;
const ANTHROPIC_IMAGE: u64 = 1600;

/// The two encodings; which one a request uses is decided in
/// [`Encoding::of`] only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    O200k,
    Cl100k,
}

/// Set once an encoding's tables are loaded (indexed by [`Encoding`]):
/// loading one takes ~0.15 s of CPU (seconds unoptimized), which must not
/// happen on a worker that serves requests.
static WARM: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];

impl Encoding {
    /// The encoding of `model` in an API `family` (Anthropic models always
    /// use cl100k).
    pub(super) fn of(family: Family, model: &str) -> Encoding {
        match family {
            Family::OpenAi if is_o200k(model) => Encoding::O200k,
            _ => Encoding::Cl100k,
        }
    }

    /// True when counting needs no table load.
    pub(super) fn is_warm(self) -> bool {
        WARM[self as usize].load(Ordering::Relaxed)
    }

    fn bpe(self) -> &'static CoreBPE {
        let bpe = match self {
            Encoding::O200k => o200k_base_singleton(),
            Encoding::Cl100k => cl100k_base_singleton(),
        };
        WARM[self as usize].store(true, Ordering::Relaxed);
        bpe
    }
}

fn is_o200k(model: &str) -> bool {
    let m = model.rsplit('/').next().unwrap_or(model);
    [
        "gpt-4o",
        "chatgpt-4o",
        "gpt-4.1",
        "gpt-4.5",
        "gpt-5",
        "o1",
        "o3",
        "o4",
    ]
    .iter()
    .any(|p| m.starts_with(p))
        || m.starts_with("ft:gpt-4o")
        || m.starts_with("ft:gpt-4.1")
}

/// Tokens of `text` with `model`'s encoding (chosen by name).
pub(super) fn count_tokens(model: &str, text: &str) -> u64 {
    count(Encoding::of(Family::OpenAi, model).bpe(), text)
}

fn count(bpe: &CoreBPE, text: &str) -> u64 {
    if text.is_empty() {
        0
    } else {
        bpe.encode_ordinary(text).len() as u64
    }
}

/// Estimated prompt tokens of a request body: chat completions, legacy
/// completions, embeddings, responses, or Anthropic messages.
pub(super) fn estimate_prompt_tokens(family: Family, body: &Value) -> u64 {
    let model = body.get("model").and_then(Value::as_str).unwrap_or("");
    let bpe = Encoding::of(family, model).bpe();
    walk(family, body, &|text| count(bpe, text))
}

/// An upper bound of [`estimate_prompt_tokens`]: the same walk, each text
/// counted as its UTF-8 length. Costs one pass over the parsed body.
pub(super) fn prompt_token_bound(family: Family, body: &Value) -> u64 {
    walk(family, body, &|text| text.len() as u64)
}

fn walk(family: Family, body: &Value, count: &dyn Fn(&str) -> u64) -> u64 {
    let image = match family {
        Family::OpenAi => OPENAI_IMAGE,
        Family::Anthropic => ANTHROPIC_IMAGE,
    };
    let w = Walker { count, image };
    let mut n = 0;
    if let Some(messages) = body.get("messages").and_then(Value::as_array) {
        for m in messages {
            n += PER_MESSAGE + w.message(m);
        }
        n += REPLY_PRIMING;
    }
    for field in ["system", "prompt", "input", "instructions"] {
        if let Some(v) = body.get(field) {
            n += w.content(v);
        }
    }
    for field in ["tools", "functions"] {
        if let Some(v) = body.get(field) {
            n += w.json(v);
        }
    }
    n
}

struct Walker<'a> {
    count: &'a dyn Fn(&str) -> u64,
    image: u64,
}

impl Walker<'_> {
    fn message(&self, m: &Value) -> u64 {
        let mut n = m.get("content").map_or(0, |c| self.content(c));
        if m.get("name").is_some() {
            n += 1;
        }
        if let Some(calls) = m.get("tool_calls").and_then(Value::as_array) {
            for call in calls {
                if let Some(f) = call.get("function") {
                    n += self.text_field(f, "name") + self.text_field(f, "arguments");
                }
            }
        }
        n
    }

    /// A content value: a string, a list of parts, or a part.
    fn content(&self, v: &Value) -> u64 {
        match v {
            Value::String(s) => (self.count)(s),
            // Token-id prompts count as themselves.
            Value::Number(_) => 1,
            Value::Array(items) => items.iter().map(|i| self.content(i)).sum(),
            Value::Object(o) => {
                let kind = o.get("type").and_then(Value::as_str).unwrap_or("");
                if matches!(kind, "image_url" | "image" | "input_image") {
                    return self.image;
                }
                let mut n = 0;
                for key in ["text", "thinking", "arguments", "output"] {
                    if let Some(Value::String(s)) = o.get(key) {
                        n += (self.count)(s);
                    }
                }
                if let Some(c) = o.get("content") {
                    n += self.content(c);
                }
                if let Some(input) = o.get("input") {
                    n += self.json(input);
                }
                n
            }
            Value::Null | Value::Bool(_) => 0,
        }
    }

    fn text_field(&self, v: &Value, key: &str) -> u64 {
        v.get(key)
            .and_then(Value::as_str)
            .map_or(0, |s| (self.count)(s))
    }

    fn json(&self, v: &Value) -> u64 {
        match v {
            Value::String(s) => (self.count)(s),
            other => (self.count)(&other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn encodings_by_model() {
        // "hello world" is two tokens in both encodings; a distinguishing
        // string differs.
        assert_eq!(count_tokens("gpt-4o", "hello world"), 2);
        let text = "Grüß Gott, wie geht's? 日本語のテキスト";
        assert_ne!(count_tokens("gpt-4o", text), count_tokens("gpt-4", text));
        assert_eq!(count_tokens("o3-mini", text), count_tokens("gpt-4o", text));
        assert_eq!(
            count_tokens("claude-sonnet-4-5", text),
            count_tokens("gpt-3.5-turbo", text)
        );
        assert_eq!(count_tokens("gpt-4o", ""), 0);
        assert_eq!(
            count_tokens("gpt-4o", "<|endoftext|>"),
            7,
            "specials are text"
        );
    }

    #[test]
    fn openai_chat_matches_the_cookbook_formula() {
        let body = json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello world"}
        ]});
        let expected = 3 + count_tokens("gpt-4o", "You are terse.") + 3 + 2 + 3;
        assert_eq!(estimate_prompt_tokens(Family::OpenAi, &body), expected);
    }

    #[test]
    fn parts_images_tools_and_other_shapes() {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "hello world"},
            {"type": "image_url", "image_url": {"url": "data:..."}}
        ]}], "tools": [{"type": "function", "function": {"name": "f"}}]});
        let n = estimate_prompt_tokens(Family::OpenAi, &body);
        assert!(n > 3 + 2 + 765 + 3, "{n}");

        let emb =
            json!({"model": "text-embedding-3-small", "input": ["hello world", "hello world"]});
        assert_eq!(estimate_prompt_tokens(Family::OpenAi, &emb), 4);
        let ids = json!({"model": "gpt-3.5-turbo-instruct", "prompt": [[1, 2, 3]]});
        assert_eq!(estimate_prompt_tokens(Family::OpenAi, &ids), 3);

        let anthropic = json!({"model": "claude-sonnet-4-5", "system": "hello world",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "hello world"},
                {"type": "tool_result", "tool_use_id": "x", "content": "hello world"}]}]});
        assert_eq!(
            estimate_prompt_tokens(Family::Anthropic, &anthropic),
            2 + 3 + 4 + 3
        );
        assert_eq!(estimate_prompt_tokens(Family::OpenAi, &json!({})), 0);
    }

    #[test]
    fn the_bound_is_never_below_the_count() {
        let tools = json!([{"type": "function", "function": {"name": "lookup",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]);
        let texts = [
            "",
            "a",
            "hello world",
            "Grüß Gott, wie geht's? 日本語のテキスト 🦀🦀🦀",
            "    indented\n\n\tcode();  // trailing   ",
            "1234567890 3.14159 -42 0xdeadbeef",
            "<|endoftext|><|im_start|>",
        ];
        for model in ["gpt-4o-mini", "gpt-4", "claude-sonnet-4-5"] {
            for text in texts {
                let bodies = [
                    json!({"model": model, "messages": [
                        {"role": "system", "content": text},
                        {"role": "user", "name": "ann", "content": [{"type": "text", "text": text},
                            {"type": "image_url", "image_url": {"url": "data:"}}]},
                        {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
                            "function": {"name": "lookup", "arguments": text}}]}],
                        "tools": tools}),
                    json!({"model": model, "input": [text, text]}),
                    json!({"model": model, "system": text, "messages": [{"role": "user",
                        "content": [{"type": "tool_result", "content": text},
                                    {"type": "tool_use", "input": {"q": text}}]}]}),
                ];
                for family in [Family::OpenAi, Family::Anthropic] {
                    for body in &bodies {
                        let (n, bound) = (
                            estimate_prompt_tokens(family, body),
                            prompt_token_bound(family, body),
                        );
                        assert!(
                            bound >= n,
                            "{model} {family:?} {text:?}: bound {bound} < count {n}"
                        );
                    }
                }
            }
        }
        // One-byte texts: the bound is the count.
        let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "a"}]});
        assert_eq!(
            prompt_token_bound(Family::OpenAi, &body),
            estimate_prompt_tokens(Family::OpenAi, &body)
        );
    }

    #[test]
    fn counting_warms_its_encoding() {
        count_tokens("gpt-4o-mini", "hello");
        assert!(Encoding::of(Family::OpenAi, "gpt-4o-mini").is_warm());
        assert_eq!(
            Encoding::of(Family::OpenAi, "openai/o3-mini"),
            Encoding::O200k,
            "the same encoding"
        );
        count_tokens("claude-sonnet-4-5", "hello");
        assert!(Encoding::of(Family::Anthropic, "claude-sonnet-4-5").is_warm());
        assert_eq!(
            Encoding::of(Family::Anthropic, "gpt-4o"),
            Encoding::Cl100k,
            "Anthropic models always count with cl100k"
        );
        assert!(
            Encoding::of(Family::OpenAi, "gpt-4").is_warm(),
            "cl100k serves both"
        );
    }
}
