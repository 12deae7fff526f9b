use proptest::prelude::*;
use serde_json::Value;

use super::CheckedBody;

/// What a parse into a `Value` says: JSON or not, and the usage field.
fn by_tree(b: &[u8]) -> Option<Option<Value>> {
    serde_json::from_slice::<Value>(b)
        .ok()
        .map(|v| v.get("usage").cloned())
}

fn by_check(b: &[u8]) -> Option<Option<Value>> {
    serde_json::from_slice::<CheckedBody>(b)
        .ok()
        .map(|c| c.usage)
}

#[test]
fn agrees_with_a_parse_into_a_tree() {
    let deep_ok = format!("{}{}", "[".repeat(120), "]".repeat(120));
    let too_deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<&[u8]> = vec![
        br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":3}}"#,
        br#"{"usage":{"a":1},"usage":{"b":2}}"#,
        br#"{"usage":null}"#,
        br#"{"usage":1.5e3,"x":[true,false,null,-1,18446744073709551616]}"#,
        br#"[{"usage":{"prompt_tokens":3}}]"#,
        br#""usage""#,
        b"12",
        b"null",
        b" {\"a\":{}} \n",
        b"",
        br#"{"a":1} x"#,
        br#"{"a":1,}"#,
        br#"{"a":"\ud800"}"#,
        br#"{"\ud800":1}"#,
        br#"{"a":"\ud83d\ude00","b":"\u00e9\n\t\"\\\/"}"#,
        br#"{"a":"\x"}"#,
        br#"{"a":1e400}"#,
        br#"{"a":-1e400}"#,
        b"{\"a\":\"\xff\xfe\"}",
        b"{\"\xc3\x28\":1}",
        b"{\"a\":\"tab\there\"}",
        br#"{"usage":{"prompt_tokens":"\ud800"}}"#,
        br#"{1:2}"#,
        br#"{"a":[1,2,]}"#,
        deep_ok.as_bytes(),
        too_deep.as_bytes(),
    ];
    for b in cases {
        assert_eq!(by_check(b), by_tree(b), "{}", String::from_utf8_lossy(b));
    }
}

#[test]
fn reads_the_same_from_a_tree() {
    let v: Value = serde_json::json!({"a": [1, {"b": "c"}], "usage": {"prompt_tokens": 3}});
    let c = CheckedBody::deserialize(&v).unwrap();
    assert_eq!(c.usage, v.get("usage").cloned());
}

use serde::Deserialize;

proptest! {
    /// Any bytes near JSON: a valid answer with one byte changed, cut, or
    /// spliced with JSON-ish tokens.
    #[test]
    fn agrees_on_bytes_near_json(
        pos in 0usize..200,
        byte in prop::sample::select(vec![b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'u', b'0', b'e', b'-', 0xff, 0xc3, 0x01, b' ']),
        cut in prop::bool::ANY,
    ) {
        let base = br#"{"id":"chat-1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi \u00e9 \"x\""}}],"usage":{"prompt_tokens":12,"completion_tokens":3.5e1,"details":[null,true]}}"#;
        let mut b = base.to_vec();
        let at = pos % b.len();
        if cut { b.truncate(at) } else { b[at] = byte }
        prop_assert_eq!(by_check(&b), by_tree(&b));
    }
}

/// The usage read as the cache store reads it ([`Usage::of_checked`]),
/// against a tree and [`Usage::of_field`].
fn usage_agrees(b: &[u8]) {
    use crate::api::event::Event;
    use crate::api::usage::Usage;
    use crate::api::Family;
    for family in [Family::OpenAi, Family::Anthropic] {
        let tree = serde_json::from_slice::<Value>(b)
            .ok()
            .map(|v| v.get("usage").and_then(|u| Usage::of_field(family, u)));
        let read = Usage::of_checked(family, &Event::body(bytes::Bytes::copy_from_slice(b)));
        assert_eq!(read, tree, "{family:?} {}", String::from_utf8_lossy(b));
    }
}

#[test]
fn usage_counts_read_alone_agree_with_a_tree() {
    for b in [
        &br#"{"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8,"prompt_tokens_details":{"cached_tokens":1,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0}}}"#[..],
        br#"{"usage":{"input_tokens":4,"output_tokens":6,"cache_read_input_tokens":2,"cache_creation_input_tokens":1}}"#,
        br#"{"usage":{"prompt_tokens":1,"prompt_tokens":7},"usage":{"completion_tokens":2}}"#,
        br#"{"usage":{"input_tokens":1,"input_tokens":null,"output_tokens":2}}"#,
        br#"{"usage":{"prompt_tokens":null}}"#,
        br#"{"usage":{"prompt_tokens":1.0}}"#,
        br#"{"usage":{"prompt_tokens":-1}}"#,
        br#"{"usage":{"prompt_tokens":"3"}}"#,
        br#"{"usage":{"input_tokens":"3","prompt_tokens":2}}"#,
        br#"{"usage":{"output_tokens":[1],"input_tokens":{"a":1}}}"#,
        br#"{"usage":{"prompt_tokens_details":null,"completion_tokens_details":{"reasoning_tokens":null}}}"#,
        br#"{"usage":{"prompt_tokens_details":[1],"prompt_tokens":1}}"#,
        br#"{"usage":{"prompt_tokens_details":{"reasoning_tokens":"x","cached_tokens":4}}}"#,
        br#"{"usage":{"prompt_tokens_details":{"cached_tokens":1},"prompt_tokens_details":{}}}"#,
        br#"{"usage":{"completion_tokens_details":5}}"#,
        br#"{"usage":{"\u0070rompt_tokens":9}}"#,
        br#"{"usage":{"prompt_tokens":18446744073709551616}}"#,
        br#"{"usage":{"x":"\ud800"}}"#,
        br#"{"usage":{"x":1e400}}"#,
        br#"{"usage":{}}"#,
        br#"{"usage":[1,2]}"#,
        br#"{"usage":"x"}"#,
        br#"{"usage":null}"#,
        br#"{"usage":3}"#,
        br#"{"choices":[]}"#,
        br#"[1]"#,
        b"nope",
    ] {
        usage_agrees(b);
    }
}

proptest! {
    /// A usage object with one byte changed or cut, in either API's shape.
    #[test]
    fn usage_counts_agree_on_bytes_near_json(
        pos in 0usize..300,
        byte in prop::sample::select(vec![b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'n', b'0', b'9', b'.', b'e', b'-', 0xff, b' ']),
        cut in prop::bool::ANY,
        anthropic in prop::bool::ANY,
    ) {
        let base: &[u8] = if anthropic {
            br#"{"type":"message","usage":{"input_tokens":12,"output_tokens":3,"cache_read_input_tokens":4,"cache_creation_input_tokens":0,"service_tier":"standard"},"x":1}"#
        } else {
            br#"{"id":"c","usage":{"prompt_tokens":12,"completion_tokens":35,"total_tokens":47,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":1}},"x":1}"#
        };
        let mut b = base.to_vec();
        let at = pos % b.len();
        if cut { b.truncate(at) } else { b[at] = byte }
        usage_agrees(&b);
    }
}
