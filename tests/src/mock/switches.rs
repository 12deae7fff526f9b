//! Behaviour switches: how the mock misbehaves on purpose.
//!
//! Each switch can be set per request with a header, or server-wide through
//! [`MockConfig::defaults`](super::MockConfig::defaults),
//! [`MockServer::set_defaults`](super::MockServer::set_defaults) or
//! `PUT /__mock/defaults` (JSON, the camelCase field names below). A header wins over the default, field by
//! field. An unknown `x-mock-*` header or a bad value is a 400 in the API's
//! own error shape, so a typo in a test fails loudly.
//!
//! | header | field | effect |
//! | --- | --- | --- |
//! | `x-mock-latency-ms` | `latencyMs` | delay before the response headers |
//! | `x-mock-ttft-ms` | `ttftMs` | delay after the headers before the first stream event (non-stream: added to the latency) |
//! | `x-mock-chunks` | `chunks` | number of content deltas (default 5) |
//! | `x-mock-chunk-interval-ms` | `chunkIntervalMs` | delay between consecutive stream events |
//! | `x-mock-status` | `status` | answer with this error status (≥ 400) in the API's error shape |
//! | `x-mock-retry-after` | `retryAfter` | `Retry-After` seconds on error responses |
//! | `x-mock-error` | `error` | `context_length`: the API's context-length 400 |
//! | `x-mock-fail-first` | `failFirst` | the first N requests of the scenario fail (status or 503), later ones succeed |
//! | `x-mock-scenario` | `scenario` | the counter key for `fail-first` (default: the empty id) |
//! | `x-mock-reset-after-chunks` | `resetAfterChunks` | abort the connection after N stream events (0: before the headers; a whole response is cut after half its body) |
//! | `x-mock-malformed-sse` | `malformedSse` | insert one broken event mid-stream (it counts as an event for the reset) |
//! | `x-mock-omit-usage` | `omitUsage` | leave usage out |
//! | `x-mock-reply` | `reply` | the reply text, verbatim |
//! | `x-mock-tool-call` | `toolCall` | answer with a call to this tool (when the request has tools) |

use http::HeaderMap;
use serde::{Deserialize, Serialize};

/// Content deltas in a stream when `chunks` is not set.
pub const DEFAULT_CHUNKS: u32 = 5;

/// Every switch is optional; `None` means "not set here".
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Switches {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttft_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_interval_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorSwitch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_first: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reset_after_chunks: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub malformed_sse: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_usage: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_style: Option<JsonStyle>,
}

/// How the mock writes JSON (`x-mock-json-style`), so the proxy is never
/// tested against one byte layout only.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JsonStyle {
    /// `{"a":1,"b":[]}`, fields in the APIs' documented order (OpenAI's and
    /// Anthropic's own servers).
    #[default]
    Compact,
    /// `{"a": 1, "b": []}` with fields sorted by name: Python's
    /// `json.dumps` defaults, as OpenAI-compatible servers written in Python
    /// send.
    Spaced,
}

/// Named errors for `x-mock-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorSwitch {
    /// The prompt is over the model's context window (400).
    ContextLength,
}

/// A switch header that could not be understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SwitchError {
    #[error("unknown mock switch header {0}")]
    Unknown(String),
    #[error("invalid value for {header}: {reason}")]
    Invalid {
        header: &'static str,
        reason: &'static str,
    },
}

// === impl Switches ===

impl Switches {
    /// Reads the `x-mock-*` headers of a request.
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, SwitchError> {
        let mut s = Switches::default();
        for (name, value) in headers {
            let Some(switch) = name.as_str().strip_prefix("x-mock-") else {
                continue;
            };
            let v = value.as_bytes();
            match switch {
                "latency-ms" => s.latency_ms = Some(num(v, "x-mock-latency-ms")?),
                "ttft-ms" => s.ttft_ms = Some(num(v, "x-mock-ttft-ms")?),
                "chunks" => s.chunks = Some(num(v, "x-mock-chunks")?),
                "chunk-interval-ms" => {
                    s.chunk_interval_ms = Some(num(v, "x-mock-chunk-interval-ms")?)
                }
                "status" => s.status = Some(status(v)?),
                "retry-after" => s.retry_after = Some(num(v, "x-mock-retry-after")?),
                "error" => s.error = Some(error_kind(v)?),
                "fail-first" => s.fail_first = Some(num(v, "x-mock-fail-first")?),
                "scenario" => s.scenario = Some(text(v)),
                "reset-after-chunks" => {
                    s.reset_after_chunks = Some(num(v, "x-mock-reset-after-chunks")?)
                }
                "malformed-sse" => s.malformed_sse = Some(flag(v, "x-mock-malformed-sse")?),
                "omit-usage" => s.omit_usage = Some(flag(v, "x-mock-omit-usage")?),
                "reply" => s.reply = Some(text(v)),
                "tool-call" => s.tool_call = Some(text(v)),
                "json-style" => s.json_style = Some(json_style(v)?),
                _ => return Err(SwitchError::Unknown(name.as_str().to_owned())),
            }
        }
        Ok(s)
    }

    /// Fills every switch not set in `self` from `defaults`.
    pub fn or(self, defaults: &Switches) -> Switches {
        Switches {
            latency_ms: self.latency_ms.or(defaults.latency_ms),
            ttft_ms: self.ttft_ms.or(defaults.ttft_ms),
            chunks: self.chunks.or(defaults.chunks),
            chunk_interval_ms: self.chunk_interval_ms.or(defaults.chunk_interval_ms),
            status: self.status.or(defaults.status),
            retry_after: self.retry_after.or(defaults.retry_after),
            error: self.error.or(defaults.error),
            fail_first: self.fail_first.or(defaults.fail_first),
            scenario: self.scenario.or_else(|| defaults.scenario.clone()),
            reset_after_chunks: self.reset_after_chunks.or(defaults.reset_after_chunks),
            malformed_sse: self.malformed_sse.or(defaults.malformed_sse),
            omit_usage: self.omit_usage.or(defaults.omit_usage),
            reply: self.reply.or_else(|| defaults.reply.clone()),
            tool_call: self.tool_call.or_else(|| defaults.tool_call.clone()),
            json_style: self.json_style.or(defaults.json_style),
        }
    }

    /// Content deltas per stream (at least 1).
    pub fn chunks(&self) -> u32 {
        self.chunks.unwrap_or(DEFAULT_CHUNKS).max(1)
    }

    pub fn malformed_sse(&self) -> bool {
        self.malformed_sse.unwrap_or(false)
    }

    pub fn omit_usage(&self) -> bool {
        self.omit_usage.unwrap_or(false)
    }

    pub fn json_style(&self) -> JsonStyle {
        self.json_style.unwrap_or_default()
    }
}

fn json_style(v: &[u8]) -> Result<JsonStyle, SwitchError> {
    match v {
        b"compact" => Ok(JsonStyle::Compact),
        b"spaced" => Ok(JsonStyle::Spaced),
        _ => Err(SwitchError::Invalid {
            header: "x-mock-json-style",
            reason: "expected compact or spaced",
        }),
    }
}

fn num<T: std::str::FromStr>(v: &[u8], header: &'static str) -> Result<T, SwitchError> {
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or(SwitchError::Invalid {
            header,
            reason: "expected a non-negative integer",
        })
}

fn status(v: &[u8]) -> Result<u16, SwitchError> {
    let code: u16 = num(v, "x-mock-status")?;
    if (100..=599).contains(&code) {
        Ok(code)
    } else {
        Err(SwitchError::Invalid {
            header: "x-mock-status",
            reason: "expected an HTTP status code",
        })
    }
}

fn flag(v: &[u8], header: &'static str) -> Result<bool, SwitchError> {
    match v {
        b"true" | b"1" | b"yes" => Ok(true),
        b"false" | b"0" | b"no" => Ok(false),
        _ => Err(SwitchError::Invalid {
            header,
            reason: "expected true or false",
        }),
    }
}

fn error_kind(v: &[u8]) -> Result<ErrorSwitch, SwitchError> {
    match v {
        b"context_length" => Ok(ErrorSwitch::ContextLength),
        _ => Err(SwitchError::Invalid {
            header: "x-mock-error",
            reason: "expected context_length",
        }),
    }
}

/// Header values are bytes; a reply may carry UTF-8 the `to_str` check refuses.
fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

#[cfg(test)]
mod tests;
