//! Streams: entities split at every boundary, pseudonyms restored across
//! events, delay of at most one event on prose, both APIs, after translation.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::api::sse::events;
use crate::pii::fixtures::{engine, openai_chunk, openai_finish};

fn metrics() -> Arc<Metrics> {
    Arc::new(Metrics::new())
}

/// One event through `f`: what goes out, written.
fn send(f: &mut StreamFilter, name: Option<&str>, data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    f.push(Event::new(name, Bytes::copy_from_slice(data)), &mut out);
    out.into_iter().map(|mut e| e.to_bytes()).collect()
}

/// The end of the stream through `f`.
fn end(f: &mut StreamFilter) -> Vec<Bytes> {
    let mut out = Vec::new();
    f.finish(&mut out);
    out.into_iter().map(|mut e| e.to_bytes()).collect()
}

/// Runs OpenAI content deltas through `f`; returns the text the app sees,
/// checking that every content event comes before the finish and [DONE].
fn run_openai(f: &mut StreamFilter, pieces: &[&str]) -> String {
    let mut out = Vec::new();
    for p in pieces {
        out.extend(send(f, None, &openai_chunk(p)));
    }
    out.extend(send(f, None, &openai_finish()));
    out.extend(send(f, None, b"[DONE]"));
    out.extend(end(f));
    let mut text = String::new();
    let mut finished = false;
    let mut done = false;
    for b in &out {
        for ev in events(b) {
            assert!(!done, "nothing after [DONE]");
            if &*ev.data == b"[DONE]" {
                done = true;
                continue;
            }
            let v: Value = serde_json::from_slice(&ev.data).unwrap();
            let c = &v["choices"][0];
            if let Some(t) = c["delta"]["content"].as_str() {
                assert!(!finished || t.is_empty(), "content after finish_reason");
                text.push_str(t);
            }
            if !c["finish_reason"].is_null() {
                finished = true;
            }
        }
    }
    assert!(finished && done);
    text
}

fn filter(e: &Arc<Engine>, p: Option<Arc<Pseudonyms>>, app: Family) -> StreamFilter {
    StreamFilter::new(e.clone(), p, metrics(), app)
}

const ENTITIES: [(&str, &str); 15] = [
    ("jane.doe@example.com", "[EMAIL]"),
    ("fe80::1ff:fe23:4567:890a", "[IP_ADDRESS]"),
    ("a4:5e:60:e8:2f:1c", "[MAC_ADDRESS]"),
    (
        "redis://app:s3cr3t@cache.internal:6379",
        "[URL_CREDENTIALS]",
    ),
    ("sk-proj-AbCdEf0123456789xYzAbCdEf01", "[OPENAI_KEY]"),
    (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N",
        "[JWT]",
    ),
    (
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg\n-----END PRIVATE KEY-----",
        "[PRIVATE_KEY]",
    ),
    ("4111 1111 1111 1111", "[CREDIT_CARD]"),
    ("+44 20 7946 0958", "[PHONE]"),
    ("GB82 WEST 1234 5698 7654 32", "[IBAN]"),
    ("123-45-6789", "[US_SSN]"),
    ("192.168.10.254", "[IP_ADDRESS]"),
    ("AKIAIOSFODNN7EXAMPLE", "[AWS_ACCESS_KEY]"),
    ("March 3, 1985", "[DATE_OF_BIRTH]"),
    ("Tr0ub4dor&3x", "[GENERIC_SECRET]"),
];

#[test]
fn entities_split_at_every_boundary_are_caught() {
    let e = engine("  responses: {scan: true}");
    for (value, label) in ENTITIES {
        let lead = match label {
            "[DATE_OF_BIRTH]" => "I was born on ",
            "[GENERIC_SECRET]" => "the password: ",
            _ => "Contact: ",
        };
        let full = format!("{lead}{value} thanks.");
        let want = format!("{lead}{label} thanks.");
        for k in 1..full.len() {
            if !full.is_char_boundary(k) {
                continue;
            }
            let got = run_openai(
                &mut filter(&e, None, Family::OpenAi),
                &[&full[..k], &full[k..]],
            );
            assert_eq!(
                got,
                want,
                "split at {k}: {:?} | {:?}",
                &full[..k],
                &full[k..]
            );
        }
        // One character per event.
        let chars: Vec<String> = full.chars().map(String::from).collect();
        let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(
            run_openai(&mut filter(&e, None, Family::OpenAi), &refs),
            want,
            "{value} char by char"
        );
    }
}

#[test]
fn entity_at_the_very_end_is_flushed_before_finish() {
    let e = engine("  responses: {scan: true}");
    assert_eq!(
        run_openai(
            &mut filter(&e, None, Family::OpenAi),
            &["mail ", "x@exam", "ple.com"]
        ),
        "mail [EMAIL]"
    );
}

#[test]
fn pseudonyms_restore_across_every_split() {
    let e = engine("  action: pseudonymize");
    let mut p = Pseudonyms::default();
    let mut red = crate::pii::actions::Redaction::default();
    let text = "a@example.com";
    let found = e.scanner.scan(text);
    assert_eq!(
        red.apply(&e, text, &found, Direction::Request).as_deref(),
        Some("[EMAIL_1]")
    );
    std::mem::swap(&mut p, &mut red.pseudonyms);
    let p = Arc::new(p);
    let full = "Sure, I wrote to [EMAIL_1] today.";
    for k in 1..full.len() {
        let got = run_openai(
            &mut filter(&e, Some(p.clone()), Family::OpenAi),
            &[&full[..k], &full[k..]],
        );
        assert_eq!(got, "Sure, I wrote to a@example.com today.", "split at {k}");
    }
}

#[test]
fn prose_waits_at_most_one_event() {
    let e = engine("  responses: {scan: true}");
    let text = "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun.";
    // Tokens as models stream them: a word with its leading space.
    let mut tokens: Vec<String> = Vec::new();
    for (i, w) in text.split(' ').enumerate() {
        tokens.push(if i == 0 {
            w.to_string()
        } else {
            format!(" {w}")
        });
    }
    let refs: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let mut f = filter(&e, None, Family::OpenAi);
    assert_eq!(run_openai(&mut f, &refs), text);
    assert_eq!(
        f.max_delay(),
        1,
        "the unfinished last word waits for the next event"
    );
    // A word split across two tokens waits for the token that finishes it.
    let mut pieces: Vec<String> = Vec::new();
    for t in &tokens {
        let (a, b) = t.split_at(t.len().div_ceil(2));
        pieces.push(a.to_string());
        pieces.push(b.to_string());
    }
    let refs: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let mut f = filter(&e, None, Family::OpenAi);
    assert_eq!(run_openai(&mut f, &refs), text);
    assert_eq!(f.max_delay(), 2);
}

#[test]
fn anthropic_blocks_and_tool_json() {
    let e = engine(
        "  action: pseudonymize\n  responses: {scan: true}\n  entities:\n    phone: {action: mask}",
    );
    let mut red = crate::pii::actions::Redaction::default();
    let t = "x@example.com";
    red.apply(&e, t, &e.scanner.scan(t), Direction::Request);
    let p = Arc::new(std::mem::take(&mut red.pseudonyms));
    let mut f = filter(&e, Some(p), Family::Anthropic);
    let ev = |name: &str, v: Value| (name.to_string(), v.to_string());
    let input = [
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "m"}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Call +1 415 "}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "555 0132 or [EMA"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "IL_1]"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "t", "name": "mail", "input": {}}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"to\": \"[EMAIL"}}),
        ),
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "_1]\"}"}}),
        ),
        ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        ev("message_stop", json!({"type": "message_stop"})),
    ];
    let mut out = Vec::new();
    for (name, data) in &input {
        out.extend(send(&mut f, Some(name), data.as_bytes()));
    }
    out.extend(end(&mut f));
    let mut text = String::new();
    let mut json_args = String::new();
    let mut order = Vec::new();
    for b in &out {
        for ev in events(b) {
            let v: Value = serde_json::from_slice(&ev.data).unwrap();
            order.push(ev.name.unwrap().to_string());
            if v["index"] == 0 {
                text.push_str(v["delta"]["text"].as_str().unwrap_or(""));
            } else if v["index"] == 1 {
                json_args.push_str(v["delta"]["partial_json"].as_str().unwrap_or(""));
            }
        }
    }
    assert_eq!(text, "Call [PHONE] or x@example.com");
    assert_eq!(json_args, "{\"to\": \"x@example.com\"}");
    assert_eq!(order.last().unwrap(), "message_stop");
    let stop0 = order
        .iter()
        .position(|n| n == "content_block_stop")
        .unwrap();
    assert!(
        order[..stop0]
            .iter()
            .filter(|n| *n == "content_block_delta")
            .count()
            >= 3
    );
}

#[test]
fn follows_a_translator() {
    // Anthropic upstream, OpenAI app: the filter sees OpenAI chunks.
    let e = engine("  responses: {scan: true}");
    let mut t =
        crate::api::translate::stream_translator(Family::OpenAi, Family::Anthropic, "m", false)
            .expect("the APIs differ");
    let mut f = StreamFilter::new(e, None, metrics(), Family::OpenAi);
    let mut through = |name: Option<&str>, data: &[u8], out: &mut Vec<Bytes>| {
        let mut app = Vec::new();
        t.push(&Event::new(name, Bytes::copy_from_slice(data)), &mut app);
        for ev in app {
            let mut sent = Vec::new();
            f.push(ev, &mut sent);
            out.extend(sent.into_iter().map(|mut e| e.to_bytes()));
        }
    };
    let input = [
        (
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg", "model": "claude", "usage": {"input_tokens": 1, "output_tokens": 0}}}),
        ),
        (
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "write to bob@exa"}}),
        ),
        (
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "mple.com"}}),
        ),
        (
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 4}}),
        ),
        ("message_stop", json!({"type": "message_stop"})),
    ];
    let mut out = Vec::new();
    for (n, v) in &input {
        through(Some(n), v.to_string().as_bytes(), &mut out);
    }
    out.extend(end(&mut f));
    let mut text = String::new();
    for b in &out {
        for ev in events(b) {
            if &*ev.data == b"[DONE]" {
                continue;
            }
            let v: Value = serde_json::from_slice(&ev.data).unwrap();
            text.push_str(v["choices"][0]["delta"]["content"].as_str().unwrap_or(""));
        }
    }
    assert_eq!(text, "write to [EMAIL]");
}

#[test]
fn hold_back_is_bounded() {
    assert_eq!(safe_cut("hello wor", 4096), 6);
    assert_eq!(safe_cut("card 4111 1111 ", 4096), 4);
    assert_eq!(
        safe_cut("I have 3 cats", 4096),
        6,
        "a number may start a date"
    );
    assert_eq!(
        safe_cut("I have 3 cats ", 4096),
        6,
        "a number waits for the context words after it"
    );
    let after = format!("I have 3 cats {}", "and a dog ".repeat(3));
    assert_eq!(safe_cut(&after, 4096), after.len());
    assert_eq!(safe_cut("born March 3, ", 4096), 5);
    let pem = format!("key -----BEGIN RSA PRIVATE KEY-----\n{}", "A".repeat(100));
    assert_eq!(safe_cut(&pem, 4096), 4);
    assert_eq!(safe_cut(&pem, 64), pem.len() - 64);
}
