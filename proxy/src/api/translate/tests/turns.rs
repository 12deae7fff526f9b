//! How turns cross between the APIs: tool results and the calls they
//! answer, empty user text, consecutive assistant messages.

use serde_json::{json, Value};

use super::*;

/// Both APIs take a tool result only as the answer to a call of the
/// assistant turn just before it (Anthropic also wants results ahead of a
/// user turn's other content): anything else is refused, not reordered
/// into another conversation.
#[test]
fn tool_results_must_answer_the_turn_before() {
    let call = json!({"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]});
    let result = json!({"role": "tool", "tool_call_id": "c1", "content": "ok"});
    let ok = json!({"messages": [{"role": "user", "content": "go"}, call, result]});
    let a = openai_to_anthropic_request(&ok, "c", &D).unwrap();
    assert_eq!(a["messages"][2]["content"][0]["type"], "tool_result");
    for messages in [
        json!([{"role": "user", "content": "go"}, result]),
        json!([call, {"role": "user", "content": "wait"}, result]),
        json!([call, {"role": "tool", "tool_call_id": "c2", "content": "?"}]),
    ] {
        let n = messages.as_array().unwrap().len() - 1;
        let err = openai_to_anthropic_request(&json!({"messages": messages}), "c", &D)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("messages[{n}].tool_call_id: answers no tool call of the assistant message before it")
        );
    }
    let tool_use = json!({"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]});
    let tool_result = json!({"type": "tool_result", "tool_use_id": "t1", "content": "ok"});
    let text = json!({"type": "text", "text": "and?"});
    let anthropic = |messages: Value| json!({"max_tokens": 5, "messages": messages});
    // A turn of consecutive assistant messages: results may answer any of it.
    let split_turn = anthropic(json!([tool_use, {"role": "assistant", "content": "done"},
        {"role": "user", "content": [tool_result, text]}]));
    let o = anthropic_to_openai_request(&split_turn, "g").unwrap();
    assert_eq!(o["messages"][1]["role"], "tool");
    for (messages, want) in [
        (
            json!([tool_use, {"role": "user", "content": [text, tool_result]}]),
            "messages[1].content[1]: a tool result must come before the turn's other content",
        ),
        (
            json!([tool_use, {"role": "user", "content": "hm"},
                {"role": "user", "content": [tool_result]}]),
            "messages[2].content[0].tool_use_id: answers no tool call of the assistant turn before it",
        ),
    ] {
        let err = anthropic_to_openai_request(&anthropic(messages), "g")
            .unwrap_err()
            .to_string();
        assert_eq!(err, want);
    }
}

/// Empty user text, which OpenAI takes and the Messages API refuses,
/// carries nothing: it is left out towards Anthropic, and a message of
/// nothing else is dropped.
#[test]
fn empty_user_text_is_left_out_towards_anthropic() {
    let req = json!({"messages": [
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "hi"}]}]});
    let a = openai_to_anthropic_request(&req, "c", &D).unwrap();
    assert_eq!(a["messages"], json!([{"role": "user", "content": "hi"}]));
}

/// Consecutive Anthropic assistant messages are one turn to the Messages
/// API, so they become one OpenAI message: text joined, tool calls in order.
#[test]
fn consecutive_assistant_turns_become_one_message() {
    let req = json!({"max_tokens": 5, "messages": [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "f", "input": {"q": 1}}]},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t2", "name": "g", "input": {}}]}]});
    let o = anthropic_to_openai_request(&req, "g").unwrap();
    let msgs = o["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2, "{o}");
    assert_eq!(msgs[1]["content"], "Let me look.");
    let ids: Vec<_> = msgs[1]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["t1", "t2"]);
    // The other way, consecutive OpenAI assistant messages are one turn
    // whose texts are one block, so the round trip gives them back as one.
    let openai = json!({"messages": [{"role": "user", "content": "go"},
        {"role": "assistant", "content": "Let me look."},
        {"role": "assistant", "content": "Found it."}]});
    let a = openai_to_anthropic_request(&openai, "c", &D).unwrap();
    assert_eq!(a["messages"][1]["content"], "Let me look.\n\nFound it.");
    let back = anthropic_to_openai_request(&a, "g").unwrap();
    assert_eq!(back["messages"][1]["content"], "Let me look.\n\nFound it.");
    // A text after a tool call in the next message comes first in the
    // turn, as one OpenAI message (text, then calls) would give it.
    let openai = json!({"messages": [{"role": "user", "content": "go"},
        {"role": "assistant", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "assistant", "content": "Also this."}]});
    let a = openai_to_anthropic_request(&openai, "c", &D).unwrap();
    let kinds: Vec<_> = a["messages"][1]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["text", "tool_use"]);
}
