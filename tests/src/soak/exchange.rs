//! One request as an app makes it, and its one outcome: how it ended and,
//! for an answer that ended normally, the usage the provider billed (the
//! whole body's `usage`, or a stream's final usage) and which model served
//! it (`x-tollgate-target`).

use std::time::Duration;

use serde_json::Value;

/// Longer than any request of the mix should take; a request still open
/// then is counted as broken.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A request ready to send.
pub(crate) struct Planned {
    pub url: String,
    pub body: Value,
    pub headers: Vec<(&'static str, String)>,
    /// The app speaks the OpenAI API (else Anthropic's).
    pub openai: bool,
    pub stream: bool,
    pub cut: Option<Cut>,
}

/// How the app ends a request early on purpose.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cut {
    /// Drops the stream after this many SSE events.
    AfterEvents(usize),
    /// Drops the request if no response has arrived by then.
    GiveUpAfter(Duration),
}

/// How a request ended, as the app saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Outcome {
    /// 2xx, whole body or stream to its last event.
    Complete,
    /// 2xx from the response cache (`x-tollgate-cache: hit`).
    CacheHit,
    /// An error status.
    Status(u16),
    /// 2xx stream that ended in an error event.
    StreamError,
    /// The app left mid-stream (by design).
    ClientCut,
    /// The app gave up before a response (by design).
    GaveUp,
    /// No proper answer: transport error, a body cut without an error
    /// event, an unreadable body, or no end within [`REQUEST_TIMEOUT`].
    Broken(&'static str),
}

/// What a provider billed for one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Billed {
    /// The upstream model (from `x-tollgate-target`).
    pub model: String,
    pub input: u64,
    pub output: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Exchanged {
    pub outcome: Outcome,
    /// Set for `Complete` answers that carried usage.
    pub billed: Option<Billed>,
    /// SSE events the app received.
    pub events: usize,
}

impl Exchanged {
    fn ended(outcome: Outcome) -> Exchanged {
        Exchanged {
            outcome,
            billed: None,
            events: 0,
        }
    }
}

/// Sends `req` and reads its answer as far as the app means to.
pub(crate) async fn run(client: &reqwest::Client, req: &Planned) -> Exchanged {
    match tokio::time::timeout(REQUEST_TIMEOUT, exchange(client, req)).await {
        Ok(x) => x,
        Err(_) => Exchanged::ended(Outcome::Broken("no end within 60 s")),
    }
}

async fn exchange(client: &reqwest::Client, req: &Planned) -> Exchanged {
    let mut builder = client.post(&req.url).json(&req.body);
    for (k, v) in &req.headers {
        builder = builder.header(*k, v);
    }
    let sent = builder.send();
    let resp = match req.cut {
        Some(Cut::GiveUpAfter(after)) => match tokio::time::timeout(after, sent).await {
            Ok(r) => r,
            Err(_) => return Exchanged::ended(Outcome::GaveUp),
        },
        _ => sent.await,
    };
    let Ok(mut resp) = resp else {
        return Exchanged::ended(Outcome::Broken("transport error"));
    };
    let status = resp.status();
    if !status.is_success() {
        // Read the error body to its end, as an SDK does.
        return match resp.bytes().await {
            Ok(_) => Exchanged::ended(Outcome::Status(status.as_u16())),
            Err(_) => Exchanged::ended(Outcome::Broken("error body unreadable")),
        };
    }
    let hit = resp
        .headers()
        .get("x-tollgate-cache")
        .is_some_and(|v| v == "hit");
    let model = resp
        .headers()
        .get("x-tollgate-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.split_once('/'))
        .map(|(_, m)| m.to_string())
        .unwrap_or_default();
    let usage = if req.stream {
        let mut sse = Sse::default();
        loop {
            match resp.chunk().await {
                Ok(Some(bytes)) => sse.push(&bytes),
                Ok(None) => break,
                Err(_) => return sse.ended(Outcome::Broken("stream cut without an error event")),
            }
            if matches!(req.cut, Some(Cut::AfterEvents(n)) if sse.events >= n) {
                // Dropping the response closes the stream mid-way.
                return sse.ended(Outcome::ClientCut);
            }
        }
        match sse.end {
            Some(End::Error) => return sse.ended(Outcome::StreamError),
            None => return sse.ended(Outcome::Broken("stream ended without its last event")),
            Some(End::Done) => {}
        }
        let events = sse.events;
        (usage_of(req.openai, &sse.usage), events)
    } else {
        match resp.bytes().await {
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(v) => (
                    usage_of(req.openai, v.get("usage").unwrap_or(&Value::Null)),
                    0,
                ),
                Err(_) => return Exchanged::ended(Outcome::Broken("body is not JSON")),
            },
            Err(_) => return Exchanged::ended(Outcome::Broken("body cut")),
        }
    };
    let (usage, events) = usage;
    if hit {
        return Exchanged {
            outcome: Outcome::CacheHit,
            billed: None,
            events,
        };
    }
    Exchanged {
        outcome: Outcome::Complete,
        billed: usage.map(|(input, output)| Billed {
            model,
            input,
            output,
        }),
        events,
    }
}

/// (input, output) tokens of a usage object in the app's API; input
/// includes Anthropic's cache reads and writes, as OpenAI's does.
fn usage_of(openai: bool, u: &Value) -> Option<(u64, u64)> {
    let n = |k: &str| u.get(k).and_then(Value::as_u64);
    if openai {
        Some((n("prompt_tokens")?, n("completion_tokens")?))
    } else {
        let input = n("input_tokens")?
            + n("cache_read_input_tokens").unwrap_or(0)
            + n("cache_creation_input_tokens").unwrap_or(0);
        Some((input, n("output_tokens")?))
    }
}

/// How a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// `[DONE]` (OpenAI) or `message_stop` (Anthropic).
    Done,
    /// OpenAI's `data: {"error": …}` or Anthropic's `event: error`.
    Error,
}

/// An SSE reader that keeps what the soak needs: the event count, how the
/// stream ended and the usage so far (OpenAI's usage chunk, or Anthropic's
/// `message_start` usage updated by `message_delta`).
#[derive(Default)]
struct Sse {
    pending: Vec<u8>,
    events: usize,
    end: Option<End>,
    usage: Value,
}

impl Sse {
    fn push(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(at) = find(&self.pending, b"\n\n") {
            let block: Vec<u8> = self.pending.drain(..at + 2).collect();
            self.event(&String::from_utf8_lossy(&block));
        }
    }

    fn event(&mut self, block: &str) {
        let mut name = None;
        let mut data = String::new();
        for line in block.lines() {
            if let Some(n) = line.strip_prefix("event:") {
                name = Some(n.trim().to_string());
            } else if let Some(d) = line.strip_prefix("data:") {
                data.push_str(d.trim_start());
            }
        }
        if data.is_empty() && name.is_none() {
            return; // a comment or keep-alive
        }
        self.events += 1;
        if data == "[DONE]" {
            self.end = Some(End::Done);
            return;
        }
        let v: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        match name.as_deref() {
            Some("error") => self.end = Some(End::Error),
            Some("message_stop") => self.end = Some(End::Done),
            Some("message_start") => self.merge(v.pointer("/message/usage")),
            Some("message_delta") => self.merge(v.get("usage")),
            Some(_) => {}
            None if v.get("error").is_some() => self.end = Some(End::Error),
            None => {
                if let Some(u) = v.get("usage").filter(|u| u.is_object()) {
                    self.usage = u.clone();
                }
            }
        }
    }

    fn merge(&mut self, u: Option<&Value>) {
        let Some(Value::Object(u)) = u else { return };
        if !self.usage.is_object() {
            self.usage = Value::Object(Default::default());
        }
        if let Value::Object(acc) = &mut self.usage {
            for (k, v) in u {
                acc.insert(k.clone(), v.clone());
            }
        }
    }

    fn ended(&self, outcome: Outcome) -> Exchanged {
        Exchanged {
            outcome,
            billed: None,
            events: self.events,
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_events_split_anywhere() {
        let stream = "event: message_start\ndata: {\"message\":{\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n\
                      event: message_delta\ndata: {\"usage\":{\"output_tokens\":9}}\n\n\
                      event: message_stop\ndata: {}\n\n";
        for cut in 0..stream.len() {
            let mut sse = Sse::default();
            sse.push(&stream.as_bytes()[..cut]);
            sse.push(&stream.as_bytes()[cut..]);
            assert_eq!(sse.events, 3);
            assert_eq!(sse.end, Some(End::Done));
            assert_eq!(usage_of(false, &sse.usage), Some((7, 9)));
        }
    }

    #[test]
    fn openai_usage_chunk_and_error_event() {
        let mut sse = Sse::default();
        sse.push(b"data: {\"choices\": [], \"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 4}}\n\ndata: [DONE]\n\n");
        assert_eq!(usage_of(true, &sse.usage), Some((3, 4)));
        assert_eq!(sse.end, Some(End::Done));
        let mut cut = Sse::default();
        cut.push(
            b": ping\n\ndata: {\"choices\":[]}\n\ndata: {\"error\":{\"message\":\"reset\"}}\n\n",
        );
        assert_eq!((cut.events, cut.end), (2, Some(End::Error)));
    }
}
