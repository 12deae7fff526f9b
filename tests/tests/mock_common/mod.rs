//! Helpers shared by the `mock_*` suites: start a mock, send requests, read SSE.
#![allow(dead_code)]

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use tollgate_tests::mock::{MockConfig, MockServer};

pub(crate) const OPENAI_KEY: &str = "sk-mock-openai-0123456789";
pub(crate) const ANTHROPIC_KEY: &str = "sk-ant-mock-0123456789";

/// A mock that accepts any key.
pub(crate) async fn open_mock() -> MockServer {
    MockServer::start(MockConfig::default())
        .await
        .expect("mock starts")
}

/// A mock that requires [`OPENAI_KEY`] and [`ANTHROPIC_KEY`].
pub(crate) async fn keyed_mock() -> MockServer {
    MockServer::start(MockConfig {
        openai_key: Some(OPENAI_KEY.into()),
        anthropic_key: Some(ANTHROPIC_KEY.into()),
        ..MockConfig::default()
    })
    .await
    .expect("mock starts")
}

pub(crate) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client builds")
}

pub(crate) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(k, v)| {
            (
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            )
        })
        .collect()
}

/// POSTs JSON to an OpenAI path with the right key.
pub(crate) async fn openai(
    mock: &MockServer,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(format!("{}{path}", mock.url()))
        .bearer_auth(OPENAI_KEY)
        .headers(headers(extra))
        .json(body)
        .send()
        .await
        .expect("request is answered")
}

/// POSTs JSON to an Anthropic path with the right key and version.
pub(crate) async fn anthropic(
    mock: &MockServer,
    path: &str,
    body: &Value,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    client()
        .post(format!("{}{path}", mock.url()))
        .header("x-api-key", ANTHROPIC_KEY)
        .header("anthropic-version", "2023-06-01")
        .headers(headers(extra))
        .json(body)
        .send()
        .await
        .expect("request is answered")
}

/// One server-sent event: its `event:` name (if any) and `data:` payload.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Event {
    pub name: Option<String>,
    pub data: String,
}

impl Event {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.data)
            .unwrap_or_else(|e| panic!("event data is not JSON ({e}): {}", self.data))
    }
}

/// Splits an SSE body into events; asserts the framing on the way.
pub(crate) fn sse(body: &str) -> Vec<Event> {
    assert!(
        body.ends_with("\n\n"),
        "stream ends with a blank line: {body:?}"
    );
    body.trim_end_matches('\n')
        .split("\n\n")
        .map(|raw| {
            let mut ev = Event {
                name: None,
                data: String::new(),
            };
            for line in raw.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    ev.name = Some(name.to_owned());
                } else if let Some(data) = line.strip_prefix("data: ") {
                    ev.data = data.to_owned();
                } else {
                    panic!("unexpected SSE line {line:?}");
                }
            }
            ev
        })
        .collect()
}

pub(crate) fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}
