//! Values carried between the APIs keep their types both ways.

use serde_json::{json, Value};

use super::*;

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
            json!([{"role": "assistant", "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "f"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": 3}]),
            &user,
            "messages[1].content: must be text",
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
            json!([{"role": "assistant", "content": [
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "t1", "content": 5}]}]),
            "messages[1].content[0].content: must be text",
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
