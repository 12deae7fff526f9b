//! The text an app was sent, for a token estimate when the provider
//! reports no usage or the response ended early: generated content, tool
//! call arguments and thinking, from stream events or a whole response of
//! either API.

use serde_json::Value;

use super::BLOCKING_TOKENIZE;
use crate::api::Family;
use crate::budget::BudgetEngine;

/// Text kept for an output estimate; beyond it, characters / 4.
pub(super) const MAX_TEXT: usize = 1 << 20;

/// Text the app was sent, bounded.
#[derive(Debug, Default)]
pub(crate) struct OutputText {
    pub(super) text: String,
    pub(super) beyond_chars: u64,
}

impl OutputText {
    pub(crate) fn push(&mut self, s: &str) {
        if self.text.len() + s.len() <= MAX_TEXT {
            self.text.push_str(s);
        } else {
            self.beyond_chars += s.chars().count() as u64;
        }
    }

    /// Adds the generated text of one stream event (content, tool-call
    /// arguments, thinking) of the provider's API.
    pub(crate) fn push_event(&mut self, family: Family, v: &Value) {
        match family {
            Family::OpenAi => {
                for c in v
                    .get("choices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(d) = c.get("delta") {
                        self.push_openai_message(d);
                    }
                    if let Some(t) = c.get("text").and_then(Value::as_str) {
                        self.push(t);
                    }
                }
            }
            Family::Anthropic => {
                if let Some(d) = v.get("delta") {
                    for f in ["text", "partial_json", "thinking"] {
                        if let Some(t) = d.get(f).and_then(Value::as_str) {
                            self.push(t);
                        }
                    }
                }
            }
        }
    }

    /// The generated text of a whole JSON response of the provider's API.
    pub(crate) fn of_response(family: Family, v: &Value) -> OutputText {
        let mut out = OutputText::default();
        match family {
            Family::OpenAi => {
                for c in v
                    .get("choices")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(m) = c.get("message") {
                        out.push_openai_message(m);
                    }
                    if let Some(t) = c.get("text").and_then(Value::as_str) {
                        out.push(t);
                    }
                }
            }
            Family::Anthropic => {
                for b in v
                    .get("content")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    for f in ["text", "thinking"] {
                        if let Some(t) = b.get(f).and_then(Value::as_str) {
                            out.push(t);
                        }
                    }
                    if let Some(input) = b.get("input") {
                        out.push(&input.to_string());
                    }
                }
            }
        }
        out
    }

    /// An OpenAI `message` or stream `delta`: content and tool calls.
    fn push_openai_message(&mut self, m: &Value) {
        if let Some(t) = m.get("content").and_then(Value::as_str) {
            self.push(t);
        }
        for call in m
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for f in ["name", "arguments"] {
                if let Some(t) = call
                    .pointer(&format!("/function/{f}"))
                    .and_then(Value::as_str)
                {
                    self.push(t);
                }
            }
        }
    }

    /// Tokens with `model`'s tokenizer.
    pub(crate) fn tokens(&self, model: &str) -> u64 {
        BudgetEngine::count_tokens(model, &self.text) + self.beyond_chars.div_ceil(4)
    }

    /// [`OutputText::tokens`], on the blocking pool when the text is long
    /// or the tokenizer is not loaded yet.
    pub(super) async fn count(&self, model: &str) -> u64 {
        // `count_tokens` picks the encoding by the model's name alone.
        let warm = BudgetEngine::tokenizer_warm(crate::api::Family::OpenAi, model);
        if self.text.len() <= BLOCKING_TOKENIZE && warm {
            return self.tokens(model);
        }
        let (text, model) = (self.text.clone(), model.to_string());
        let counted =
            tokio::task::spawn_blocking(move || BudgetEngine::count_tokens(&model, &text));
        counted.await.unwrap_or(self.text.len() as u64 / 4) + self.beyond_chars.div_ceil(4)
    }
}
