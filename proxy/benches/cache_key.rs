//! Cost of the exact-cache key: normalize the parsed body (drop the fields
//! that never change the answer), serialize it canonically and hash it with
//! its scope (SHA-256).
//!
//! `cargo bench -p tollgate-proxy --bench cache_key`. The body is already
//! parsed on the request path, so parsing is not part of the figure; the
//! `baseline/*` entry shows what serializing the same body alone costs.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::{json, Value};
use tollgate_proxy::api::{Family, Operation};
use tollgate_proxy::cache::key::{deterministic, key};
use tollgate_proxy::cache::Scope;

const PROSE: &str = "The quick brown fox jumps over the lazy dog. ";

/// A chat request with `bytes` of conversation, split over turns of ~1 KB.
fn chat(bytes: usize) -> Value {
    let turn = PROSE.repeat(1024 / PROSE.len());
    let mut messages = vec![json!({"role": "system", "content": "You are a helpful assistant."})];
    let mut size = 0;
    let mut user = true;
    while size < bytes {
        messages.push(json!({"role": if user { "user" } else { "assistant" }, "content": turn}));
        size += turn.len();
        user = !user;
    }
    json!({
        "model": "chat-default",
        "messages": messages,
        "temperature": 0,
        "max_tokens": 256,
        "stream": true,
        "stream_options": {"include_usage": true},
        "user": "u-123"
    })
}

fn bench(c: &mut Criterion) {
    let scope = Scope {
        policy: "my-app",
        family: Family::OpenAi,
        operation: Operation::ChatCompletions,
        route: "route=chat-default;openai/gpt-4o-mini,anthropic/claude-sonnet-4-5",
        tenant: Some("team-a"),
    };
    for kib in [2usize, 32] {
        let body = chat(kib * 1024);
        let len = serde_json::to_vec(&body).unwrap().len() as u64;
        let mut g = c.benchmark_group("cache_key");
        g.throughput(Throughput::Bytes(len));
        g.bench_function(format!("key_chat_{kib}k"), |b| {
            b.iter(|| black_box(key(&scope, black_box(&body), true).unwrap()))
        });
        g.bench_function(format!("baseline/serialize_chat_{kib}k"), |b| {
            b.iter(|| black_box(serde_json::to_vec(black_box(&body)).unwrap()))
        });
        g.finish();
    }
    let body = chat(2048);
    c.bench_function("cache_key/deterministic_check", |b| {
        b.iter(|| black_box(deterministic(black_box(&body))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
