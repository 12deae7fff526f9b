//! Stream translation both ways: text, tool calls, usage, errors, and a
//! stream cut short.

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;

/// One upstream event through `t`: the app's events, written.
fn push(t: &mut dyn StreamTranslator, name: Option<&str>, data: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    t.push(&Event::new(name, Bytes::copy_from_slice(data)), &mut out);
    out.into_iter().map(|mut e| e.to_bytes()).collect()
}

/// The end of the upstream through `t`.
fn finish(t: &mut dyn StreamTranslator) -> Vec<Bytes> {
    let mut out = Vec::new();
    t.finish(&mut out);
    out.into_iter().map(|mut e| e.to_bytes()).collect()
}

fn events(out: &[Bytes]) -> Vec<(Option<String>, Value)> {
    let joined: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
    crate::api::sse::events(&joined)
        .map(|e| {
            let data = String::from_utf8_lossy(&e.data).to_string();
            let v = serde_json::from_str(&data).unwrap_or(Value::String(data));
            (e.name.map(str::to_string), v)
        })
        .collect()
}

fn anth(name: &str, v: Value) -> (Option<&'static str>, Vec<u8>) {
    (
        Some(Box::leak(name.to_string().into_boxed_str())),
        v.to_string().into_bytes(),
    )
}

#[test]
fn anthropic_stream_to_openai_chunks_with_tools_and_usage() {
    let mut t = AnthropicToOpenAiStream::new("chat-default", true);
    let input = [
        anth(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_5", "usage": {"input_tokens": 12, "output_tokens": 1}}}),
        ),
        anth("ping", json!({"type": "ping"})),
        anth(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        anth(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}}),
        ),
        anth(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 0}),
        ),
        anth(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {}}}),
        ),
        anth(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\":"}}),
        ),
        anth(
            "content_block_delta",
            json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Oslo\"}"}}),
        ),
        anth(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ),
        anth(
            "message_delta",
            json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}}),
        ),
        anth("message_stop", json!({"type": "message_stop"})),
    ];
    let mut out = Vec::new();
    for (name, data) in &input {
        out.extend(push(&mut t, *name, data));
    }
    out.extend(finish(&mut t));
    let ev = events(&out);
    assert!(
        ev.iter().all(|(n, _)| n.is_none()),
        "OpenAI chunks are unnamed"
    );
    assert_eq!(ev[0].1["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(ev[0].1["id"], "chatcmpl-5");
    assert_eq!(ev[1].1["choices"][0]["delta"]["content"], "Hi");
    assert_eq!(
        ev[2].1["choices"][0]["delta"]["tool_calls"][0]["id"],
        "toolu_1"
    );
    let args: String = ev[3..5]
        .iter()
        .map(|(_, v)| {
            v["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(args, "{\"city\":\"Oslo\"}");
    assert_eq!(ev[5].1["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(ev[6].1["usage"]["prompt_tokens"], 12);
    assert_eq!(ev[6].1["usage"]["completion_tokens"], 9);
    assert_eq!(ev[7].1, Value::String("[DONE]".into()));
    assert_eq!(ev.len(), 8);

    let mut quiet = AnthropicToOpenAiStream::new("m", false);
    let mut out = Vec::new();
    for (name, data) in &input {
        out.extend(push(&mut quiet, *name, data));
    }
    assert!(
        events(&out).iter().all(|(_, v)| v.get("usage").is_none()),
        "no usage chunk unless asked"
    );
}

#[test]
fn anthropic_stream_error_becomes_openai_error_chunk() {
    let mut t = AnthropicToOpenAiStream::new("m", false);
    let (n, d) = anth(
        "error",
        json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    );
    let ev = events(&push(&mut t, n, &d));
    assert_eq!(ev[0].1["error"]["message"], "Overloaded");
    assert!(
        push(&mut t, Some("message_stop"), b"{}").is_empty(),
        "nothing after an error"
    );
}

fn chunk(v: Value) -> Vec<u8> {
    v.to_string().into_bytes()
}

#[test]
fn openai_stream_to_anthropic_events() {
    let mut t = OpenAiToAnthropicStream::new("via-gpt");
    let input = [
        chunk(
            json!({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": {"content": "Hel"}, "finish_reason": null}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": null}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "w", "arguments": ""}}]}, "finish_reason": null}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}, "finish_reason": null}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-3", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ),
        chunk(
            json!({"id": "chatcmpl-3", "choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 8}}}),
        ),
        b"[DONE]".to_vec(),
    ];
    let mut out = Vec::new();
    for d in &input {
        out.extend(push(&mut t, None, d));
    }
    out.extend(finish(&mut t));
    let ev = events(&out);
    let names: Vec<&str> = ev.iter().map(|(n, _)| n.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(ev[0].1["message"]["id"], "msg_3");
    assert_eq!(ev[0].1["message"]["model"], "via-gpt");
    assert_eq!(
        ev[6].1["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "w", "input": {}})
    );
    assert_eq!(ev[6].1["index"], 1);
    assert_eq!(ev[7].1["delta"]["partial_json"], "{\"a\":1}");
    assert_eq!(ev[9].1["delta"]["stop_reason"], "tool_use");
    assert_eq!(ev[9].1["usage"]["input_tokens"], 12);
    assert_eq!(ev[9].1["usage"]["cache_read_input_tokens"], 8);
    assert_eq!(ev[9].1["usage"]["output_tokens"], 4);
}

#[test]
fn openai_stream_cut_short_is_left_open_for_the_error_event() {
    let mut t = OpenAiToAnthropicStream::new("m");
    let out = push(
        &mut t,
        None,
        &chunk(json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}}]})),
    );
    assert!(!out.is_empty());
    assert!(
        finish(&mut t).is_empty(),
        "no message_stop without a finish reason"
    );

    let mut t = OpenAiToAnthropicStream::new("m");
    push(
        &mut t,
        None,
        &chunk(
            json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": "stop"}]}),
        ),
    );
    let names: Vec<_> = events(&finish(&mut t))
        .into_iter()
        .map(|(n, _)| n.unwrap())
        .collect();
    assert_eq!(
        names,
        ["content_block_stop", "message_delta", "message_stop"]
    );
}
