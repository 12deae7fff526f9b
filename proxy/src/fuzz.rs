//! The bodies of the fuzz targets in `proxy/fuzz/`: one function per
//! parser, each asserting a property that must hold for any input (a panic
//! is a finding). They live here, beside the code they drive, so the
//! targets need nothing else of the crate to be public, and so the unit
//! test at the bottom replays every seed and every saved crash on stable
//! Rust in `cargo test`.
//!
//! Built only for tests and with the `fuzzing` feature.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use serde_json::Value;

use crate::api::sse::{self, EventSplitter};
use crate::api::translate::{self, Defaults, StreamTranslator};
use crate::api::{Event, Family, Operation};

mod budget;
mod input;
mod json;

pub use budget::budget_stores;
use input::Input;

/// The request head parser: never panics; what it accepts is JSON by the
/// grammar (values it skips are not decoded, as `serde_json` skips them:
/// escapes and numbers go to the provider as written), and when the body
/// decodes, `model` and `stream` are what it holds.
pub fn request_head(data: &[u8]) {
    let Ok(head) = crate::api::request::parse_head(data) else {
        return;
    };
    assert!(
        serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok(),
        "accepted a body that is not JSON"
    );
    let Ok(v) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let obj = v.as_object().expect("an accepted body is an object");
    assert_eq!(
        head.model.as_deref(),
        obj.get("model").and_then(Value::as_str),
        "model"
    );
    assert_eq!(
        head.stream,
        obj.get("stream").and_then(Value::as_bool).unwrap_or(false),
        "stream"
    );
}

/// Request translation both ways: never panics, and a translated request
/// is a fixed point of the round trip — translating it back and forth
/// again gives the same request (`a2o(o2a(a2o(x))) == a2o(x)` and the
/// other way), so nothing the first translation kept is lost or changed
/// on the way back. Text parts of one message may come back joined by a
/// blank line (OpenAI user text is sent as one string).
pub fn translate_request(data: &[u8]) {
    let Ok(req) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let d = Defaults { max_tokens: 4096 };
    if let Ok(anthropic) = translate::openai_to_anthropic_request(&req, "claude-x", &d) {
        let openai = translate::anthropic_to_openai_request(&anthropic, "gpt-x")
            .unwrap_or_else(|e| panic!("translated request refused on the way back: {e}"));
        let again = translate::openai_to_anthropic_request(&openai, "claude-x", &d)
            .unwrap_or_else(|e| panic!("round trip refused: {e}"));
        assert!(
            json::same_prompt(&anthropic, &again),
            "OpenAI → Anthropic is not a fixed point:\n{anthropic}\n{again}"
        );
    }
    if let Ok(openai) = translate::anthropic_to_openai_request(&req, "gpt-x") {
        let anthropic = translate::openai_to_anthropic_request(&openai, "claude-x", &d)
            .unwrap_or_else(|e| panic!("translated request refused on the way back: {e}"));
        let again = translate::anthropic_to_openai_request(&anthropic, "gpt-x")
            .unwrap_or_else(|e| panic!("round trip refused: {e}"));
        assert!(
            json::same_prompt(&openai, &again),
            "Anthropic → OpenAI is not a fixed point:\n{openai}\n{again}"
        );
    }
}

/// Stream translation: any upstream bytes, in any split, through either
/// translator, give whole SSE events whose data is JSON or `[DONE]`; an
/// OpenAI text stream taken to Anthropic and back keeps its text.
pub fn translate_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let from_anthropic = input.bool();
    let splits = input.splits();
    let stream = input.rest();
    let mut t: Box<dyn StreamTranslator> = if from_anthropic {
        Box::new(translate::AnthropicToOpenAiStream::new("m", true))
    } else {
        Box::new(translate::OpenAiToAnthropicStream::new("m"))
    };
    let out = run_events(&mut *t, stream, &splits);
    for ev in sse::events(&out) {
        assert!(
            &*ev.data == b"[DONE]" || serde_json::from_slice::<Value>(&ev.data).is_ok(),
            "an event's data is not JSON: {:?}",
            String::from_utf8_lossy(&ev.data)
        );
    }
    assert!(
        sse::blocks(&out).all(|(_, e)| e.is_some()),
        "the translator wrote a block that is not an event"
    );
    if !from_anthropic {
        let text = openai_text(stream);
        let mut back = translate::AnthropicToOpenAiStream::new("m", true);
        let anthropic = out;
        let round = run_events(&mut back, &anthropic, &[]);
        assert_eq!(openai_text(&round), text, "text lost on the round trip");
    }
}

/// The SSE framer: any bytes pushed in any split come out whole (nothing
/// lost, reordered or invented), every frame but the final tail ends on
/// an event boundary, and the events are those of the unsplit stream.
pub fn sse_split(data: &[u8]) {
    let mut input = Input::new(data);
    let splits = input.splits();
    let stream = input.rest();
    let frames = split_frames(stream, &splits);
    let whole = split_frames(stream, &[]);
    assert_eq!(frames.concat(), stream, "bytes changed by the framer");
    let events = |fs: &[Bytes]| -> Vec<(Option<String>, Vec<u8>)> {
        fs.iter()
            .flat_map(|f| {
                sse::events(f)
                    .map(|e| (e.name.map(str::to_string), e.data.into_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    assert_eq!(
        events(&frames),
        events(&whole),
        "events differ with the split"
    );
}

/// The config loader: never panics; a refusal names at least one field
/// path and a message for each problem; an accepted config builds the
/// proxy's PII engine without panicking.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match tollgate_config::from_yaml_str(text) {
        Ok(config) => {
            let _ = crate::pii::Engine::new(&config.pii);
        }
        Err(e) => {
            let errors = e.field_errors();
            assert!(!errors.is_empty(), "a refusal without a problem: {e}");
            for f in errors {
                assert!(!f.path.is_empty(), "a problem without a path: {f}");
                assert!(!f.message.is_empty(), "a problem without a message: {f}");
            }
        }
    }
}

/// PII on answers: an OpenAI stream cut into any pieces gives the app the
/// same text as the answer in one piece, and as the same answer not
/// streamed — masks and restored pseudonyms included.
pub fn pii_stream(data: &[u8]) {
    let mut input = Input::new(data);
    let splits = input.splits();
    let text = String::from_utf8_lossy(input.rest()).into_owned();
    let (engine, pseudonyms) = pii_engine();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let stream = |pieces: &[&str]| -> String {
        let mut f = crate::pii::stream::StreamFilter::new(
            engine.clone(),
            Some(pseudonyms.clone()),
            metrics.clone(),
            Family::OpenAi,
        );
        let mut out = Vec::new();
        let chunk = |data: Vec<u8>| Event::new(None, data);
        for p in pieces {
            f.push(chunk(crate::pii::fixtures::openai_chunk(p)), &mut out);
        }
        f.push(chunk(crate::pii::fixtures::openai_finish()), &mut out);
        f.push(Event::done(), &mut out);
        f.finish(&mut out);
        let sent: Vec<Bytes> = out.iter_mut().map(Event::to_bytes).collect();
        openai_text(&sent.concat())
    };
    let pieces = input::cut_str(&text, &splits);
    let split = stream(&pieces);
    let one = stream(&[&text]);
    assert_eq!(split, one, "a split stream differs from one piece");
    let whole = crate::pii::response::ResponseFilter {
        engine: &engine,
        pseudonyms: Some(&pseudonyms),
        metrics: &metrics.pii,
    }
    .whole(Family::OpenAi, json::openai_completion(&text));
    let whole: Value = serde_json::from_slice(&whole).expect("filtered answer is JSON");
    assert_eq!(
        Some(one.as_str()),
        whole
            .pointer("/choices/0/message/content")
            .and_then(Value::as_str),
        "the stream differs from the same answer not streamed"
    );
}

/// The exact-cache key: the same JSON written differently (key order,
/// whitespace, escapes) or differing only in ignored fields has the same
/// key.
pub fn cache_key(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let scope = crate::cache::key::Scope {
        policy: "p",
        family: Family::OpenAi,
        operation: Operation::ChatCompletions,
        route: "route=r;openai/m",
        tenant: None,
    };
    let Ok(key) = crate::cache::key::key(&scope, &body, false) else {
        return;
    };
    let rewritten = json::rewritten(&body);
    let mut reparsed: Value = serde_json::from_slice(&rewritten).expect("rewritten JSON parses");
    assert_eq!(
        crate::cache::key::key(&scope, &reparsed, false),
        Ok(key),
        "the same JSON written differently has another key: {}",
        String::from_utf8_lossy(&rewritten)
    );
    if let Some(obj) = reparsed.as_object_mut() {
        obj.insert("stream".into(), Value::Bool(true));
        obj.insert("user".into(), Value::String("someone".into()));
        assert_eq!(
            crate::cache::key::key(&scope, &reparsed, false),
            Ok(key),
            "an ignored field changed the key"
        );
    }
}

/// Frames `stream` as the splitter does when it arrives in the pieces
/// `splits` cut it into (all of it at once when empty).
fn split_frames(stream: &[u8], splits: &[usize]) -> Vec<Bytes> {
    let mut s = EventSplitter::default();
    let mut frames = Vec::new();
    for piece in input::cut(stream, splits) {
        frames.extend(s.push(Bytes::copy_from_slice(piece)));
    }
    frames.extend(s.finish());
    frames
}

/// Runs the events of `stream` (split as [`split_frames`] does) through
/// `t`; returns everything it wrote.
fn run_events(t: &mut dyn StreamTranslator, stream: &[u8], splits: &[usize]) -> Vec<u8> {
    let mut app = Vec::new();
    for frame in split_frames(stream, splits) {
        for ev in sse::split(&frame) {
            t.push(&ev, &mut app);
        }
    }
    t.finish(&mut app);
    app.iter_mut()
        .flat_map(|ev| ev.to_bytes().to_vec())
        .collect()
}

/// The text of an OpenAI stream's content deltas (first choice).
fn openai_text(stream: &[u8]) -> String {
    let mut text = String::new();
    for ev in sse::events(stream) {
        // Nothing after the end of the stream reaches an app.
        if ev.data.trim_ascii() == b"[DONE]" {
            break;
        }
        let Ok(v) = serde_json::from_slice::<Value>(&ev.data) else {
            continue;
        };
        // An error event ends the stream as well.
        if v.get("error").is_some_and(|e| !e.is_null()) {
            break;
        }
        // Choice 0 only (a missing or malformed index counts as 0, as the
        // translators read it): another has no place in an Anthropic
        // message. A refusal is text too.
        let choices = v.get("choices").and_then(Value::as_array);
        for c in choices.into_iter().flatten() {
            if c.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            for key in ["content", "refusal"] {
                if let Some(t) = c.pointer(&format!("/delta/{key}")).and_then(Value::as_str) {
                    text.push_str(t);
                }
            }
        }
    }
    text
}

/// Masking on answers, pseudonyms for an email, a phone and an address.
fn pii_engine() -> (
    Arc<crate::pii::Engine>,
    Arc<crate::pii::actions::Pseudonyms>,
) {
    static ENGINE: OnceLock<(
        Arc<crate::pii::Engine>,
        Arc<crate::pii::actions::Pseudonyms>,
    )> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let e = crate::pii::fixtures::engine(
                "  action: pseudonymize\n  responses: {scan: true}\n  entities:\n    credit_card: {action: mask}",
            );
            let mut red = crate::pii::actions::Redaction::default();
            let t = "a@example.com, +1 415 555 0132, 10.1.2.3";
            red.apply(
                &e,
                t,
                &e.scanner.scan(t),
                crate::pii::actions::Direction::Request,
            );
            let p = Arc::new(std::mem::take(&mut red.pseudonyms));
            (e, p)
        })
        .clone()
}

#[cfg(test)]
mod tests;
