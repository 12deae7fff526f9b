//! Responses from a provider of the other API, converted to the app's API.

use bytes::Bytes;
use serde_json::Value;

use crate::api::Family;
use crate::body::EventTransform;

/// A successful non-stream body in the app's API.
pub fn response(app: Family, upstream: Family, body: Bytes, requested_model: &str) -> Bytes {
    if app == upstream {
        return body;
    }
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    let out = match app {
        Family::OpenAi => crate::api::translate::anthropic_to_openai_response(&v, requested_model),
        Family::Anthropic => {
            crate::api::translate::openai_to_anthropic_response(&v, requested_model)
        }
    };
    Bytes::from(serde_json::to_vec(&out).expect("a JSON value serializes"))
}

/// An error body in the app's API.
pub fn error(app: Family, upstream: Family, status: u16, body: Bytes) -> Bytes {
    if app == upstream {
        return body;
    }
    let out = match app {
        Family::OpenAi => crate::api::translate::anthropic_error_to_openai(status, &body),
        Family::Anthropic => crate::api::translate::openai_error_to_anthropic(status, &body),
    };
    Bytes::from(serde_json::to_vec(&out).expect("a JSON value serializes"))
}

/// The event translator for a stream from the other API.
pub fn stream(
    app: Family,
    upstream: Family,
    requested_model: &str,
    include_usage: bool,
) -> Option<Box<dyn EventTransform>> {
    use crate::api::translate::{AnthropicToOpenAiStream, OpenAiToAnthropicStream};
    match (app, upstream) {
        (Family::OpenAi, Family::Anthropic) => Some(Box::new(AnthropicToOpenAiStream::new(
            requested_model,
            include_usage,
        ))),
        (Family::Anthropic, Family::OpenAi) => {
            Some(Box::new(OpenAiToAnthropicStream::new(requested_model)))
        }
        _ => None,
    }
}

impl EventTransform for crate::api::translate::AnthropicToOpenAiStream {
    fn push(&mut self, event: Option<&str>, data: &[u8]) -> Vec<Bytes> {
        crate::api::translate::AnthropicToOpenAiStream::push(self, event, data)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        crate::api::translate::AnthropicToOpenAiStream::finish(self)
    }
}

impl EventTransform for crate::api::translate::OpenAiToAnthropicStream {
    fn push(&mut self, event: Option<&str>, data: &[u8]) -> Vec<Bytes> {
        crate::api::translate::OpenAiToAnthropicStream::push(self, event, data)
    }
    fn finish(&mut self) -> Vec<Bytes> {
        crate::api::translate::OpenAiToAnthropicStream::finish(self)
    }
}
