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
