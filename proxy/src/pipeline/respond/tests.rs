//! The response pipeline: the phases an answer gets and their order, JSON
//! parses per event with every feature on, and buffers passed through as
//! the very ones that arrived.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method};
use http_body::Frame;
use http_body_util::BodyExt;
use serde_json::{json, Value};

use super::*;
use crate::api::event::{parses, trees};
use crate::api::sse::events;
use crate::body::upstream_body;
use crate::cache::Key;
use crate::metrics::Metrics;
use crate::state::{Runtime, Shared};

/// Every feature the response side has: response PII scan, the cache.
const CONFIG: &str = "apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {name: t}
providers:
  - {name: openai, type: openai, credentials: {env: K}, models: [m]}
  - {name: anthropic, type: anthropic, credentials: {env: K}, models: [c]}
pii:
  responses: {scan: true}
cache:
  ttl: 1h
";

async fn shared() -> Arc<Shared> {
    let config = tollgate_config::from_yaml_str(CONFIG).expect("test config loads");
    let rt = Runtime::build(config, None).await.expect("runtime builds");
    Shared::new(rt, Arc::new(Metrics::new()))
}

fn settle(shared: &Shared) -> Settle {
    let id = HeaderValue::from_static("req-1");
    let path = "/v1/chat/completions".to_string();
    Settle::begin(
        shared,
        Instant::now(),
        id,
        Method::POST,
        path,
        &http::HeaderMap::new(),
    )
}

/// One answer of `api` to an `app` request with every feature on: output
/// text for budgets, a shadow, PII on answers, a cache miss to store.
fn all_on(
    shared: &Shared,
    app: Family,
    api: Family,
    shape: cache::Shape,
    shadow: oneshot::Sender<String>,
) -> Assembly {
    let rt = shared.runtime.load();
    let stream = shape == cache::Shape::Stream;
    Assembly {
        app,
        api: Some(api),
        shape: Some(shape),
        request_id: HeaderValue::from_static("req-1"),
        route: Some("chat".into()),
        target: Some("openai/m".into()),
        model: "chat".into(),
        include_usage: false,
        injected_usage: stream && api == app,
        output_text: true,
        shadow: Some(shadow),
        pii: Some(crate::pii::Answers {
            engine: rt.pii.clone().expect("PII is on"),
            pseudonyms: None,
        }),
        metrics: shared.metrics.clone(),
        guard: vec!["ignore_previous"],
        cache: CacheOutcome {
            header: Some("miss"),
            store: Some(cache::Pending::for_test(rt.cache.clone(), app, stream)),
        },
        settle: settle(shared),
    }
}

/// Routing only: no budget, shadow, PII or cache.
fn routing_only(shared: &Shared, shape: cache::Shape) -> Assembly {
    let cx = Context::new(
        Family::OpenAi,
        HeaderValue::from_static("req-1"),
        shared.metrics.clone(),
    );
    Assembly {
        api: Some(Family::OpenAi),
        shape: Some(shape),
        ..Assembly::own(cx, settle(shared))
    }
}

fn head(content_type: &'static str) -> http::response::Parts {
    let resp = http::Response::builder()
        .status(200)
        .header("content-type", content_type)
        .header("content-length", "1")
        .body(())
        .unwrap();
    resp.into_parts().0
}

fn limits() -> Limits {
    Limits {
        idle: Duration::from_secs(60),
        deadline: tokio::time::Instant::now() + Duration::from_secs(60),
    }
}

/// A body that yields `chunks` as they are.
fn upstream(chunks: &[Bytes]) -> UpstreamBody {
    let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> =
        chunks.iter().cloned().map(|c| Ok(Frame::data(c))).collect();
    upstream_body(http_body_util::StreamBody::new(futures_util::stream::iter(
        frames,
    )))
}

/// Everything the app receives from `body`, frame by frame.
async fn collect(mut body: ResponseBody) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some(f) = body.frame().await {
        out.push(f.unwrap().into_data().unwrap());
    }
    out
}

fn sse(events: &[(Option<&str>, Value)]) -> Bytes {
    let mut s = String::new();
    for (name, v) in events {
        if let Some(n) = name {
            s.push_str(&format!("event: {n}\n"));
        }
        s.push_str(&format!("data: {v}\n\n"));
    }
    Bytes::from(s)
}

fn chunk(delta: Value, finish: Value) -> (Option<&'static str>, Value) {
    let choice = json!({"index": 0, "delta": delta, "finish_reason": finish});
    let v = json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [choice]});
    (None, v)
}

/// An OpenAI stream: 5 JSON events (the last the usage-only chunk) and
/// `[DONE]`.
fn openai_stream() -> (usize, Bytes) {
    let events = [
        chunk(json!({"role": "assistant", "content": ""}), Value::Null),
        chunk(json!({"content": "Write to bob@"}), Value::Null),
        chunk(json!({"content": "example.com today."}), Value::Null),
        chunk(json!({}), json!("stop")),
        (
            None,
            json!({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}),
        ),
    ];
    let mut s = sse(&events).to_vec();
    s.extend_from_slice(b"data: [DONE]\n\n");
    (events.len(), Bytes::from(s))
}

/// An Anthropic stream: 8 JSON events.
fn anthropic_stream() -> (usize, Bytes) {
    let delta = |text: &str| json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}});
    let events = [
        (
            Some("message_start"),
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [], "stop_reason": null, "usage": {"input_tokens": 3, "output_tokens": 1}}}),
        ),
        (
            Some("content_block_start"),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        (Some("ping"), json!({"type": "ping"})),
        (Some("content_block_delta"), delta("Write to bob@")),
        (Some("content_block_delta"), delta("example.com today.")),
        (
            Some("content_block_stop"),
            json!({"type": "content_block_stop", "index": 0}),
        ),
        (
            Some("message_delta"),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 5}}),
        ),
        (Some("message_stop"), json!({"type": "message_stop"})),
    ];
    (events.len(), sse(&events))
}

/// The OpenAI text of a stream the app received, and whether it carried
/// a usage chunk.
fn openai_text(frames: &[Bytes]) -> (String, bool) {
    let (mut text, mut usage) = (String::new(), false);
    for ev in events(&frames.concat()) {
        let Ok(v) = serde_json::from_slice::<Value>(&ev.data) else {
            continue;
        };
        usage |= v.get("usage").is_some_and(|u| !u.is_null());
        if let Some(t) = v
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            text.push_str(t);
        }
    }
    (text, usage)
}

/// The phases of a stream from `api` to an OpenAI app, every feature on.
fn stream_phases(shared: &Shared, api: Family) -> Vec<&'static str> {
    let (tx, _rx) = oneshot::channel();
    let a = all_on(shared, Family::OpenAi, api, cache::Shape::Stream, tx);
    Chain::new(Family::OpenAi, phases(a)).names()
}

#[tokio::test]
async fn a_stream_with_every_feature_on_gets_every_phase_in_order() {
    let shared = shared().await;
    let (before, after) = (
        ["upstream head", "usage", "output text", "shadow capture"],
        ["pii", "cache tee", "settle"],
    );
    let same = [&before[..], &["strip usage chunk"], &after].concat();
    assert_eq!(stream_phases(&shared, Family::OpenAi), same);
    // Translated: the usage chunk is the app's own to ask for.
    let translated = [&before[..], &["translate"], &after].concat();
    assert_eq!(stream_phases(&shared, Family::Anthropic), translated);
    let cx = Context::new(
        Family::OpenAi,
        HeaderValue::from_static("r"),
        shared.metrics.clone(),
    );
    let own = Chain::new(Family::OpenAi, phases(Assembly::own(cx, settle(&shared))));
    assert_eq!(format!("{own:?}"), "[\"settle\"]", "the proxy's own answer");
}

#[tokio::test]
async fn each_upstream_event_is_parsed_once_with_every_feature_on() {
    let shared = shared().await;
    for (api, (n, stream)) in [
        (Family::OpenAi, openai_stream()),
        (Family::Anthropic, anthropic_stream()),
    ] {
        let (tx, rx) = oneshot::channel();
        let a = all_on(&shared, Family::OpenAi, api, cache::Shape::Stream, tx);
        let mut chain = Chain::new(Family::OpenAi, phases(a));
        let mut h = head("text/event-stream");
        chain.head(&mut h);
        assert_eq!(h.headers["x-tollgate-cache"], "miss");
        assert_eq!(h.headers["x-tollgate-guard"], "ignore_previous");
        assert!(h.headers.get("content-length").is_none());
        // One event per read, as providers send them.
        let reads: Vec<Bytes> = crate::api::sse::split(&stream)
            .map(|mut e| e.to_bytes())
            .collect();
        let before = parses();
        let body = ResponseBody::stream(upstream(&reads), None, limits(), Box::new(chain));
        let got = collect(body).await;
        assert_eq!(
            parses() - before,
            n,
            "{api:?}: one parse per upstream event"
        );
        let (text, usage) = openai_text(&got);
        assert_eq!(text, "Write to [EMAIL] today.", "{api:?}");
        assert!(!usage, "{api:?}: no usage chunk the app did not ask for");
        assert!(got.concat().ends_with(b"data: [DONE]\n\n"));
        assert_eq!(rx.await.unwrap(), "Write to bob@example.com today.");
        let stored = shared.runtime.load().cache.get(&Key([7; 32])).await;
        let stored: Value = serde_json::from_slice(&stored.expect("stored").body).unwrap();
        assert_eq!(
            stored["choices"][0]["message"]["content"],
            "Write to [EMAIL] today."
        );
    }
}

#[tokio::test]
async fn a_whole_answer_is_parsed_once_with_every_feature_on() {
    let openai = json!({"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Mail bob@example.com."}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 3, "completion_tokens": 4}});
    let anthropic = json!({"id": "msg_1", "type": "message", "role": "assistant", "model": "c", "content": [{"type": "text", "text": "Mail bob@example.com."}], "stop_reason": "end_turn", "usage": {"input_tokens": 3, "output_tokens": 4}});
    let shared = shared().await;
    for (api, answer) in [(Family::OpenAi, openai), (Family::Anthropic, anthropic)] {
        let (tx, rx) = oneshot::channel();
        let a = all_on(&shared, Family::OpenAi, api, cache::Shape::Whole, tx);
        let mut chain = Chain::new(Family::OpenAi, phases(a));
        chain.head(&mut head("application/json"));
        let before = parses();
        let out = chain.whole(Bytes::from(answer.to_string()));
        assert_eq!(parses() - before, 1, "{api:?}: one parse");
        let out: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            out["choices"][0]["message"]["content"], "Mail [EMAIL].",
            "{api:?}"
        );
        assert_eq!(rx.await.unwrap(), "Mail bob@example.com.");
    }
}

#[tokio::test]
async fn with_nothing_to_change_the_buffers_that_arrived_go_out() {
    let shared = shared().await;
    let (_, stream) = openai_stream();
    let reads: Vec<Bytes> = crate::api::sse::split(&stream)
        .map(|mut e| e.to_bytes())
        .collect();
    for shape in [cache::Shape::Stream, cache::Shape::Raw] {
        let mut chain = Chain::new(Family::OpenAi, phases(routing_only(&shared, shape)));
        let want: &[&str] = match shape {
            cache::Shape::Stream => &["upstream head", "usage", "settle"],
            _ => &["upstream head", "settle"],
        };
        assert_eq!(chain.names(), want);
        chain.head(&mut head("text/event-stream"));
        let body = match shape {
            cache::Shape::Stream => {
                ResponseBody::stream(upstream(&reads), None, limits(), Box::new(chain))
            }
            _ => ResponseBody::raw(upstream(&reads), None, Box::new(chain)),
        };
        let before = parses();
        let got = collect(body).await;
        if shape == cache::Shape::Stream {
            // Usage alone reads each chunk's two fields: one read per
            // JSON event (not [DONE]), no tree kept.
            let json_events = reads
                .iter()
                .filter(|r| !r.starts_with(b"data: [DONE]"))
                .count();
            assert_eq!(parses() - before, json_events, "one read per event");
        }
        assert_eq!(got.len(), reads.len(), "{shape:?}");
        for (g, r) in got.iter().zip(&reads) {
            assert_eq!(g.as_ptr(), r.as_ptr(), "{shape:?}: the very buffer");
        }
    }
}

/// Budgets alone on a whole answer: its usage is read without parsing
/// the answer, which is parsed for its text only when it reported none.
#[tokio::test]
async fn a_whole_answer_is_parsed_for_budget_text_only_without_usage() {
    let shared = shared().await;
    let answer = |usage: Value| {
        json!({"id": "x", "object": "chat.completion", "model": "m",
               "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there."},
                            "finish_reason": "stop"}],
               "usage": usage})
    };
    for (usage, reads, built) in [
        (
            json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}),
            1,
            0,
        ),
        (Value::Null, 2, 1),
    ] {
        let a = Assembly {
            output_text: true,
            ..routing_only(&shared, cache::Shape::Whole)
        };
        let mut chain = Chain::new(Family::OpenAi, phases(a));
        assert_eq!(
            chain.names(),
            ["upstream head", "usage", "output text", "settle"]
        );
        chain.head(&mut head("application/json"));
        let (before, trees_before) = (parses(), trees());
        let body = answer(usage.clone()).to_string();
        let out = chain.whole(Bytes::from(body.clone()));
        assert_eq!(parses() - before, reads, "usage {usage}");
        assert_eq!(trees() - trees_before, built, "usage {usage}");
        assert_eq!(out, body.as_bytes(), "passed through untouched");
    }
}

/// The cache alone on a whole answer: the usage phase checks that it is
/// JSON and reads its usage without building a tree, and the tee stores
/// exactly what a parse into a tree would have let it store.
#[tokio::test]
async fn a_whole_answer_is_stored_without_a_tree_as_with_one() {
    let answers: [&[u8]; 6] = [
        br#"{"id":"x","choices":[{"message":{"content":"Hi."}}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}"#,
        br#"{"id":"x","choices":[]}"#,
        br#"{"usage":{"prompt_tokens":"three"}}"#,
        br#"[{"usage":{"prompt_tokens":3}}]"#,
        b"{\"id\":\"\xff\"}",
        br#"{"id":"x"} trailing"#,
    ];
    for answer in answers {
        let shared = shared().await;
        let rt = shared.runtime.load_full();
        let a = Assembly {
            cache: CacheOutcome {
                header: Some("miss"),
                store: Some(cache::Pending::for_test(
                    rt.cache.clone(),
                    Family::OpenAi,
                    false,
                )),
            },
            ..routing_only(&shared, cache::Shape::Whole)
        };
        let mut chain = Chain::new(Family::OpenAi, phases(a));
        assert_eq!(
            chain.names(),
            ["upstream head", "usage", "cache tee", "settle"]
        );
        chain.head(&mut head("application/json"));
        let trees_before = trees();
        let out = chain.whole(Bytes::from_static(answer));
        crate::body::Filter::end(&mut chain, crate::body::End::Completed);
        assert_eq!(trees() - trees_before, 0, "no tree built");
        assert_eq!(out, answer, "passed through untouched");
        let tree = serde_json::from_slice::<Value>(answer).ok();
        let stored = rt.cache.get(&Key([7; 32])).await;
        let text = String::from_utf8_lossy(answer);
        assert_eq!(stored.is_some(), tree.is_some(), "{text}");
        if let (Some(entry), Some(v)) = (stored, tree) {
            assert_eq!(entry.body, answer, "{text}");
            let usage = crate::api::usage::Usage::of_response(Family::OpenAi, &v);
            assert_eq!(entry.usage, usage.unwrap_or_default(), "{text}");
        }
    }
}
