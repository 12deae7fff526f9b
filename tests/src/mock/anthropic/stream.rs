//! The Messages stream: `message_start`, `content_block_start`, `ping`,
//! N × `content_block_delta` (`text_delta`, or `input_json_delta` for a
//! tool call), `content_block_stop`, `message_delta`, `message_stop`, each
//! framed as `event: NAME\ndata: JSON\n\n`.

use serde::Serialize;
use serde_json::Value;

use super::messages::{Answer, Block, Message, Plan, Usage};
use crate::mock::reply::Pieces;
use crate::mock::sse::{named_event, EventSource};

/// Events around the deltas: start, block start, ping / block stop, delta, stop.
const FRAME_EVENTS: usize = 6;

pub(super) struct MessageStream {
    plan: Plan,
    pieces: Pieces,
    step: usize,
}

impl MessageStream {
    pub(super) fn new(plan: Plan, chunks: usize) -> Self {
        let pieces = match &plan.answer {
            Answer::Text(r) => Pieces::by_words(&r.text, chunks),
            Answer::Tool { call, .. } => Pieces::by_chars(&call.arguments, chunks),
        };
        MessageStream {
            plan,
            pieces,
            step: 0,
        }
    }

    fn message_start(&self, buf: &mut Vec<u8>) {
        // Real streams report one output token up front; zeros when usage is omitted.
        let usage = if self.plan.omit_usage {
            Usage::new(0, 0)
        } else {
            Usage::new(self.plan.input_tokens, 1)
        };
        let message = Message {
            id: &self.plan.id,
            kind: "message",
            role: "assistant",
            model: &self.plan.model,
            content: &[],
            stop_reason: None,
            stop_sequence: None,
            usage: Some(usage),
        };
        named_event(
            buf,
            "message_start",
            &MessageStart {
                kind: "message_start",
                message,
            },
        );
    }

    fn block_start(&self, buf: &mut Vec<u8>) {
        let empty = Value::Object(serde_json::Map::new());
        let content_block = match &self.plan.answer {
            Answer::Text(_) => Block::Text { text: "" },
            Answer::Tool { call, id } => Block::ToolUse {
                id,
                name: &call.name,
                input: &empty,
            },
        };
        let event = BlockStart {
            kind: "content_block_start",
            index: 0,
            content_block,
        };
        named_event(buf, "content_block_start", &event);
    }

    fn block_delta(&self, buf: &mut Vec<u8>, piece: usize) {
        let delta = match &self.plan.answer {
            Answer::Text(r) => Delta::TextDelta {
                text: self.pieces.get(&r.text, piece),
            },
            Answer::Tool { call, .. } => Delta::InputJsonDelta {
                partial_json: self.pieces.get(&call.arguments, piece),
            },
        };
        let event = BlockDelta {
            kind: "content_block_delta",
            index: 0,
            delta,
        };
        named_event(buf, "content_block_delta", &event);
    }

    fn message_delta(&self, buf: &mut Vec<u8>) {
        let event = MessageDelta {
            kind: "message_delta",
            delta: StopDelta {
                stop_reason: self.plan.stop_reason,
                stop_sequence: None,
            },
            usage: (!self.plan.omit_usage).then_some(OutputUsage {
                output_tokens: self.plan.output_tokens,
            }),
        };
        named_event(buf, "message_delta", &event);
    }
}

impl EventSource for MessageStream {
    fn next_event(&mut self, buf: &mut Vec<u8>) -> bool {
        let step = self.step;
        self.step += 1;
        let deltas_end = 3 + self.pieces.len();
        match step {
            0 => self.message_start(buf),
            1 => self.block_start(buf),
            2 => named_event(buf, "ping", &Kind { kind: "ping" }),
            s if s < deltas_end => self.block_delta(buf, s - 3),
            s if s == deltas_end => named_event(
                buf,
                "content_block_stop",
                &BlockStop {
                    kind: "content_block_stop",
                    index: 0,
                },
            ),
            s if s == deltas_end + 1 => self.message_delta(buf),
            s if s == deltas_end + 2 => named_event(
                buf,
                "message_stop",
                &Kind {
                    kind: "message_stop",
                },
            ),
            _ => return false,
        }
        true
    }

    fn len(&self) -> usize {
        self.pieces.len() + FRAME_EVENTS
    }

    fn malformed(&self) -> &'static [u8] {
        b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\n\n"
    }
}

#[derive(Serialize)]
struct Kind {
    #[serde(rename = "type")]
    kind: &'static str,
}

#[derive(Serialize)]
struct MessageStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    message: Message<'a>,
}

#[derive(Serialize)]
struct BlockStart<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    content_block: Block<'a>,
}

#[derive(Serialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
    delta: Delta<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Delta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
}

#[derive(Serialize)]
struct BlockStop {
    #[serde(rename = "type")]
    kind: &'static str,
    index: u32,
}

#[derive(Serialize)]
struct MessageDelta {
    #[serde(rename = "type")]
    kind: &'static str,
    delta: StopDelta,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<OutputUsage>,
}

#[derive(Serialize)]
struct StopDelta {
    stop_reason: &'static str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
struct OutputUsage {
    output_tokens: u64,
}
