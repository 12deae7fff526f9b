//! Micro-benchmarks of the per-request hot paths.
//!
//! `cargo bench -p tollgate-proxy --bench hot_paths`. Absolute times drift on
//! a shared machine; compare runs on the same machine, and against the
//! `baseline/*` entries measured in the same run.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tollgate_proxy::api::checked::{CheckedBody, UsageFields};
use tollgate_proxy::api::request::{parse_head, Payload};
use tollgate_proxy::api::sse::{split, EventSplitter};
use tollgate_proxy::api::usage::StreamUsage;
use tollgate_proxy::api::{Family, Operation};
use tollgate_proxy::pipeline::prepare::{body_for, TargetSpec};
use tollgate_proxy::routing::balance::{select, Choice};
use tollgate_proxy::routing::rules::{first_match, Features};
use tollgate_proxy::routing::targets::Targets;
use tollgate_proxy::routing::{Lookup, Table};

const CONFIG: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - {name: openai, type: openai, passthrough: true, models: [gpt-4o-mini, gpt-4o, "ft:*"]}
  - {name: anthropic, type: anthropic, passthrough: true, models: [claude-sonnet-4-5]}
routing:
  routes:
    - name: chat-default
      strategy: weighted
      targets:
        - {provider: openai, model: gpt-4o-mini, weight: 3}
        - {provider: openai, model: gpt-4o, weight: 1}
        - {provider: anthropic, model: claude-sonnet-4-5, longContext: true}
      rules:
        - {name: premium, when: {header: {name: x-tollgate-tier, values: [premium]}}, route: chat-strong}
        - {name: long, when: {promptTokensAbove: 4000}, route: chat-strong}
    - name: chat-strong
      targets: [{provider: openai, model: gpt-4o}]
"#;

fn chat_body(bytes: usize) -> Bytes {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(bytes / 45 + 1);
    let v = serde_json::json!({
        "model": "chat-default",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": &text[..bytes]}
        ],
        "temperature": 0.2,
        "stream": false
    });
    Bytes::from(serde_json::to_vec(&v).unwrap())
}

fn sse_stream(events: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..events {
        out.extend_from_slice(
            format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"word{i} \"}},\"finish_reason\":null}}],\"usage\":null}}\n\n").as_bytes(),
        );
    }
    out.extend_from_slice(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":50}}\n\ndata: [DONE]\n\n");
    out
}

fn bench(c: &mut Criterion) {
    let config = tollgate_config::from_yaml_str(CONFIG).unwrap();
    let table = Table::new(&config);
    let targets = Targets::default();
    let headers = http::HeaderMap::new();
    let body = chat_body(2048);

    c.bench_function("baseline/serde_json_value_2k", |b| {
        b.iter(|| black_box(serde_json::from_slice::<serde_json::Value>(black_box(&body)).unwrap()))
    });

    let mut g = c.benchmark_group("request");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("parse_head_2k", |b| {
        b.iter(|| black_box(parse_head(black_box(&body)).unwrap()))
    });
    g.bench_function("body_for_model_rewrite_2k", |b| {
        let spec = TargetSpec {
            family: Family::OpenAi,
            kind: tollgate_config::ProviderType::Openai,
            model: "gpt-4o-mini",
            shaping: [None, None],
            stream_usage: false,
        };
        b.iter(|| {
            let payload = Payload::new(body.clone());
            black_box(
                body_for(
                    Family::OpenAi,
                    Operation::ChatCompletions,
                    &payload,
                    "chat-default",
                    &spec,
                )
                .unwrap(),
            )
        })
    });
    g.finish();

    c.bench_function("routing/decision_alias_3_targets", |b| {
        b.iter(|| {
            let Lookup::Alias(i) = table
                .lookup(&config, Family::OpenAi, black_box("chat-default"))
                .unwrap()
            else {
                unreachable!()
            };
            let route = &config.routing.routes[i];
            let rule = first_match(&route.rules, &headers, Some(&Features::default()));
            let plan = Table::plan_route(&config, route, rule.map(|r| r.name.as_str()));
            let stats: Vec<_> = plan.targets.iter().map(|t| targets.get(&t.key)).collect();
            let open: Vec<usize> = (0..plan.targets.len())
                .filter(|&i| {
                    !stats[i]
                        .breaker
                        .lock()
                        .unwrap()
                        .is_ejected(&plan.policy.breaker, std::time::Instant::now())
                })
                .collect();
            let choices: Vec<Choice> = open
                .iter()
                .map(|&i| Choice {
                    weight: plan.targets[i].weight,
                    stats: &stats[i],
                })
                .collect();
            black_box(select(plan.strategy, plan.label, &choices, &targets))
        })
    });
    c.bench_function("routing/decision_direct_model", |b| {
        b.iter(|| {
            let Lookup::Direct { provider, label } = table
                .lookup(&config, Family::OpenAi, black_box("gpt-4o-mini"))
                .unwrap()
            else {
                unreachable!()
            };
            black_box(Table::plan_direct(&config, provider, label, "gpt-4o-mini"))
        })
    });
    c.bench_function("routing/features_2k", |b| {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        b.iter(|| black_box(Features::of(Family::OpenAi, black_box(&v))))
    });

    let stream = sse_stream(50);
    let mut g = c.benchmark_group("sse");
    g.throughput(Throughput::Bytes(stream.len() as u64));
    g.bench_function("split_and_usage_50_events_in_1k_chunks", |b| {
        b.iter(|| {
            let mut splitter = EventSplitter::default();
            let mut usage = StreamUsage::default();
            for chunk in stream.chunks(1024) {
                if let Some(frame) = splitter.push(Bytes::copy_from_slice(chunk)) {
                    for ev in split(&frame) {
                        usage.observe(Family::OpenAi, &ev);
                    }
                }
            }
            black_box(usage.get())
        })
    });
    g.finish();

    // The cache tee's check of a whole answer (JSON as a tree parse would
    // find it, usage kept), against the tree parse it replaces.
    let answer = whole_answer(1024);
    let mut g = c.benchmark_group("response");
    g.throughput(Throughput::Bytes(answer.len() as u64));
    g.bench_function("baseline/whole_answer_tree_1k", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(&answer)).unwrap();
            black_box(v.get("usage").cloned())
        })
    });
    g.bench_function("whole_answer_checked_1k", |b| {
        b.iter(|| black_box(serde_json::from_slice::<CheckedBody>(black_box(&answer)).unwrap()))
    });
    g.bench_function("whole_answer_checked_usage_counts_1k", |b| {
        b.iter(|| {
            black_box(
                serde_json::from_slice::<CheckedBody<UsageFields>>(black_box(&answer)).unwrap(),
            )
        })
    });
    g.finish();

    // A settled request's counter, found by its labels: the memo kept in
    // front of prometheus, against prometheus's own lookup.
    let m = tollgate_proxy::metrics::Metrics::new();
    let labels = ["chat-default", "gpt-4o-mini", "openai", "2xx"];
    let mut g = c.benchmark_group("metrics");
    g.bench_function("baseline/with_label_values_4_labels", |b| {
        b.iter(|| m.requests.with_label_values(black_box(&labels)).inc())
    });
    g.bench_function("memoized_series_4_labels", |b| {
        b.iter(|| m.requests.series(black_box(&labels)).inc())
    });
    g.finish();
}

/// A chat completion of about `bytes`, with OpenAI's detailed usage.
fn whole_answer(bytes: usize) -> Vec<u8> {
    let text = "The quick brown fox jumps over the lazy dog. ".repeat(bytes / 45 + 1);
    serde_json::to_vec(&serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": &text[..bytes.min(text.len())]},
                     "logprobs": null, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 120, "completion_tokens": 230, "total_tokens": 350,
                  "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "system_fingerprint": "fp_1"
    }))
    .unwrap()
}

criterion_group!(benches, bench);
criterion_main!(benches);
