//! Parsing and merging of switches.

use super::*;
use http::HeaderValue;

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

#[test]
fn parses_every_header() {
    let h = headers(&[
        ("x-mock-latency-ms", "10"),
        ("x-mock-ttft-ms", "20"),
        ("x-mock-chunks", "7"),
        ("x-mock-chunk-interval-ms", "3"),
        ("x-mock-status", "429"),
        ("x-mock-retry-after", "2"),
        ("x-mock-error", "context_length"),
        ("x-mock-fail-first", "2"),
        ("x-mock-scenario", "abc"),
        ("x-mock-reset-after-chunks", "0"),
        ("x-mock-malformed-sse", "true"),
        ("x-mock-omit-usage", "1"),
        ("x-mock-reply", "hello there"),
        ("x-mock-tool-call", "get_weather"),
        ("x-mock-json-style", "spaced"),
        ("content-type", "application/json"),
    ]);
    let s = Switches::from_headers(&h).unwrap();
    assert_eq!(
        s,
        Switches {
            latency_ms: Some(10),
            ttft_ms: Some(20),
            chunks: Some(7),
            chunk_interval_ms: Some(3),
            status: Some(429),
            retry_after: Some(2),
            error: Some(ErrorSwitch::ContextLength),
            fail_first: Some(2),
            scenario: Some("abc".into()),
            reset_after_chunks: Some(0),
            malformed_sse: Some(true),
            omit_usage: Some(true),
            reply: Some("hello there".into()),
            tool_call: Some("get_weather".into()),
            json_style: Some(JsonStyle::Spaced),
        }
    );
}

#[test]
fn rejects_unknown_and_bad_values() {
    let unknown = Switches::from_headers(&headers(&[("x-mock-chunkz", "3")]));
    assert_eq!(unknown, Err(SwitchError::Unknown("x-mock-chunkz".into())));
    for (k, v) in [
        ("x-mock-chunks", "many"),
        ("x-mock-status", "42"),
        ("x-mock-omit-usage", "maybe"),
        ("x-mock-error", "teapot"),
        ("x-mock-latency-ms", "-1"),
        ("x-mock-json-style", "pretty"),
    ] {
        assert!(
            matches!(
                Switches::from_headers(&headers(&[(k, v)])),
                Err(SwitchError::Invalid { .. })
            ),
            "{k}: {v}"
        );
    }
}

#[test]
fn header_wins_over_defaults_field_by_field() {
    let defaults = Switches {
        chunks: Some(9),
        latency_ms: Some(5),
        reply: Some("default".into()),
        ..Switches::default()
    };
    let req = Switches {
        chunks: Some(2),
        ..Switches::default()
    };
    let merged = req.or(&defaults);
    assert_eq!(merged.chunks, Some(2));
    assert_eq!(merged.latency_ms, Some(5));
    assert_eq!(merged.reply.as_deref(), Some("default"));
}

#[test]
fn json_is_camel_case_and_strict() {
    let s: Switches =
        serde_json::from_str(r#"{"chunkIntervalMs":4,"error":"context_length"}"#).unwrap();
    assert_eq!(s.chunk_interval_ms, Some(4));
    assert_eq!(s.error, Some(ErrorSwitch::ContextLength));
    assert_eq!(
        serde_json::to_string(&s).unwrap(),
        r#"{"chunkIntervalMs":4,"error":"context_length"}"#
    );
    assert!(serde_json::from_str::<Switches>(r#"{"chunk_interval_ms":4}"#).is_err());
}

#[test]
fn chunks_default_and_floor() {
    assert_eq!(Switches::default().chunks(), DEFAULT_CHUNKS);
    let zero = Switches {
        chunks: Some(0),
        ..Switches::default()
    };
    assert_eq!(zero.chunks(), 1);
}
