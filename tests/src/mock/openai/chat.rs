//! `POST /v1/chat/completions`, whole and streamed.

mod stream;

use http::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::usage::Usage;
use crate::mock::body::MockBody;
use crate::mock::error::ApiError;
use crate::mock::ids;
use crate::mock::reply::Reply;
use crate::mock::router::Exchange;
use crate::mock::tokens;
use crate::mock::tools::ToolCall;

/// Every response says it came from the same backend build.
pub(super) const FINGERPRINT: &str = "fp_mock0001";

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    messages: Option<Vec<Value>>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
    #[serde(default)]
    n: Option<u32>,
    #[serde(default)]
    tools: Option<Vec<Value>>,
    #[serde(default)]
    tool_choice: Option<Value>,
}

#[derive(Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub include_usage: Option<bool>,
}

/// What the assistant says, decided once for both response forms.
pub(super) struct Plan {
    pub id: String,
    pub created: u64,
    pub model: String,
    pub n: u32,
    pub answer: Answer,
    pub finish_reason: &'static str,
    /// `None` under `x-mock-omit-usage`.
    pub usage: Option<Usage>,
}

pub(super) enum Answer {
    Text(Reply),
    Tool { call: ToolCall, id: String },
}

pub(super) async fn create(
    ex: &Exchange<'_>,
    context_length: bool,
) -> Result<Response<MockBody>, ApiError> {
    let req: ChatRequest = ex.json()?;
    let model = req
        .model
        .ok_or_else(|| ApiError::bad_request("you must provide a model parameter"))?;
    let messages = req.messages.ok_or_else(|| super::missing("messages"))?;
    if messages.is_empty() {
        return Err(ApiError::bad_request(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
        )
        .with_param("messages")
        .with_code("empty_array"));
    }
    let n = req.n.unwrap_or(1);
    if !(1..=128).contains(&n) {
        return Err(
            ApiError::bad_request("Invalid 'n': must be between 1 and 128.").with_param("n"),
        );
    }
    let stream = req.stream.unwrap_or(false);
    if req.stream_options.is_some() && !stream {
        return Err(ApiError::bad_request(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
        )
        .with_param("stream_options"));
    }
    let prompt = tokens::prompt_words(messages.iter().filter_map(|m| m.get("content")));
    if context_length {
        return Err(super::context_length(prompt, "messages"));
    }

    let sw = &ex.switches;
    let tools = req.tools.unwrap_or_default();
    let answer = match ToolCall::choose(&tools, req.tool_choice.as_ref(), sw.tool_call.as_deref()) {
        Some(call) => Answer::Tool {
            call,
            id: ids::id("call_", 24),
        },
        None => {
            let last_user = tokens::last_user_text(&messages);
            let max = req.max_completion_tokens.or(req.max_tokens);
            Answer::Text(Reply::build(&model, &last_user, sw, max))
        }
    };
    let (completion, finish_reason) = match &answer {
        Answer::Tool { call, .. } => (call.tokens(), "tool_calls"),
        Answer::Text(r) if r.truncated => (r.tokens(), "length"),
        Answer::Text(r) => (r.tokens(), "stop"),
    };
    let plan = Plan {
        id: ids::id("chatcmpl-", 29),
        created: ids::unix_now(),
        model,
        n,
        answer,
        finish_reason,
        usage: (!sw.omit_usage()).then(|| Usage::chat(prompt, completion * u64::from(n))),
    };
    if stream {
        let include_usage = req
            .stream_options
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        let source = stream::ChatStream::new(plan, include_usage, sw.chunks() as usize);
        Ok(ex.stream(Box::new(source)))
    } else {
        Ok(ex.whole(render(&plan)).await)
    }
}

// === whole response ===

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<Choice<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<&'a Usage>,
    service_tier: &'static str,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: Message<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallOut<'a>; 1]>,
}

#[derive(Serialize)]
pub(super) struct ToolCallOut<'a> {
    pub id: &'a str,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub function: FunctionOut<'a>,
}

#[derive(Serialize)]
pub(super) struct FunctionOut<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}

fn render(plan: &Plan) -> Vec<u8> {
    let message = || match &plan.answer {
        Answer::Text(reply) => Message {
            role: "assistant",
            content: Some(&reply.text),
            refusal: None,
            tool_calls: None,
        },
        Answer::Tool { call, id } => Message {
            role: "assistant",
            content: None,
            refusal: None,
            tool_calls: Some([ToolCallOut {
                id,
                kind: "function",
                function: FunctionOut {
                    name: &call.name,
                    arguments: &call.arguments,
                },
            }]),
        },
    };
    let body = Completion {
        id: &plan.id,
        object: "chat.completion",
        created: plan.created,
        model: &plan.model,
        choices: (0..plan.n)
            .map(|index| Choice {
                index,
                message: message(),
                logprobs: None,
                finish_reason: plan.finish_reason,
            })
            .collect(),
        usage: plan.usage.as_ref(),
        service_tier: "default",
        system_fingerprint: FINGERPRINT,
    };
    serde_json::to_vec(&body).expect("completions serialize")
}
