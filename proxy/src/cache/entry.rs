//! A cached answer: the whole response in the app's API, with its usage.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::api::usage::Usage;

/// One stored response. `body` is the complete JSON response as the app's
/// API shapes it (a streamed answer is assembled into one), so a hit can be
/// served whole or replayed as a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub body: Bytes,
    pub usage: Usage,
    /// `provider/model` that answered, for headers and metrics.
    pub target: String,
    pub stored_at_ms: u64,
}

impl Entry {
    /// Bytes the entry holds, for the memory bound.
    pub fn weight(&self) -> u64 {
        (self.body.len() + self.target.len() + 64) as u64
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&Wire {
            body: std::str::from_utf8(&self.body).unwrap_or_default(),
            input: self.usage.input,
            output: self.usage.output,
            cached_input: self.usage.cached_input,
            cache_creation: self.usage.cache_creation,
            reasoning: self.usage.reasoning,
            target: &self.target,
            stored_at_ms: self.stored_at_ms,
        })
        .expect("entry serializes")
    }

    pub fn from_json(bytes: &[u8]) -> Option<Entry> {
        let w: WireOwned = serde_json::from_slice(bytes).ok()?;
        Some(Entry {
            body: Bytes::from(w.body),
            usage: Usage {
                input: w.input,
                output: w.output,
                cached_input: w.cached_input,
                cache_creation: w.cache_creation,
                reasoning: w.reasoning,
            },
            target: w.target,
            stored_at_ms: w.stored_at_ms,
        })
    }
}

#[derive(Serialize)]
struct Wire<'a> {
    body: &'a str,
    input: u64,
    output: u64,
    cached_input: u64,
    cache_creation: u64,
    reasoning: u64,
    target: &'a str,
    stored_at_ms: u64,
}

#[derive(Deserialize)]
struct WireOwned {
    body: String,
    #[serde(default)]
    input: u64,
    #[serde(default)]
    output: u64,
    #[serde(default)]
    cached_input: u64,
    #[serde(default)]
    cache_creation: u64,
    #[serde(default)]
    reasoning: u64,
    #[serde(default)]
    target: String,
    #[serde(default)]
    stored_at_ms: u64,
}
