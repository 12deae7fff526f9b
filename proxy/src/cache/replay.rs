//! A stored whole response replayed as the SSE stream its API sends, for a
//! streaming request that hits the cache. The text arrives in one delta per
//! block: SDKs accumulate deltas, so the result they build is the same.

use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Value};

use crate::api::usage::Usage;
use crate::api::Family;

/// The SSE body for `whole` (a response in `family`'s shape). `include_usage`:
/// the OpenAI app asked for the final usage chunk.
pub(crate) fn replay(family: Family, whole: &Value, usage: &Usage, include_usage: bool) -> Bytes {
    let mut out = BytesMut::new();
    match family {
        Family::OpenAi => openai(&mut out, whole, usage, include_usage),
        Family::Anthropic => anthropic(&mut out, whole),
    }
    out.freeze()
}

fn data(out: &mut BytesMut, v: &Value) {
    out.put_slice(b"data: ");
    out.put_slice(v.to_string().as_bytes());
    out.put_slice(b"\n\n");
}

fn named(out: &mut BytesMut, name: &str, v: &Value) {
    out.put_slice(b"event: ");
    out.put_slice(name.as_bytes());
    out.put_slice(b"\n");
    data(out, v);
}

/// An OpenAI answer or chunk of `object` with `choices`, and the id,
/// creation time and model of `from`.
pub(super) fn openai_shell(from: &Value, object: &str, choices: Value) -> Value {
    json!({
        "id": from.get("id").cloned().unwrap_or_default(),
        "object": object,
        "created": from.get("created").cloned().unwrap_or_default(),
        "model": from.get("model").cloned().unwrap_or_default(),
        "choices": choices,
    })
}

fn openai(out: &mut BytesMut, whole: &Value, usage: &Usage, include_usage: bool) {
    let chunk = |choices: Value| {
        let mut c = openai_shell(whole, "chat.completion.chunk", choices);
        if let Some(fp) = whole.get("system_fingerprint") {
            c["system_fingerprint"] = fp.clone();
        }
        c
    };
    for choice in whole
        .get("choices")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let index = choice.get("index").cloned().unwrap_or(json!(0));
        let msg = choice.get("message").unwrap_or(&Value::Null);
        let one = |delta: Value, finish: Value| json!([{"index": index, "delta": delta, "logprobs": null, "finish_reason": finish}]);
        data(
            out,
            &chunk(one(
                json!({"role": "assistant", "content": ""}),
                Value::Null,
            )),
        );
        if let Some(t) = msg
            .get("content")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
        {
            data(out, &chunk(one(json!({"content": t}), Value::Null)));
        }
        if let Some(t) = msg.get("refusal").and_then(Value::as_str) {
            data(out, &chunk(one(json!({"refusal": t}), Value::Null)));
        }
        for (i, call) in msg
            .get("tool_calls")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let delta = json!({"tool_calls": [{
                "index": i,
                "id": call.get("id").cloned().unwrap_or_default(),
                "type": "function",
                "function": call.get("function").cloned().unwrap_or_default(),
            }]});
            data(out, &chunk(one(delta, Value::Null)));
        }
        let finish = choice
            .get("finish_reason")
            .cloned()
            .unwrap_or(json!("stop"));
        data(out, &chunk(one(json!({}), finish)));
    }
    if include_usage {
        let mut c = chunk(json!([]));
        c["usage"] = whole
            .get("usage")
            .filter(|u| !u.is_null())
            .cloned()
            .unwrap_or_else(|| openai_usage(usage));
        data(out, &c);
    }
    out.put_slice(b"data: [DONE]\n\n");
}

fn openai_usage(u: &Usage) -> Value {
    json!({
        "prompt_tokens": u.input,
        "completion_tokens": u.output,
        "total_tokens": u.input + u.output,
        "prompt_tokens_details": {"cached_tokens": u.cached_input},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning},
    })
}

fn anthropic(out: &mut BytesMut, whole: &Value) {
    let mut start = whole.clone();
    start["content"] = json!([]);
    start["stop_reason"] = Value::Null;
    start["stop_sequence"] = Value::Null;
    let usage = whole.get("usage").cloned().unwrap_or_else(|| json!({}));
    let mut start_usage = usage.clone();
    start_usage["output_tokens"] = json!(1);
    start["usage"] = start_usage;
    named(
        out,
        "message_start",
        &json!({"type": "message_start", "message": start}),
    );
    for (i, block) in whole
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let kind = block.get("type").and_then(Value::as_str).unwrap_or("");
        let (empty, delta) = match kind {
            "text" => (
                json!({"type": "text", "text": ""}),
                Some(
                    json!({"type": "text_delta", "text": block.get("text").cloned().unwrap_or_default()}),
                ),
            ),
            "thinking" => (
                json!({"type": "thinking", "thinking": ""}),
                Some(
                    json!({"type": "thinking_delta", "thinking": block.get("thinking").cloned().unwrap_or_default()}),
                ),
            ),
            "tool_use" | "server_tool_use" => {
                let mut e = block.clone();
                e["input"] = json!({});
                let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
                (
                    e,
                    Some(json!({"type": "input_json_delta", "partial_json": input.to_string()})),
                )
            }
            _ => (block.clone(), None),
        };
        named(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": i, "content_block": empty}),
        );
        if let Some(d) = delta {
            named(
                out,
                "content_block_delta",
                &json!({"type": "content_block_delta", "index": i, "delta": d}),
            );
        }
        if kind == "thinking" {
            if let Some(sig) = block.get("signature") {
                named(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": i, "delta": {"type": "signature_delta", "signature": sig}}),
                );
            }
        }
        named(
            out,
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": i}),
        );
    }
    named(
        out,
        "message_delta",
        &json!({"type": "message_delta",
            "delta": {"stop_reason": whole.get("stop_reason").cloned().unwrap_or(json!("end_turn")),
                      "stop_sequence": whole.get("stop_sequence").cloned().unwrap_or(Value::Null)},
            "usage": {"output_tokens": usage.get("output_tokens").cloned().unwrap_or(json!(0))}}),
    );
    named(out, "message_stop", &json!({"type": "message_stop"}));
}
