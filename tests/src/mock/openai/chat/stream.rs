//! The chat completion stream: `chat.completion.chunk` events, then `[DONE]`.
//!
//! Order, per choice where it says so: a role chunk (with the tool call's
//! id and name when calling a tool), the content or argument pieces, a
//! chunk with an empty delta and the finish reason, the usage chunk when
//! `stream_options.include_usage` asked for it, and the sentinel.

use serde::Serialize;

use super::{Answer, Plan, FINGERPRINT};
use crate::mock::openai::usage::Usage;
use crate::mock::reply::Pieces;
use crate::mock::sse::{data_event, EventSource, DONE};

pub(in crate::mock::openai) struct ChatStream {
    plan: Plan,
    pieces: Pieces,
    /// Put `"usage"` on every chunk (null until the last).
    include_usage: bool,
    step: usize,
}

impl ChatStream {
    pub(super) fn new(plan: Plan, include_usage: bool, chunks: usize) -> Self {
        let pieces = match &plan.answer {
            Answer::Text(r) => Pieces::by_words(&r.text, chunks),
            Answer::Tool { call, .. } => Pieces::by_chars(&call.arguments, chunks),
        };
        ChatStream {
            plan,
            pieces,
            include_usage,
            step: 0,
        }
    }

    fn n(&self) -> usize {
        self.plan.n as usize
    }

    /// The final usage chunk is sent only when asked for and not omitted.
    fn usage_chunk(&self) -> bool {
        self.include_usage && self.plan.usage.is_some()
    }

    fn write_chunk(
        &self,
        buf: &mut Vec<u8>,
        choice: Option<ChunkChoice<'_>>,
        usage: Option<&Usage>,
    ) {
        let choices: &[ChunkChoice<'_>] = match &choice {
            Some(c) => std::slice::from_ref(c),
            None => &[],
        };
        let chunk = Chunk {
            id: &self.plan.id,
            object: "chat.completion.chunk",
            created: self.plan.created,
            model: &self.plan.model,
            service_tier: "default",
            system_fingerprint: FINGERPRINT,
            choices,
            usage: self.include_usage.then_some(usage),
        };
        data_event(buf, &chunk);
    }
}

impl EventSource for ChatStream {
    fn next_event(&mut self, buf: &mut Vec<u8>) -> bool {
        let n = self.n();
        let pieces = self.pieces.len();
        let step = self.step;
        self.step += 1;

        let roles = n;
        let contents = roles + n * pieces;
        let finishes = contents + n;
        if step < roles {
            let delta = match &self.plan.answer {
                Answer::Text(_) => Delta {
                    role: Some("assistant"),
                    content: Some(Some("")),
                    refusal: Some(None),
                    ..Delta::default()
                },
                Answer::Tool { call, id } => Delta {
                    role: Some("assistant"),
                    content: Some(None),
                    refusal: Some(None),
                    tool_calls: Some([ToolCallDelta {
                        index: 0,
                        id: Some(id),
                        kind: Some("function"),
                        function: FunctionDelta {
                            name: Some(&call.name),
                            arguments: "",
                        },
                    }]),
                },
            };
            self.write_chunk(buf, Some(ChunkChoice::new(step, delta, None)), None);
        } else if step < contents {
            let (piece, choice) = ((step - roles) / n, (step - roles) % n);
            let delta = match &self.plan.answer {
                Answer::Text(r) => Delta {
                    content: Some(Some(self.pieces.get(&r.text, piece))),
                    ..Delta::default()
                },
                Answer::Tool { call, .. } => Delta {
                    tool_calls: Some([ToolCallDelta {
                        index: 0,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: self.pieces.get(&call.arguments, piece),
                        },
                    }]),
                    ..Delta::default()
                },
            };
            self.write_chunk(buf, Some(ChunkChoice::new(choice, delta, None)), None);
        } else if step < finishes {
            let finish = Some(self.plan.finish_reason);
            let choice = ChunkChoice::new(step - contents, Delta::default(), finish);
            self.write_chunk(buf, Some(choice), None);
        } else if step == finishes && self.usage_chunk() {
            self.write_chunk(buf, None, self.plan.usage.as_ref());
        } else if step == finishes + usize::from(self.usage_chunk()) {
            buf.extend_from_slice(DONE);
        } else {
            return false;
        }
        true
    }

    fn len(&self) -> usize {
        self.n() * (self.pieces.len() + 2) + usize::from(self.usage_chunk()) + 1
    }

    fn malformed(&self) -> &'static [u8] {
        b"data: {\"id\":\"chatcmpl-broken\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\n\n"
    }
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    service_tier: &'static str,
    system_fingerprint: &'static str,
    choices: &'a [ChunkChoice<'a>],
    /// Absent unless `include_usage`; then null until the usage chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<&'a Usage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: usize,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

impl<'a> ChunkChoice<'a> {
    fn new(index: usize, delta: Delta<'a>, finish_reason: Option<&'static str>) -> Self {
        ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        }
    }
}

/// `Some(None)` serializes as `null`, `None` leaves the field out.
#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}
