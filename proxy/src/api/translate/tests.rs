use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::api::Event;

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

const D: Defaults = Defaults { max_tokens: 4096 };

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

#[test]
fn openai_request_to_anthropic_moves_system_and_merges_tool_results() {
    let req = json!({
        "model": "chat-default",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Weather in Oslo and Bergen?"},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Oslo\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "w", "arguments": "{\"city\":\"Bergen\"}"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "3C"},
            {"role": "tool", "tool_call_id": "call_2", "content": "5C"},
        ],
        "temperature": 1.6,
        "stop": "END",
        "seed": 7,
        "user": "u-1",
        "tools": [{"type": "function", "function": {"name": "w", "parameters": {"type": "object"}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
    });
    let out = openai_to_anthropic_request(&req, "claude-x", &D).unwrap();
    assert_eq!(out["model"], "claude-x");
    assert_eq!(out["system"], "Be brief.\n\nUse metric units.");
    assert_eq!(out["max_tokens"], 4096);
    assert_eq!(out["temperature"], 1.0);
    assert_eq!(out["stop_sequences"], json!(["END"]));
    assert_eq!(out["metadata"], json!({"user_id": "u-1"}));
    assert!(out.get("seed").is_none());
    assert_eq!(
        out["tools"][0],
        json!({"name": "w", "input_schema": {"type": "object"}})
    );
    assert_eq!(
        out["tool_choice"],
        json!({"type": "any", "disable_parallel_tool_use": true})
    );
    let msgs = out["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 3);
    assert_eq!(
        msgs[0],
        json!({"role": "user", "content": "Weather in Oslo and Bergen?"})
    );
    assert_eq!(
        msgs[1]["content"][1],
        json!({"type": "tool_use", "id": "call_2", "name": "w", "input": {"city": "Bergen"}})
    );
    assert_eq!(msgs[2]["role"], "user");
    assert_eq!(msgs[2]["content"].as_array().unwrap().len(), 2);
    assert_eq!(msgs[2]["content"][0]["tool_use_id"], "call_1");
}

#[test]
fn openai_request_images_and_limits() {
    let req = json!({
        "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.jpg"}},
        ]}],
        "max_completion_tokens": 50,
        "max_tokens": 10,
    });
    let out = openai_to_anthropic_request(&req, "c", &D).unwrap();
    assert_eq!(out["max_tokens"], 50);
    let c = &out["messages"][0]["content"];
    assert_eq!(
        c[1]["source"],
        json!({"type": "base64", "media_type": "image/png", "data": "AAAA"})
    );
    assert_eq!(
        c[2]["source"],
        json!({"type": "url", "url": "https://example.com/a.jpg"})
    );
}

#[test]
fn openai_request_refuses_what_anthropic_cannot_do() {
    let base = json!({"messages": [{"role": "user", "content": "hi"}]});
    for (k, v, field) in [
        ("n", json!(2), "n"),
        ("logprobs", json!(true), "logprobs"),
        (
            "response_format",
            json!({"type": "json_object"}),
            "response_format",
        ),
    ] {
        let mut req = base.clone();
        req[k] = v;
        match openai_to_anthropic_request(&req, "c", &D) {
            Err(TranslateError::Unsupported { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{k}: {other:?}"),
        }
    }
    let bad = json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{oops"}}]}]});
    let err = openai_to_anthropic_request(&bad, "c", &D).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("messages[0].tool_calls[0].function.arguments"),
        "{err}"
    );
    let audio = json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]});
    assert!(openai_to_anthropic_request(&audio, "c", &D)
        .unwrap_err()
        .to_string()
        .contains("input_audio"));
}

#[test]
fn anthropic_request_to_openai() {
    let req = json!({
        "model": "via-gpt",
        "max_tokens": 100,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "toolu_1", "name": "w", "input": {"city": "Oslo"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "3C"}]},
                {"type": "text", "text": "And tomorrow?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "BBBB"}}
            ]},
        ],
        "stop_sequences": ["END"],
        "top_k": 5,
        "stream": true,
        "metadata": {"user_id": "u-2"},
        "tools": [{"name": "w", "description": "weather", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "w", "disable_parallel_tool_use": true},
    });
    let out = anthropic_to_openai_request(&req, "gpt-4o-mini").unwrap();
    assert_eq!(out["model"], "gpt-4o-mini");
    assert_eq!(out["max_tokens"], 100);
    assert_eq!(out["stop"], json!(["END"]));
    assert_eq!(out["user"], "u-2");
    assert_eq!(out["stream_options"], json!({"include_usage": true}));
    assert!(out.get("top_k").is_none());
    assert_eq!(
        out["tool_choice"],
        json!({"type": "function", "function": {"name": "w"}})
    );
    assert_eq!(out["parallel_tool_calls"], false);
    assert_eq!(
        out["tools"][0]["function"]["parameters"],
        json!({"type": "object"})
    );
    let m = out["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(
        m[3],
        json!({"role": "tool", "tool_call_id": "toolu_1", "content": "3C"})
    );
    assert_eq!(
        m[4]["content"][1]["image_url"]["url"],
        "data:image/jpeg;base64,BBBB"
    );

    let o1 =
        anthropic_to_openai_request(&json!({"max_tokens": 5, "messages": []}), "o3-mini").unwrap();
    assert_eq!(o1["max_completion_tokens"], 5);
    let server =
        json!({"messages": [], "tools": [{"type": "web_search_20250305", "name": "web_search"}]});
    assert!(anthropic_to_openai_request(&server, "g")
        .unwrap_err()
        .to_string()
        .contains("web_search_20250305"));
    // A text part without its text is refused both ways, not sent as null.
    let oa = json!({"messages": [{"role": "user", "content": [{"type": "text", "texw": "x"}]}]});
    let err = openai_to_anthropic_request(&oa, "c", &D).unwrap_err();
    assert_eq!(
        err.to_string(),
        "messages[0].content[0].text: must be a string"
    );
    let an =
        json!({"max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "text"}]}]});
    let err = anthropic_to_openai_request(&an, "g").unwrap_err();
    assert_eq!(
        err.to_string(),
        "messages[0].content[0].text: must be a string"
    );
    let bad_p = json!({"top_p": "high", "messages": []});
    let err = openai_to_anthropic_request(&bad_p, "c", &D).unwrap_err();
    assert_eq!(err.to_string(), "top_p: must be a number between 0 and 1");
    let hot = json!({"max_tokens": 5, "temperature": 1.5, "messages": []});
    let err = anthropic_to_openai_request(&hot, "g").unwrap_err();
    assert_eq!(
        err.to_string(),
        "temperature: must be a number between 0 and 1"
    );
    let empty = json!({"max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "text", "text": ""}]}]});
    let err = anthropic_to_openai_request(&empty, "g").unwrap_err();
    assert_eq!(
        err.to_string(),
        "messages[0].content[0].text: must not be empty"
    );
    let turns = |last: &str| {
        json!({"max_tokens": 5, "messages": [
            {"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""},
            {"role": last, "content": "Joke"}]})
    };
    let thinking = json!({"max_tokens": 5, "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm"}]},
        {"role": "user", "content": "Joke"}]});
    let err = anthropic_to_openai_request(&thinking, "g").unwrap_err();
    assert_eq!(
        err.to_string(),
        "messages[1].content: must hold text or a tool call for an OpenAI model"
    );
    let err = anthropic_to_openai_request(&turns("user"), "g").unwrap_err();
    assert_eq!(err.to_string(), "messages[1].content: must not be empty");
    let prefill = json!({"max_tokens": 5, "messages": [
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]});
    let out = anthropic_to_openai_request(&prefill, "g").unwrap();
    assert_eq!(out["messages"], json!([{"role": "user", "content": "Hi"}]));
    let err = anthropic_to_openai_request(&json!({"messages": []}), "g").unwrap_err();
    assert_eq!(err.to_string(), "max_tokens: is required");
    // A role the Messages API lacks is refused whatever the content's form
    // (a string content used to carry `system` into the OpenAI request).
    for content in [
        json!("be terse"),
        json!([{"type": "text", "text": "be terse"}]),
    ] {
        let req = json!({"max_tokens": 5, "messages": [{"role": "system", "content": content}]});
        let err = anthropic_to_openai_request(&req, "g")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "messages[0].role: must be 'user' or 'assistant', not 'system'"
        );
    }
}

#[test]
fn whole_responses_both_ways() {
    let anth = json!({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [{"type": "text", "text": "Let me check."}, {"type": "tool_use", "id": "toolu_9", "name": "w", "input": {"city": "Oslo"}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 90, "cache_creation_input_tokens": 5},
    });
    let oa = anthropic_to_openai_response(&anth, "chat-default");
    assert_eq!(oa["id"], "chatcmpl-01");
    assert_eq!(oa["model"], "chat-default");
    assert_eq!(oa["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(oa["choices"][0]["message"]["content"], "Let me check.");
    assert_eq!(
        oa["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Oslo\"}"
    );
    assert_eq!(
        oa["usage"],
        json!({"prompt_tokens": 105, "completion_tokens": 7, "total_tokens": 112, "prompt_tokens_details": {"cached_tokens": 90}})
    );
    // Usage survives a round trip through both shapes.
    let back = openai_to_anthropic_response(&oa, "m");
    assert_eq!(back["usage"]["input_tokens"], 15);
    assert_eq!(back["usage"]["cache_read_input_tokens"], 90);
    assert_eq!(back["stop_reason"], "tool_use");
    assert_eq!(back["content"][1]["input"], json!({"city": "Oslo"}));

    let length = json!({"id": "chatcmpl-7", "choices": [{"index": 0, "message": {"role": "assistant", "content": "abc"}, "finish_reason": "length"}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}});
    let a = openai_to_anthropic_response(&length, "m");
    assert_eq!(a["id"], "msg_7");
    assert_eq!(a["stop_reason"], "max_tokens");
    assert_eq!(a["content"], json!([{"type": "text", "text": "abc"}]));
}

#[test]
fn errors_both_ways() {
    let e = anthropic_error_to_openai(
        429,
        br#"{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}"#,
    );
    assert_eq!(e["error"]["message"], "slow down");
    assert_eq!(e["error"]["code"], "rate_limit_exceeded");
    let ctx = anthropic_error_to_openai(400, br#"{"type":"error","error":{"type":"invalid_request_error","message":"prompt is too long: 300000 tokens > 200000 maximum"}}"#);
    assert_eq!(ctx["error"]["code"], "context_length_exceeded");
    let junk = anthropic_error_to_openai(502, b"<html>bad gateway</html>");
    assert_eq!(junk["error"]["type"], "server_error");
    assert!(junk["error"]["message"].as_str().unwrap().contains("502"));

    let a = openai_error_to_anthropic(401, br#"{"error":{"message":"bad key","type":"invalid_request_error","code":"invalid_api_key"}}"#);
    assert_eq!(
        a,
        json!({"type": "error", "error": {"type": "authentication_error", "message": "bad key"}})
    );
    let c = openai_error_to_anthropic(
        400,
        br#"{"error":{"message":"too many tokens","code":"context_length_exceeded"}}"#,
    );
    assert!(c["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("prompt is too long"));
    assert_eq!(
        openai_error_to_anthropic(503, b"")["error"]["type"],
        "overloaded_error"
    );
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

/// Values carried across keep the type both APIs give them: anything else
/// is refused where it enters, naming its path, so a translated request is
/// always one the other direction accepts (the fuzz target's round trip).
#[test]
fn carried_values_are_type_checked_both_ways() {
    let user = json!([{"role": "user", "content": "hi"}]);
    let call = |args: Value| {
        json!([{"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": args}}]}])
    };
    for (field, value, messages, want) in [
        (
            "max_tokens",
            json!(0),
            &user,
            "max_tokens: must be a positive integer",
        ),
        (
            "max_tokens",
            json!(2.5),
            &user,
            "max_tokens: must be a positive integer",
        ),
        ("stream", json!("yes"), &user, "stream: must be a boolean"),
        (
            "stop",
            json!([1]),
            &user,
            "stop: must be an array of strings",
        ),
        ("user", json!(7), &user, "user: must be a string"),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "description": 1}}]),
            &user,
            "tools[0].function.description: must be a string",
        ),
        (
            "tools",
            json!([{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
            &user,
            "tools[0].function.parameters: must be a JSON object",
        ),
        (
            "messages",
            call(json!("[1]")),
            &user,
            "messages[0].tool_calls[0].function.arguments: must be a JSON object",
        ),
        (
            "messages",
            call(json!({"a": 1})),
            &user,
            "messages[0].tool_calls[0].function.arguments: must be a string",
        ),
        (
            "messages",
            json!([{"role": "user", "content": ""}]),
            &user,
            "messages[0].content: must not be empty",
        ),
        (
            "messages",
            json!([{"role": "tool", "tool_call_id": "c1", "content": 3}]),
            &user,
            "messages[0].content: must be text",
        ),
    ] {
        let mut req = json!({"messages": messages});
        req[field] = value;
        let err = openai_to_anthropic_request(&req, "c", &D).unwrap_err();
        assert_eq!(err.to_string(), want, "OpenAI {field}");
    }
    let tool_use = |input: Value| {
        json!([{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": input}]}])
    };
    for (field, value, want) in [
        (
            "max_tokens",
            json!(-1),
            "max_tokens: must be a positive integer",
        ),
        ("stream", json!(1), "stream: must be a boolean"),
        (
            "stop_sequences",
            json!("END"),
            "stop_sequences: must be an array of strings",
        ),
        ("metadata", json!("u"), "metadata: must be a JSON object"),
        (
            "metadata",
            json!({"user_id": 5}),
            "metadata.user_id: must be a string",
        ),
        (
            "tool_choice",
            json!("auto"),
            "tool_choice: must be a JSON object",
        ),
        (
            "tools",
            json!([{"name": "f", "description": ["d"]}]),
            "tools[0].description: must be a string",
        ),
        (
            "tools",
            json!([{"name": "f", "input_schema": []}]),
            "tools[0].input_schema: must be a JSON object",
        ),
        (
            "messages",
            tool_use(json!("x")),
            "messages[0].content[0].input: must be a JSON object",
        ),
        (
            "messages",
            json!([{"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": 5}]}]),
            "messages[0].content[0].content: must be text",
        ),
        (
            "messages",
            json!([{"role": "user", "content": [{"type": "image",
                "source": {"type": "base64", "media_type": 1, "data": "AA=="}}]}]),
            "messages[0].content[0].source.media_type: must be a string",
        ),
    ] {
        let mut req = json!({"max_tokens": 5, "messages": user});
        req[field] = value;
        let err = anthropic_to_openai_request(&req, "g").unwrap_err();
        assert_eq!(err.to_string(), want, "Anthropic {field}");
    }
    // The well-typed forms still pass, both ways.
    let ok = json!({"max_tokens": 5, "stream": true, "stop_sequences": ["END"],
        "metadata": {"user_id": "u"}, "messages": tool_use(json!({"a": 1}))});
    let openai = anthropic_to_openai_request(&ok, "g").unwrap();
    assert_eq!(openai["user"], "u");
    openai_to_anthropic_request(&openai, "c", &D).unwrap();
}
