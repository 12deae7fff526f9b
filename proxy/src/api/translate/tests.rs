//! Request, whole-response and error translation both ways.

use serde_json::json;

use super::*;

const D: Defaults = Defaults { max_tokens: 4096 };

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

mod carried;
mod turns;
