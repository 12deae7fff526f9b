//! `POST /v1/messages` (whole; streams are in [`super::stream`]) and
//! `POST /v1/messages/count_tokens`.

use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::stream::MessageStream;
use crate::mock::body::MockBody;
use crate::mock::error::ApiError;
use crate::mock::ids;
use crate::mock::reply::Reply;
use crate::mock::router::Exchange;
use crate::mock::tokens;
use crate::mock::tools::ToolCall;

#[derive(Deserialize)]
struct MessagesRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

fn required(field: &str) -> ApiError {
    ApiError::bad_request(format!("{field}: Field required"))
}

impl MessagesRequest {
    /// Model, messages and input tokens, or the 400 for what is missing.
    fn basics(&self) -> Result<(&str, &[Value], u64), ApiError> {
        let model = self.model.as_deref().ok_or_else(|| required("model"))?;
        let messages = self
            .messages
            .as_deref()
            .ok_or_else(|| required("messages"))?;
        if messages.is_empty() {
            return Err(ApiError::bad_request(
                "messages: at least one message is required",
            ));
        }
        let contents = messages.iter().filter_map(|m| m.get("content"));
        let input = tokens::prompt_words(self.system.iter().chain(contents));
        Ok((model, messages, input))
    }
}

/// What the assistant says, decided once for both response forms.
pub(super) struct Plan {
    pub id: String,
    pub model: String,
    pub answer: Answer,
    pub stop_reason: &'static str,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub omit_usage: bool,
}

pub(super) enum Answer {
    Text(Reply),
    Tool { call: ToolCall, id: String },
}

pub(super) async fn create(
    ex: &Exchange<'_>,
    context_length: bool,
) -> Result<Response<MockBody>, ApiError> {
    let req: MessagesRequest = ex.json()?;
    let (model, messages, input_tokens) = req.basics()?;
    let max_tokens = req.max_tokens.ok_or_else(|| required("max_tokens"))?;
    if context_length {
        return Err(super::context_length(input_tokens));
    }
    let sw = &ex.switches;
    let tools = req.tools.as_deref().unwrap_or_default();
    let answer = match ToolCall::choose(tools, req.tool_choice.as_ref(), sw.tool_call.as_deref()) {
        Some(call) => Answer::Tool {
            call,
            id: ids::id("toolu_01", 22),
        },
        None => {
            let last_user = tokens::last_user_text(messages);
            Answer::Text(Reply::build(model, &last_user, sw, Some(max_tokens)))
        }
    };
    let (output_tokens, stop_reason) = match &answer {
        Answer::Tool { call, .. } => (call.tokens(), "tool_use"),
        Answer::Text(r) if r.truncated => (r.tokens(), "max_tokens"),
        Answer::Text(r) => (r.tokens(), "end_turn"),
    };
    let plan = Plan {
        id: ids::id("msg_01", 22),
        model: model.to_owned(),
        answer,
        stop_reason,
        input_tokens,
        output_tokens,
        omit_usage: sw.omit_usage(),
    };
    if req.stream.unwrap_or(false) {
        let source = MessageStream::new(plan, sw.chunks() as usize);
        Ok(ex.stream(Box::new(source)))
    } else {
        Ok(ex.whole(render(&plan)).await)
    }
}

pub(super) async fn count_tokens(ex: &Exchange<'_>) -> Result<Response<MockBody>, ApiError> {
    let req: MessagesRequest = ex.json()?;
    let (_, _, input_tokens) = req.basics()?;
    let json = serde_json::to_vec(&serde_json::json!({ "input_tokens": input_tokens }))
        .expect("a count serializes");
    Ok(ex.whole(json).await)
}

// === whole response ===

#[derive(Serialize)]
pub(super) struct Message<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub role: &'static str,
    pub model: &'a str,
    pub content: &'a [Block<'a>],
    pub stop_reason: Option<&'static str>,
    pub stop_sequence: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
}

#[derive(Clone, Copy, Serialize)]
pub(super) struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
}

impl Usage {
    pub(super) fn new(input_tokens: u64, output_tokens: u64) -> Self {
        Usage {
            input_tokens,
            output_tokens,
            cache_creation_input_tokens: 0,
            cache_read_input_tokens: 0,
        }
    }
}

fn render(plan: &Plan) -> Vec<u8> {
    let block = match &plan.answer {
        Answer::Text(r) => Block::Text { text: &r.text },
        Answer::Tool { call, id } => Block::ToolUse {
            id,
            name: &call.name,
            input: &call.input,
        },
    };
    let body = Message {
        id: &plan.id,
        kind: "message",
        role: "assistant",
        model: &plan.model,
        content: std::slice::from_ref(&block),
        stop_reason: Some(plan.stop_reason),
        stop_sequence: None,
        usage: (!plan.omit_usage).then(|| Usage::new(plan.input_tokens, plan.output_tokens)),
    };
    serde_json::to_vec(&body).expect("messages serialize")
}
