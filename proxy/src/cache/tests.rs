use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};

use super::assemble::assemble;
use super::key::{deterministic, key, Scope, Uncacheable};
use super::replay::replay;
use super::*;
use crate::api::usage::Usage;
use crate::api::{Family, Operation};

/// No policy name or providers: nothing here shares a semantic index.
const NO_OWNER: super::semantic::shared::Owner<'static> = super::semantic::shared::Owner {
    policy: "",
    providers: &[],
};

fn scope<'a>(route: &'a str, tenant: Option<&'a str>) -> Scope<'a> {
    Scope {
        policy: "p",
        family: Family::OpenAi,
        operation: Operation::ChatCompletions,
        route,
        tenant,
    }
}

fn base() -> Value {
    json!({
        "model": "chat-default",
        "temperature": 0,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Is 7 prime?"}],
    })
}

#[test]
fn key_ignores_what_does_not_change_the_answer() {
    let s = scope("r", None);
    let k = key(&s, &base(), true).unwrap();
    let mut v = base();
    v["stream"] = json!(true);
    v["stream_options"] = json!({"include_usage": true});
    v["user"] = json!("u-1");
    v["metadata"] = json!({"a": "b"});
    assert_eq!(key(&s, &v, true).unwrap(), k);
    // Key order in the JSON does not matter.
    let reordered: Value = serde_json::from_str(
        r#"{"messages":[{"content":"Be brief.","role":"system"},{"content":"Is 7 prime?","role":"user"}],"temperature":0,"model":"chat-default"}"#,
    )
    .unwrap();
    assert_eq!(key(&s, &reordered, true).unwrap(), k);
}

/// The key is computed without copying the body; it must equal the hash
/// of the normalized copy, as before, so sidecars of two versions sharing a
/// Redis during a rollout keep finding each other's entries.
#[test]
fn key_is_the_hash_of_the_normalized_body() {
    let s = scope("r", Some("t"));
    let mut v = base();
    v["stream"] = json!(true);
    v["user"] = json!("u-1");
    v["tools"] = json!([{"type": "function", "function": {"name": "f", "parameters": {"b": 1, "a": [1.5, "x"]}}}]);
    let copy = super::key::normalized(v.as_object().unwrap());
    assert_eq!(
        key(&s, &v, true).unwrap(),
        super::key::hash("tollgate-cache-v1", &s, &copy)
    );
}

#[test]
fn key_changes_with_every_scoping_field() {
    let s = scope("r", None);
    let k = key(&s, &base(), true).unwrap();
    let variants: Vec<(&str, Value)> = vec![
        ("model", json!("other-model")),
        ("max_tokens", json!(10)),
        ("top_p", json!(0.5)),
        ("stop", json!(["x"])),
        ("seed", json!(1)),
        ("response_format", json!({"type": "json_object"})),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f"}}]),
        ),
        ("tool_choice", json!("required")),
        ("logprobs", json!(true)),
    ];
    for (field, value) in variants {
        let mut v = base();
        v[field] = value;
        assert_ne!(key(&s, &v, true).unwrap(), k, "{field}");
    }
    let mut sys = base();
    sys["messages"][0]["content"] = json!("Be verbose.");
    assert_ne!(key(&s, &sys, true).unwrap(), k, "system prompt");
    let mut neg = base();
    neg["messages"][1]["content"] = json!("Is 7 not prime?");
    assert_ne!(key(&s, &neg, true).unwrap(), k, "message text");
    assert_ne!(key(&scope("r2", None), &base(), true).unwrap(), k, "route");
    assert_ne!(
        key(&scope("r", Some("t1")), &base(), true).unwrap(),
        k,
        "tenant"
    );
    assert_ne!(
        key(&scope("r", Some("t1")), &base(), true).unwrap(),
        key(&scope("r", Some("t2")), &base(), true).unwrap(),
        "tenants apart"
    );
    // An empty tenant header is not the same as no header.
    assert_ne!(key(&scope("r", Some("")), &base(), true).unwrap(), k);
    let mut anth = scope("r", None);
    anth.family = Family::Anthropic;
    assert_ne!(key(&anth, &base(), true).unwrap(), k, "API");
}

#[test]
fn only_deterministic_requests_by_default() {
    let s = scope("r", None);
    let mut hot = base();
    hot["temperature"] = json!(0.7);
    assert_eq!(key(&s, &hot, true), Err(Uncacheable::NotDeterministic));
    let mut unset = base();
    unset.as_object_mut().unwrap().remove("temperature");
    assert!(!deterministic(&unset), "providers default to temperature 1");
    let mut many = base();
    many["n"] = json!(3);
    assert!(!deterministic(&many));
    assert!(
        key(&s, &hot, false).is_ok(),
        "deterministicOnly: false caches anyway"
    );
    let mut emb = scope("r", None);
    emb.operation = Operation::Embeddings;
    assert!(key(&emb, &json!({"model": "e", "input": "x"}), true).is_ok());
}

#[test]
fn directives_from_headers() {
    let h = |pairs: &[(&str, &str)]| {
        let mut m = http::HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        Directive::from_headers(&m)
    };
    assert_eq!(h(&[]), Directive::Normal);
    assert_eq!(h(&[("x-tollgate-cache", "bypass")]), Directive::Bypass);
    assert_eq!(h(&[("x-tollgate-cache", "Refresh")]), Directive::Refresh);
    assert_eq!(
        h(&[("cache-control", "max-age=0, no-cache")]),
        Directive::Refresh
    );
    assert_eq!(h(&[("cache-control", "no-store")]), Directive::Bypass);
}

fn openai_whole() -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Yes.", "refusal": null,
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
            "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11},
    })
}

fn anthropic_whole() -> Value {
    json!({
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Yes."}, {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"a": 1}}],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 9, "output_tokens": 2},
    })
}

#[test]
fn replay_then_assemble_gives_back_the_response() {
    let u = Usage {
        input: 9,
        output: 2,
        ..Usage::default()
    };
    let o = openai_whole();
    let sse = replay(Family::OpenAi, &o, &u, true);
    assert!(sse.ends_with(b"data: [DONE]\n\n"));
    assert_eq!(assemble(Family::OpenAi, &sse).unwrap(), o);
    let quiet = replay(Family::OpenAi, &o, &u, false);
    assert!(
        !String::from_utf8_lossy(&quiet).contains("\"usage\""),
        "no usage chunk unless asked"
    );

    let a = anthropic_whole();
    let sse = replay(Family::Anthropic, &a, &u, false);
    assert!(String::from_utf8_lossy(&sse).starts_with("event: message_start\n"));
    assert_eq!(assemble(Family::Anthropic, &sse).unwrap(), a);
}

#[test]
fn incomplete_streams_never_assemble() {
    let u = Usage::default();
    let full = replay(Family::OpenAi, &openai_whole(), &u, false);
    let cut = &full[..full.len() - "data: [DONE]\n\n".len()];
    assert!(assemble(Family::OpenAi, cut).is_none(), "no [DONE]");
    let mut errored = cut.to_vec();
    errored.extend_from_slice(b"data: {\"error\":{\"message\":\"x\"}}\n\n");
    assert!(assemble(Family::OpenAi, &errored).is_none());

    let full = replay(Family::Anthropic, &anthropic_whole(), &u, false);
    let text = String::from_utf8_lossy(&full);
    let cut = &text[..text.find("event: message_stop").unwrap()];
    assert!(
        assemble(Family::Anthropic, cut.as_bytes()).is_none(),
        "no message_stop"
    );
    let with_error = format!("{cut}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"x\"}}}}\n\n");
    assert!(assemble(Family::Anthropic, with_error.as_bytes()).is_none());
}

fn cfg(max_bytes: u64, max_entries: u64) -> tollgate_config::Cache {
    tollgate_config::Cache {
        enabled: true,
        max_bytes,
        max_entries,
        max_entry_bytes: max_bytes,
        ..Default::default()
    }
}

fn entry(size: usize) -> Entry {
    Entry {
        body: Bytes::from(vec![b'x'; size]),
        usage: Usage::default(),
        target: "openai/gpt".into(),
        stored_at_ms: now_ms(),
    }
}

fn k(i: u8) -> Key {
    Key([i; 32])
}

#[tokio::test]
async fn memory_store_expires_and_stays_within_bounds() {
    let c = ResponseCache::new(
        &cfg(1 << 20, 100),
        NO_OWNER,
        None,
        Arc::new(CacheMetrics::new()),
    )
    .await
    .unwrap();
    c.put(k(1), entry(10), Duration::from_millis(50), None);
    assert!(c.get(&k(1)).await.is_some());
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while c.get(&k(1)).await.is_some() {
        assert!(std::time::Instant::now() < deadline, "entry never expired");
        tokio::task::yield_now().await;
    }

    // 20 entries of ~10 KB into 64 KB: the bound holds.
    let small = ResponseCache::new(
        &cfg(64 << 10, 1000),
        NO_OWNER,
        None,
        Arc::new(CacheMetrics::new()),
    )
    .await
    .unwrap();
    for i in 0..20 {
        small.put(k(i), entry(10_000), Duration::from_secs(60), None);
    }
    small.refresh_gauges();
    assert!(
        small.metrics.bytes.get() <= 64 << 10,
        "bytes {}",
        small.metrics.bytes.get()
    );
    assert!(small.metrics.entries.get() < 20);

    // The entry bound: 10 entries at most, whatever their size.
    let few = ResponseCache::new(
        &cfg(1 << 20, 10),
        NO_OWNER,
        None,
        Arc::new(CacheMetrics::new()),
    )
    .await
    .unwrap();
    for i in 0..30 {
        few.put(k(i), entry(10), Duration::from_secs(60), None);
    }
    few.refresh_gauges();
    assert!(
        few.metrics.entries.get() <= 10,
        "entries {}",
        few.metrics.entries.get()
    );

    // Larger than maxEntryBytes: not stored.
    let mut tight = cfg(1 << 20, 10);
    tight.max_entry_bytes = 100;
    let t = ResponseCache::new(&tight, NO_OWNER, None, Arc::new(CacheMetrics::new()))
        .await
        .unwrap();
    t.put(k(1), entry(101), Duration::from_secs(60), None);
    assert!(t.get(&k(1)).await.is_none());
}

#[tokio::test]
async fn an_entry_of_the_largest_size_allowed_is_stored() {
    let defaults = tollgate_config::Cache {
        enabled: true,
        ..Default::default()
    };
    // Each case: the bounds, and the body size stored.
    let cases = [
        (defaults.clone(), defaults.max_entry_bytes as usize - 200),
        (cfg(64 << 10, 1000), 10_000),
        (cfg(1 << 20, 1), 1000),
        (cfg(1 << 20, 10_000), (1 << 19) - 200),
    ];
    for (bounds, size) in cases {
        let c = ResponseCache::new(&bounds, NO_OWNER, None, Arc::new(CacheMetrics::new()))
            .await
            .unwrap();
        assert!(c.put(k(3), entry(size), Duration::from_secs(60), None));
        assert!(
            c.get(&k(3)).await.is_some(),
            "{size} bytes with {} / {} / {}",
            bounds.max_bytes,
            bounds.max_entries,
            bounds.max_entry_bytes
        );
    }
}

#[tokio::test]
async fn entries_survive_a_reload_with_the_same_bounds() {
    let m = Arc::new(CacheMetrics::new());
    let a = ResponseCache::new(&cfg(1 << 20, 100), NO_OWNER, None, m.clone())
        .await
        .unwrap();
    a.put(k(7), entry(10), Duration::from_secs(60), None);
    let b = ResponseCache::new(&cfg(1 << 20, 100), NO_OWNER, Some(&a), m.clone())
        .await
        .unwrap();
    assert!(b.get(&k(7)).await.is_some());
    let c = ResponseCache::new(&cfg(2 << 20, 100), NO_OWNER, Some(&b), m)
        .await
        .unwrap();
    assert!(c.get(&k(7)).await.is_none(), "new bounds start empty");
}

#[test]
fn entry_wire_round_trip() {
    let e = Entry {
        body: Bytes::from_static(br#"{"a":"\u00e9"}"#),
        usage: Usage {
            input: 1,
            output: 2,
            cached_input: 3,
            cache_creation: 4,
            reasoning: 5,
        },
        target: "openai/gpt-4o".into(),
        stored_at_ms: 42,
    };
    assert_eq!(Entry::from_json(&e.to_json()).unwrap(), e);
    assert!(Entry::from_json(b"garbage").is_none());
}

/// A JSON value as a tree whose object keys keep the order they were
/// generated in, written out as text in that order or reversed, compact or
/// spaced: the same JSON to any reader.
#[derive(Debug, Clone)]
enum Tree {
    Leaf(Value),
    Array(Vec<Tree>),
    Object(Vec<(String, Tree)>),
}

impl Tree {
    fn text(&self, reversed: bool, spaced: bool, out: &mut String) {
        let (comma, colon) = if spaced { (", ", ": ") } else { (",", ":") };
        match self {
            Tree::Leaf(v) => out.push_str(&v.to_string()),
            Tree::Array(items) => {
                out.push('[');
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(comma);
                    }
                    t.text(reversed, spaced, out);
                }
                out.push(']');
            }
            Tree::Object(fields) => {
                // Later duplicates win in every parser: keep the last of each.
                let mut seen = std::collections::BTreeMap::new();
                for (k, t) in fields {
                    seen.insert(k.clone(), t);
                }
                let mut fields: Vec<_> = seen.into_iter().collect();
                if reversed {
                    fields.reverse();
                }
                out.push('{');
                for (i, (k, t)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(comma);
                    }
                    out.push_str(&Value::String(k.clone()).to_string());
                    out.push_str(colon);
                    t.text(reversed, spaced, out);
                }
                out.push('}');
            }
        }
    }
}

fn tree() -> impl proptest::strategy::Strategy<Value = Tree> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[a-z ]{0,12}".prop_map(Value::from),
    ]
    .prop_map(Tree::Leaf);
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Tree::Array),
            proptest::collection::vec(("[a-z_]{1,8}", inner), 0..5).prop_map(Tree::Object),
        ]
    })
}

proptest::proptest! {
    /// Equal JSON gives an equal key, whatever the key order or spacing
    /// (this would break if serde_json's maps kept insertion order, e.g. a
    /// dependency turning on `preserve_order`).
    #[test]
    fn equal_json_gives_an_equal_key(
        fields in proptest::collection::vec(("[a-z_]{1,8}", tree()), 1..6),
    ) {
        let mut fields = fields;
        fields.push(("messages".into(), Tree::Leaf(json!([{"role": "user", "content": "hi"}]))));
        let body = Tree::Object(fields);
        let s = scope("chat", None);
        let keys: Vec<_> = [(false, false), (true, false), (false, true), (true, true)]
            .into_iter()
            .map(|(reversed, spaced)| {
                let mut text = String::new();
                body.text(reversed, spaced, &mut text);
                let v: Value = serde_json::from_str(&text).unwrap();
                key(&s, &v, false).unwrap()
            })
            .collect();
        proptest::prop_assert!(keys.windows(2).all(|w| w[0] == w[1]), "{keys:?}");
    }
}

/// A body's key from the bytes the PII filter wrote is its key from the
/// body, whatever the fields and the strings in them hold.
#[test]
fn the_key_of_written_bytes_is_the_key_of_the_body() {
    let bodies = [
        json!({}),
        json!({"stream": true}),
        json!({"stream": false, "user": "u", "metadata": {"a": "}"}}),
        base(),
        json!({"model": "m", "temperature": 0, "stream": false, "seed": 7,
               "messages": [{"role": "user", "content": "a \"quoted\", {braced} [list] \\ back\\\\slash \u{e9} \u{1f600} \n\t\u{1}"}]}),
        json!({"a\"b": 1, "c,d": [1, {"e": [[], {}]}], "temperature": 0.0, "user": [",", "}"]}),
        json!({"temperature": 0, "service_tier": "x", "tools": [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}], "zzz": null}),
    ];
    for body in bodies {
        let written = serde_json::to_vec(&body).unwrap();
        assert_eq!(
            super::key::key_written(&scope("r", Some("t")), &body, &written, false),
            key(&scope("r", Some("t")), &body, false),
            "{body}"
        );
        assert_eq!(
            super::key::key_written(&scope("r", None), &body, &written, true),
            key(&scope("r", None), &body, true),
            "{body}"
        );
    }
    // Bytes that are not such an object fall back to the body.
    let body = base();
    for junk in [
        &b""[..],
        b"{",
        b"[]",
        b"{\"a\":1,}",
        b"{\"a\"}",
        b"{\"a\":\"x}",
        b"{\"a\":]}",
    ] {
        assert_eq!(
            super::key::key_written(&scope("r", None), &body, junk, true),
            key(&scope("r", None), &body, true)
        );
    }
}

proptest::proptest! {
    #[test]
    fn the_key_of_written_bytes_is_the_key_of_any_body(
        fields in proptest::collection::vec((
            proptest::sample::select(vec!["stream", "user", "model", "a\"b", "x,y", "{", "metadata", "messages", "temperature", "é"]),
            json_value(),
        ), 0..8),
    ) {
        let body = Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect());
        let written = serde_json::to_vec(&body).unwrap();
        proptest::prop_assert_eq!(
            super::key::key_written(&scope("r", None), &body, &written, false),
            key(&scope("r", None), &body, false)
        );
    }
}

fn json_value() -> impl proptest::strategy::Strategy<Value = Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        "[ -~\\\\\"{}\\[\\],:é\u{1f600}\n]{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec(("[a-z{},\"]{0,4}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}
