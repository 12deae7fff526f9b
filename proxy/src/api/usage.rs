//! Token usage as providers report it, normalized.
//!
//! `input` counts every prompt token, cached or not (OpenAI's
//! `prompt_tokens`; Anthropic's `input_tokens + cache_read_input_tokens +
//! cache_creation_input_tokens`). `cached_input` and `cache_creation` are the
//! parts of `input` read from or written to the provider's prompt cache;
//! `reasoning` is the part of `output` spent on reasoning.

use serde::Deserialize;
use serde_json::Value;

use super::{Event, Family};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_creation: u64,
    pub reasoning: u64,
}

#[derive(Deserialize, Default)]
struct OpenAiUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<OpenAiPromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<OpenAiCompletionDetails>,
}

#[derive(Deserialize, Default)]
struct OpenAiPromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OpenAiCompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct AnthropicUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Self {
        Usage {
            input: u.prompt_tokens,
            output: u.completion_tokens,
            cached_input: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_creation: 0,
            reasoning: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

/// A whole Anthropic answer's usage: what [`Usage::merge_anthropic`]
/// makes of it with nothing before it.
impl From<AnthropicUsage> for Usage {
    fn from(u: AnthropicUsage) -> Self {
        let mut usage = Usage::default();
        usage.merge_anthropic(&u);
        usage
    }
}

impl Usage {
    fn merge_anthropic(&mut self, u: &AnthropicUsage) {
        // message_start carries input and cache counts; message_delta carries
        // the cumulative output (and, on newer API versions, input again).
        let read = u.cache_read_input_tokens;
        let write = u.cache_creation_input_tokens;
        if let Some(i) = u.input_tokens {
            self.input =
                i + read.unwrap_or(self.cached_input) + write.unwrap_or(self.cache_creation);
        }
        if let Some(r) = read {
            self.cached_input = r;
        }
        if let Some(w) = write {
            self.cache_creation = w;
        }
        if let Some(o) = u.output_tokens {
            self.output = o;
        }
    }

    /// Usage from a complete (non-streamed) JSON response body.
    pub fn from_response_body(family: Family, body: &[u8]) -> Option<Usage> {
        Usage::of_response(family, &serde_json::from_slice::<Value>(body).ok()?)
    }

    /// Usage from a complete response, parsed.
    pub fn of_response(family: Family, body: &Value) -> Option<Usage> {
        Usage::of_field(family, body.get("usage")?)
    }

    /// A whole answer's usage; with `alone` (nothing else reads the
    /// answer's JSON) only its `usage` field is parsed and the rest is
    /// skipped, so no tree of the whole answer is built.
    pub(crate) fn of_body(family: Family, ev: &Event, alone: bool) -> Option<Usage> {
        if alone {
            // Read straight into the family's usage type: no tree for the
            // usage object. A field of another type or a repeated key fails
            // that read; the answer is then read as before (a tree of
            // `usage`, the last of repeated keys kept).
            let typed = match family {
                Family::OpenAi => ev
                    .read::<TypedView<OpenAiUsage>>()
                    .map(|b| b.usage.map(Usage::from)),
                Family::Anthropic => ev
                    .read::<TypedView<AnthropicUsage>>()
                    .map(|b| b.usage.map(Usage::from)),
            };
            match typed {
                Some(usage) => usage,
                None => Usage::of_field(family, &ev.read::<BodyView>()?.usage?),
            }
        } else {
            ev.json().and_then(|v| Usage::of_response(family, v))
        }
    }

    /// A whole answer checked to be JSON (`None`: it is not) and its
    /// usage, as a tree and [`Usage::of_field`] read them: the usage's
    /// counts alone, or, when the counts may misread it (a field of
    /// another type), the answer again with a tree of `usage`.
    pub(crate) fn of_checked(family: Family, ev: &Event) -> Option<Option<Usage>> {
        use crate::api::checked::{CheckedBody, UsageFields};
        match ev.read::<CheckedBody<UsageFields>>()?.usage {
            None => Some(None),
            Some(f) if !f.unsure => Some(Usage::of_fields(family, &f)),
            Some(_) => {
                let body = ev.read::<CheckedBody>()?;
                Some(body.usage.as_ref().and_then(|u| Usage::of_field(family, u)))
            }
        }
    }

    /// The counts of an answer's `usage` read without a tree, as
    /// [`Usage::of_field`] reads the tree (the caller reads the tree when
    /// `f.unsure`).
    fn of_fields(family: Family, f: &crate::api::checked::UsageFields) -> Option<Usage> {
        if f.null {
            return None;
        }
        match family {
            Family::OpenAi => Some(Usage::from(OpenAiUsage {
                prompt_tokens: f.prompt_tokens.unwrap_or(0),
                completion_tokens: f.completion_tokens.unwrap_or(0),
                prompt_tokens_details: Some(OpenAiPromptDetails {
                    cached_tokens: f.cached_tokens,
                }),
                completion_tokens_details: Some(OpenAiCompletionDetails {
                    reasoning_tokens: f.reasoning_tokens,
                }),
            })),
            Family::Anthropic => Some(Usage::from(AnthropicUsage {
                input_tokens: f.input_tokens,
                output_tokens: f.output_tokens,
                cache_creation_input_tokens: f.cache_creation_input_tokens,
                cache_read_input_tokens: f.cache_read_input_tokens,
            })),
        }
    }

    /// The answer's `usage` object in `family`'s shape (`null`: none).
    pub(crate) fn of_field(family: Family, u: &Value) -> Option<Usage> {
        if u.is_null() {
            return None;
        }
        match family {
            Family::OpenAi => OpenAiUsage::deserialize(u).ok().map(Usage::from),
            Family::Anthropic => AnthropicUsage::deserialize(u).ok().map(Usage::from),
        }
    }
}

/// An OpenAI chunk's `usage`, and whether its `choices` are an empty
/// list; `None` when either field has the wrong type (then the chunk says
/// nothing about usage).
fn read_chunk(chunk: &Value) -> Option<(Option<OpenAiUsage>, bool)> {
    let usage = match chunk.get("usage") {
        None | Some(Value::Null) => None,
        Some(u) => Some(OpenAiUsage::deserialize(u).ok()?),
    };
    let no_choices = match chunk.get("choices") {
        None | Some(Value::Null) => false,
        Some(Value::Array(c)) => c.is_empty(),
        Some(_) => return None,
    };
    Some((usage, no_choices))
}

/// The two fields of an OpenAI chunk usage capture needs, read straight
/// from its bytes; a field of the wrong type fails the read, as in
/// [`read_chunk`].
#[derive(Deserialize)]
struct ChunkView {
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    #[serde(default)]
    choices: Option<Vec<serde::de::IgnoredAny>>,
}

/// A whole answer with its `usage` field alone parsed.
#[derive(Deserialize)]
struct BodyView {
    #[serde(default)]
    usage: Option<Value>,
}

/// A whole answer with its `usage` field alone read, as `U`.
#[derive(Deserialize)]
struct TypedView<U> {
    #[serde(default = "Option::default")]
    usage: Option<U>,
}

/// Collects usage from the events of a streamed response.
#[derive(Debug, Default)]
pub struct StreamUsage {
    usage: Option<Usage>,
    /// The final figures arrived: OpenAI's usage chunk, Anthropic's
    /// `message_delta` (before it, `message_start` has the input only).
    complete: bool,
    /// No other phase reads the events' JSON: OpenAI chunks are read for
    /// their two fields alone rather than parsed whole.
    alone: bool,
}

impl StreamUsage {
    /// True when built by [`StreamUsage::alone`].
    pub(crate) fn is_alone(&self) -> bool {
        self.alone
    }

    /// For a stream whose JSON nothing else reads (routing only).
    pub(crate) fn alone() -> StreamUsage {
        StreamUsage {
            alone: true,
            ..StreamUsage::default()
        }
    }

    /// Feeds one SSE event; true for OpenAI's final usage-only chunk
    /// (`choices` empty, `usage` set: what `stream_options.include_usage`
    /// adds). OpenAI events are read for their `usage` and `choices`;
    /// Anthropic's only when named `message_start` or `message_delta` (the
    /// others are not parsed here). Decided on parsed JSON, so any
    /// formatting (spacing, field order) reads the same.
    pub fn observe(&mut self, family: Family, ev: &Event) -> bool {
        match family {
            Family::OpenAi => {
                let chunk = if self.alone {
                    ev.read::<ChunkView>().map(|c| {
                        let no_choices = c.choices.is_some_and(|c| c.is_empty());
                        (c.usage, no_choices)
                    })
                } else {
                    ev.json().and_then(read_chunk)
                };
                let Some((usage, no_choices)) = chunk else {
                    return false;
                };
                let usage_only = usage.is_some() && no_choices;
                if let Some(u) = usage {
                    self.usage = Some(Usage::from(u));
                    self.complete = true;
                }
                usage_only
            }
            Family::Anthropic => {
                let pointer = match ev.name() {
                    Some("message_start") => "/message/usage",
                    Some("message_delta") => "/usage",
                    _ => return false,
                };
                let u = ev
                    .json()
                    .and_then(|v| v.pointer(pointer))
                    .filter(|u| !u.is_null())
                    .and_then(|u| AnthropicUsage::deserialize(u).ok());
                if let Some(u) = u {
                    self.usage
                        .get_or_insert_with(Usage::default)
                        .merge_anthropic(&u);
                    self.complete |= ev.name() == Some("message_delta");
                }
                false
            }
        }
    }

    pub fn get(&self) -> Option<Usage> {
        self.usage
    }

    /// True once the stream reported its final usage.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A whole answer's usage read alone (its `usage` field only) is what
    /// the whole parse reads, in both APIs and any layout.
    #[test]
    fn a_body_read_alone_agrees_with_the_whole_parse() {
        let bodies: [(Family, &'static [u8]); 14] = [
            (Family::OpenAi, br#"{"id":"c","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}"#),
            (Family::OpenAi, br#"{ "usage" : { "completion_tokens" : 5 , "prompt_tokens" : 3, "prompt_tokens_details": {"cached_tokens": 1} }, "choices": [] }"#),
            (Family::OpenAi, br#"{"choices":[],"usage":null}"#),
            (Family::OpenAi, br#"{"choices":[]}"#),
            (Family::OpenAi, br#"[1,2]"#),
            (Family::OpenAi, br#"{"usage":{"prompt_tokens":"three"}}"#),
            (Family::Anthropic, br#"{"type":"message","content":[{"type":"text","text":"hi"}],"usage":{"input_tokens":4,"output_tokens":6,"cache_read_input_tokens":2}}"#),
            (Family::Anthropic, br#"{"usage": {"output_tokens": 6, "input_tokens": 4}, "type": "message"}"#),
            // A repeated key: the last one counts, as in the tree.
            (Family::OpenAi, br#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens":7}}"#),
            (Family::Anthropic, br#"{"usage":{"input_tokens":1,"input_tokens":9,"output_tokens":2}}"#),
            (Family::OpenAi, br#"{"usage":{"prompt_tokens":1,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":null}}}"#),
            (Family::OpenAi, br#"{"usage":{"prompt_tokens":1.0,"completion_tokens":2}}"#),
            (Family::Anthropic, br#"{"usage":{"input_tokens":-1,"output_tokens":2}}"#),
            // serde reads a struct from a list too (fields in order), both ways.
            (Family::OpenAi, br#"{"usage":[1],"choices":[]}"#),
        ];
        let mut found = 0;
        for (family, data) in bodies {
            let body = || Event::body(bytes::Bytes::from_static(data));
            let whole = Usage::of_body(family, &body(), false);
            let alone = Usage::of_body(family, &body(), true);
            assert_eq!(whole, alone, "{}", String::from_utf8_lossy(data));
            found += usize::from(alone.is_some());
        }
        assert_eq!(found, 8);
    }

    /// Whether a chunk is usage-only, read both ways (whole parse and the
    /// two-field read), which must agree.
    fn usage_only(data: &'static [u8]) -> bool {
        let shared = StreamUsage::default().observe(Family::OpenAi, &ev(None, data));
        let alone = StreamUsage::alone().observe(Family::OpenAi, &ev(None, data));
        assert_eq!(shared, alone, "{}", String::from_utf8_lossy(data));
        shared
    }

    fn ev(name: Option<&str>, data: &'static [u8]) -> Event {
        Event::new(name, bytes::Bytes::from_static(data))
    }

    #[test]
    fn usage_only_chunks_are_recognised_in_any_layout() {
        for yes in [
            &br#"{"choices":[],"usage":{"prompt_tokens":1}}"#[..],
            br#"{"usage": {"prompt_tokens": 1}, "id": "x", "choices": []}"#,
            b"{\n  \"choices\" : [ ],\n  \"usage\" : {}\n}",
            br#"{"\u0075sage": {"prompt_tokens": 1}, "choices": []}"#,
        ] {
            assert!(usage_only(yes), "{}", String::from_utf8_lossy(yes));
        }
        for no in [
            &br#"{"choices":[{"delta":{"content":"hi"}}],"usage":{"prompt_tokens":1}}"#[..],
            br#"{"choices": [], "usage": null}"#,
            br#"{"choices": []}"#,
            br#"{"usage": {}}"#,
            br#"{"choices": 3, "usage": {"prompt_tokens": 1}}"#,
            br#"{"choices": [], "usage": {"prompt_tokens": "x"}}"#,
            b"[DONE]",
            b"not json",
        ] {
            assert!(!usage_only(no), "{}", String::from_utf8_lossy(no));
        }
    }

    #[test]
    fn openai_body() {
        let b = br#"{"id":"x","usage":{"prompt_tokens":12,"completion_tokens":5,"total_tokens":17,"prompt_tokens_details":{"cached_tokens":4},"completion_tokens_details":{"reasoning_tokens":2}}}"#;
        let u = Usage::from_response_body(Family::OpenAi, b).unwrap();
        assert_eq!(
            u,
            Usage {
                input: 12,
                output: 5,
                cached_input: 4,
                cache_creation: 0,
                reasoning: 2
            }
        );
        assert_eq!(
            Usage::from_response_body(Family::OpenAi, br#"{"id":"x"}"#),
            None
        );
        assert_eq!(
            Usage::from_response_body(Family::OpenAi, br#"{"usage":null}"#),
            None
        );
    }

    #[test]
    fn anthropic_body_counts_cache_into_input() {
        let b = br#"{"usage":{"input_tokens":10,"output_tokens":3,"cache_creation_input_tokens":5,"cache_read_input_tokens":20}}"#;
        let u = Usage::from_response_body(Family::Anthropic, b).unwrap();
        assert_eq!(
            u,
            Usage {
                input: 35,
                output: 3,
                cached_input: 20,
                cache_creation: 5,
                reasoning: 0
            }
        );
    }

    #[test]
    fn anthropic_stream() {
        let mut s = StreamUsage::default();
        s.observe(Family::Anthropic, &ev(Some("message_start"), br#"{"type":"message_start","message":{"id":"m","usage":{"input_tokens":9,"output_tokens":1,"cache_read_input_tokens":3}}}"#));
        assert!(!s.is_complete(), "message_start has the input only");
        s.observe(
            Family::Anthropic,
            &ev(
                Some("content_block_delta"),
                br#"{"type":"content_block_delta","delta":{"text":"usage"}}"#,
            ),
        );
        s.observe(Family::Anthropic, &ev(Some("message_delta"), br#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":7}}"#));
        assert!(s.is_complete());
        assert_eq!(
            s.get(),
            Some(Usage {
                input: 12,
                output: 7,
                cached_input: 3,
                cache_creation: 0,
                reasoning: 0
            })
        );
    }

    #[test]
    fn openai_stream_takes_the_usage_chunk_only() {
        let mut s = StreamUsage::default();
        s.observe(
            Family::OpenAi,
            &ev(
                None,
                br#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#,
            ),
        );
        assert_eq!(s.get(), None);
        s.observe(
            Family::OpenAi,
            &ev(
                None,
                br#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            ),
        );
        assert_eq!(s.get().unwrap().output, 2);
        assert!(s.is_complete());
    }
}
