//! Cost of OpenAI ⇄ Anthropic translation: request bodies, whole answers,
//! and streams (SSE split, parse, translate and re-encode per event).
//!
//! `cargo bench -p tollgate-proxy --bench translate`. Each figure is the
//! whole step the pipeline takes: bytes in, bytes out. Absolute times drift
//! on a shared machine; compare runs on the same machine, and against the
//! `baseline/*` entry measured in the same run.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use tollgate_proxy::api::sse::{split, EventSplitter};
use tollgate_proxy::api::translate::{
    anthropic_to_openai_request, anthropic_to_openai_response, openai_to_anthropic_request,
    openai_to_anthropic_response, AnthropicToOpenAiStream, Defaults, OpenAiToAnthropicStream,
    StreamTranslator,
};

const PROSE: &str = "The quick brown fox jumps over the lazy dog. ";

fn text(bytes: usize) -> String {
    let mut t = PROSE.repeat(bytes / PROSE.len() + 1);
    t.truncate(bytes);
    t
}

/// A ~2 KB OpenAI chat request: system prompt, a short conversation with a
/// tool call and its result, one tool, sampling knobs.
fn openai_request() -> Bytes {
    let v = json!({
        "model": "chat-default",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for a travel agency."},
            {"role": "user", "content": text(900)},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":18,\"sky\":\"cloudy\"}"},
            {"role": "user", "content": text(700)}
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                           "required": ["city"]}}}],
        "temperature": 0.7,
        "max_tokens": 512,
        "stop": ["\n\n"],
        "user": "u-123"
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

/// The same conversation as an Anthropic Messages request.
fn anthropic_request() -> Bytes {
    let v = json!({
        "model": "claude-sonnet-4-5",
        "system": "You are a helpful assistant for a travel agency.",
        "messages": [
            {"role": "user", "content": text(900)},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                "input": {"city": "Paris", "unit": "c"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                "content": "{\"temp\":18,\"sky\":\"cloudy\"}"}, {"type": "text", "text": text(700)}]}
        ],
        "tools": [{"name": "get_weather", "description": "Current weather for a city",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
        "max_tokens": 512,
        "temperature": 0.7
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn anthropic_response() -> Bytes {
    let v = json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": text(600)}],
        "stop_reason": "end_turn", "stop_sequence": null,
        "usage": {"input_tokens": 420, "output_tokens": 130, "cache_read_input_tokens": 0}
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn openai_response() -> Bytes {
    let v = json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text(600)}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 420, "completion_tokens": 130, "total_tokens": 550}
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

/// An Anthropic stream of `n` text deltas, as the provider frames it.
fn anthropic_stream(n: usize) -> Vec<u8> {
    let mut out = String::new();
    let mut ev =
        |name: &str, data: Value| out.push_str(&format!("event: {name}\ndata: {data}\n\n"));
    ev(
        "message_start",
        json!({"type": "message_start", "message": {"id": "msg_1", "type": "message",
        "role": "assistant", "model": "claude-sonnet-4-5", "content": [], "stop_reason": null,
        "usage": {"input_tokens": 420, "output_tokens": 1}}}),
    );
    ev(
        "content_block_start",
        json!({"type": "content_block_start", "index": 0,
        "content_block": {"type": "text", "text": ""}}),
    );
    for i in 0..n {
        ev(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": format!("word{i} ")}}),
        );
    }
    ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    );
    ev(
        "message_delta",
        json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
        "usage": {"output_tokens": n}}),
    );
    ev("message_stop", json!({"type": "message_stop"}));
    out.into_bytes()
}

/// An OpenAI stream of `n` content chunks, then the usage chunk.
fn openai_stream(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        let c = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": format!("word{i} ")}, "finish_reason": null}]});
        out.push_str(&format!("data: {c}\n\n"));
    }
    let end = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]});
    out.push_str(&format!("data: {end}\n\n"));
    let usage = json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
        "choices": [], "usage": {"prompt_tokens": 420, "completion_tokens": n, "total_tokens": 420 + n}});
    out.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
    out.into_bytes()
}

fn requests(c: &mut Criterion) {
    let defaults = Defaults { max_tokens: 4096 };
    let oa = openai_request();
    let an = anthropic_request();

    c.bench_function("baseline/serde_json_roundtrip_2k", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&oa)).unwrap();
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    let mut g = c.benchmark_group("translate_request");
    g.throughput(Throughput::Bytes(oa.len() as u64));
    g.bench_function("openai_to_anthropic_2k", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&oa)).unwrap();
            let out = openai_to_anthropic_request(&v, "claude-sonnet-4-5", &defaults).unwrap();
            black_box(serde_json::to_vec(&out).unwrap())
        })
    });
    g.throughput(Throughput::Bytes(an.len() as u64));
    g.bench_function("anthropic_to_openai_2k", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&an)).unwrap();
            let out = anthropic_to_openai_request(&v, "gpt-4o-mini").unwrap();
            black_box(serde_json::to_vec(&out).unwrap())
        })
    });
    g.finish();

    let ar = anthropic_response();
    let or = openai_response();
    let mut g = c.benchmark_group("translate_response");
    g.bench_function("anthropic_to_openai_whole", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&ar)).unwrap();
            black_box(
                serde_json::to_vec(&anthropic_to_openai_response(&v, "chat-default")).unwrap(),
            )
        })
    });
    g.bench_function("openai_to_anthropic_whole", |b| {
        b.iter(|| {
            let v: Value = serde_json::from_slice(black_box(&or)).unwrap();
            black_box(serde_json::to_vec(&openai_to_anthropic_response(&v, "claude-x")).unwrap())
        })
    });
    g.finish();
}

/// SSE parse and re-encode: the upstream's bytes in 1 KB reads, split into
/// events, each translated into the app's API and encoded again.
fn streams(c: &mut Criterion) {
    let an = anthropic_stream(50);
    let oa = openai_stream(50);
    let mut g = c.benchmark_group("translate_stream");
    g.throughput(Throughput::Elements(50));
    g.bench_function("anthropic_to_openai_50_events", |b| {
        b.iter(|| {
            let mut t = AnthropicToOpenAiStream::new("chat-default", true);
            black_box(pump(&an, &mut t))
        })
    });
    g.bench_function("openai_to_anthropic_50_events", |b| {
        b.iter(|| {
            let mut t = OpenAiToAnthropicStream::new("claude-x");
            black_box(pump(&oa, &mut t))
        })
    });
    g.finish();
}

/// Feeds `stream` in 1 KB reads through the SSE splitter and `t`; the
/// bytes written.
fn pump(stream: &[u8], t: &mut impl StreamTranslator) -> usize {
    let mut splitter = EventSplitter::default();
    let mut app = Vec::new();
    let mut out = 0usize;
    for chunk in stream.chunks(1024) {
        if let Some(frame) = splitter.push(Bytes::copy_from_slice(chunk)) {
            for ev in split(&frame) {
                t.push(&ev, &mut app);
            }
            out += app.drain(..).map(|mut e| e.to_bytes().len()).sum::<usize>();
        }
    }
    t.finish(&mut app);
    out + app.drain(..).map(|mut e| e.to_bytes().len()).sum::<usize>()
}

criterion_group!(benches, requests, streams);
criterion_main!(benches);
