//! `POST /v1/completions`, the legacy text completion API.
//!
//! The reply follows the chat rules with the (first) prompt standing in for
//! the last user message. `n` choices share it. Streams send one
//! `text_completion` chunk per piece, a final chunk with an empty text and
//! the finish reason, the usage chunk when asked, then `[DONE]`.

use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::chat::StreamOptions;
use super::usage::Usage;
use crate::mock::body::MockBody;
use crate::mock::error::ApiError;
use crate::mock::ids;
use crate::mock::reply::{Pieces, Reply};
use crate::mock::router::Exchange;
use crate::mock::sse::{EventSource, DONE};
use crate::mock::tokens::words;

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    prompt: Option<Value>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u32>,
}

pub(super) async fn create(
    ex: &Exchange<'_>,
    context_length: bool,
) -> Result<Response<MockBody>, ApiError> {
    let req: CompletionRequest = ex.json()?;
    let model = req
        .model
        .ok_or_else(|| ApiError::bad_request("you must provide a model parameter"))?;
    let prompt = req.prompt.ok_or_else(|| super::missing("prompt"))?;
    let (first_prompt, prompt_tokens) = read_prompt(&prompt)?;
    if context_length {
        return Err(super::context_length(prompt_tokens, "prompt"));
    }
    let n = req.n.unwrap_or(1).clamp(1, 128);
    let sw = &ex.switches;
    let reply = Reply::build(&model, &first_prompt, sw, req.max_tokens);
    let finish_reason = if reply.truncated { "length" } else { "stop" };
    let usage =
        (!sw.omit_usage()).then(|| Usage::basic(prompt_tokens, reply.tokens() * u64::from(n)));
    let plan = Plan {
        id: ids::id("cmpl-", 29),
        created: ids::unix_now(),
        model,
        n,
        reply,
        finish_reason,
        usage,
    };
    if req.stream.unwrap_or(false) {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let pieces = Pieces::by_words(&plan.reply.text, sw.chunks() as usize);
        Ok(ex.stream(Box::new(CompletionStream {
            plan,
            pieces,
            include_usage,
            step: 0,
        })))
    } else {
        let choices: Vec<Choice<'_>> = (0..plan.n as usize)
            .map(|index| Choice {
                text: &plan.reply.text,
                index,
                logprobs: None,
                finish_reason: Some(plan.finish_reason),
            })
            .collect();
        let json = plan.render(&choices, plan.usage.as_ref().map(Some));
        Ok(ex.whole(json).await)
    }
}

/// The first prompt's text and the token count of all prompts: a string, an
/// array of strings, an array of token ids, or an array of such arrays.
fn read_prompt(prompt: &Value) -> Result<(String, u64), ApiError> {
    let invalid = || ApiError::bad_request("Invalid 'prompt'.").with_param("prompt");
    let (first, count) = match prompt {
        Value::String(s) => (s.clone(), words(s)),
        Value::Array(items) if items.iter().all(Value::is_number) => {
            (token_text(items), items.len() as u64)
        }
        Value::Array(items) => {
            let mut count = 0;
            for item in items {
                count += match item {
                    Value::String(s) => words(s),
                    Value::Array(tokens) => tokens.len() as u64,
                    _ => return Err(invalid()),
                };
            }
            let first = match items.first() {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(tokens)) => token_text(tokens),
                _ => String::new(),
            };
            (first, count)
        }
        _ => return Err(invalid()),
    };
    Ok((first, count.max(1)))
}

/// Token ids stand in as words, so the reply echoes them.
fn token_text(tokens: &[Value]) -> String {
    let ids: Vec<String> = tokens.iter().map(Value::to_string).collect();
    ids.join(" ")
}

struct Plan {
    id: String,
    created: u64,
    model: String,
    n: u32,
    reply: Reply,
    finish_reason: &'static str,
    usage: Option<Usage>,
}

impl Plan {
    /// `usage`: `None` leaves it out, `Some(None)` writes null.
    fn render(&self, choices: &[Choice<'_>], usage: Option<Option<&Usage>>) -> Vec<u8> {
        let body = TextCompletion {
            id: &self.id,
            object: "text_completion",
            created: self.created,
            model: &self.model,
            choices,
            usage,
            system_fingerprint: super::chat::FINGERPRINT,
        };
        serde_json::to_vec(&body).expect("completions serialize")
    }
}

struct CompletionStream {
    plan: Plan,
    pieces: Pieces,
    include_usage: bool,
    step: usize,
}

impl CompletionStream {
    fn usage_chunk(&self) -> bool {
        self.include_usage && self.plan.usage.is_some()
    }

    fn chunk(&self, buf: &mut Vec<u8>, choices: &[Choice<'_>], usage: Option<&Usage>) {
        let usage = self.include_usage.then_some(usage);
        buf.extend_from_slice(b"data: ");
        buf.extend_from_slice(&self.plan.render(choices, usage));
        buf.extend_from_slice(b"\n\n");
    }
}

impl EventSource for CompletionStream {
    fn next_event(&mut self, buf: &mut Vec<u8>) -> bool {
        let n = self.plan.n as usize;
        let contents = n * self.pieces.len();
        let finishes = contents + n;
        let step = self.step;
        self.step += 1;
        if step < finishes {
            let (text, index, finish_reason) = if step < contents {
                let piece = self.pieces.get(&self.plan.reply.text, step / n);
                (piece, step % n, None)
            } else {
                ("", step - contents, Some(self.plan.finish_reason))
            };
            let choice = Choice {
                text,
                index,
                logprobs: None,
                finish_reason,
            };
            self.chunk(buf, std::slice::from_ref(&choice), None);
        } else if step == finishes && self.usage_chunk() {
            self.chunk(buf, &[], self.plan.usage.as_ref());
        } else if step == finishes + usize::from(self.usage_chunk()) {
            buf.extend_from_slice(DONE);
        } else {
            return false;
        }
        true
    }

    fn len(&self) -> usize {
        self.plan.n as usize * (self.pieces.len() + 1) + usize::from(self.usage_chunk()) + 1
    }

    fn malformed(&self) -> &'static [u8] {
        b"data: {\"id\":\"cmpl-broken\",\"object\":\"text_completion\",\"choices\":[{\"text\":\n\n"
    }
}

#[derive(Serialize)]
struct TextCompletion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [Choice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    text: &'a str,
    index: usize,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_prompt_form() {
        assert_eq!(read_prompt(&json!("a b")).unwrap(), ("a b".into(), 2));
        assert_eq!(
            read_prompt(&json!(["a b", "c"])).unwrap(),
            ("a b".into(), 3)
        );
        assert_eq!(read_prompt(&json!([1, 2, 3])).unwrap(), ("1 2 3".into(), 3));
        assert_eq!(
            read_prompt(&json!([[1, 2], [3]])).unwrap(),
            ("1 2".into(), 3)
        );
        assert_eq!(read_prompt(&json!("")).unwrap(), (String::new(), 1));
        assert!(read_prompt(&json!({"x": 1})).is_err());
    }
}
