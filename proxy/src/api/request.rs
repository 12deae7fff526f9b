//! The request fields the pipeline reads before forwarding.
//!
//! Only `model`, `stream` and the output limit are extracted; every other
//! field is skipped (but still syntax-checked), and the original bytes are forwarded
//! unchanged, so the proxy never drops a field it does not know. Skipped
//! values are not decoded: a lone surrogate escape (`"\ud800"`) or a
//! number out of range (`1e400`) in a field the proxy does not read goes to
//! the provider, which judges it; a feature that reads the whole body
//! (PII, translation, the cache) answers 400 for it.
//!
//! A [`Payload`] carries the body along the path: its bytes, and its JSON
//! parsed at most once, by the first step that reads it.
//!
//! Both refuse a body with a [`ParseError`], which the app sees as a 400.

use std::sync::OnceLock;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

/// Why a request body cannot be read as the JSON the API expects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not JSON, not an object, or trailing bytes after it.
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    /// A field the proxy reads has the wrong type; names the field.
    #[error("invalid request: {0}")]
    Field(String),
}

impl ParseError {
    /// Low-cardinality label for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            ParseError::Malformed(_) => "malformed_json",
            ParseError::Field(_) => "invalid_field",
        }
    }
}

/// What the pipeline needs from a JSON request body.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RequestHead {
    pub model: Option<String>,
    pub stream: bool,
    /// The output limit asked for, as [`asked_max_tokens`] reads it.
    pub max_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Head {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    stream: Option<bool>,
    // Read leniently: the proxy only reports these; a value of another type
    // is the provider's to judge, as for any field the proxy does not use.
    #[serde(default)]
    max_completion_tokens: Lenient,
    #[serde(default)]
    max_tokens: Lenient,
    #[serde(default)]
    max_output_tokens: Lenient,
}

/// The output limit a request body asks for, whichever field its API uses
/// (`max_completion_tokens`, `max_tokens`, the Responses API's
/// `max_output_tokens`), first found in that order. ([`parse_head`] reads
/// the same fields in the same order.)
pub(crate) fn asked_max_tokens(v: &Value) -> Option<u64> {
    ["max_completion_tokens", "max_tokens", "max_output_tokens"]
        .iter()
        .find_map(|f| v.get(*f).and_then(Value::as_u64))
}

/// A non-negative integer, or `None` for a value of any other type (which
/// is skipped, not refused).
#[derive(Default)]
struct Lenient(Option<u64>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Lenient, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient(Some(v)))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E>(self) -> Result<Lenient, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Lenient, A::Error> {
                while a.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient(None))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut a: A,
            ) -> Result<Lenient, A::Error> {
                while a
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Lenient(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// Parses the head of a JSON body, naming the field on type errors.
pub fn parse_head(body: &[u8]) -> Result<RequestHead, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Malformed(
            "the body is empty; expected a JSON object".into(),
        ));
    }
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ParseError::Malformed("expected a JSON object".into()));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    // The plain read first: tracking the path of every value costs more
    // than the read itself, and only a refusal needs it.
    let head = match Head::deserialize(&mut de) {
        Ok(h) => h,
        Err(e) if e.is_data() => return Err(with_path(body)),
        Err(e) => return Err(ParseError::Malformed(e.to_string())),
    };
    de.end().map_err(|e| {
        ParseError::Malformed(format!("trailing characters after the JSON object ({e})"))
    })?;
    Ok(RequestHead {
        model: head.model,
        stream: head.stream.unwrap_or(false),
        max_tokens: head
            .max_completion_tokens
            .0
            .or(head.max_tokens.0)
            .or(head.max_output_tokens.0),
    })
}

/// The refusal of a body whose head has a field of the wrong type, naming
/// the field: read again, tracking paths.
fn with_path(body: &[u8]) -> ParseError {
    let mut de = serde_json::Deserializer::from_slice(body);
    match serde_path_to_error::deserialize::<_, Head>(&mut de) {
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_data() {
                ParseError::Field(format!("`{path}`: {inner}"))
            } else {
                ParseError::Malformed(inner.to_string())
            }
        }
        Ok(_) => ParseError::Malformed("the request head cannot be read".into()),
    }
}

/// A request body: its bytes (as the app sent them, or as the PII filter
/// rewrote them) and its JSON, parsed at most once.
#[derive(Debug)]
pub struct Payload {
    raw: Bytes,
    json: OnceLock<Value>,
    /// `raw` is `json` as serde_json writes it (after a rewrite).
    written: bool,
}

impl Payload {
    pub fn new(raw: Bytes) -> Payload {
        Payload {
            raw,
            json: OnceLock::new(),
            written: false,
        }
    }

    /// The bytes the app sent (or the PII filter wrote).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The JSON, parsed on first use.
    pub fn json(&self) -> Result<&Value, ParseError> {
        if let Some(v) = self.json.get() {
            return Ok(v);
        }
        let v =
            serde_json::from_slice(&self.raw).map_err(|e| ParseError::Malformed(e.to_string()))?;
        Ok(self.json.get_or_init(|| v))
    }

    /// The JSON to edit in place (then [`Payload::rewritten`]).
    pub fn json_mut(&mut self) -> Result<&mut Value, ParseError> {
        self.json()?;
        Ok(self.json.get_mut().expect("just parsed"))
    }

    /// The JSON if some step has parsed it already (this never parses).
    pub fn parsed(&self) -> Option<&Value> {
        self.json.get()
    }

    /// The bytes of the JSON after an edit: the JSON as serde_json writes
    /// it (`serde_json::to_vec`).
    pub fn rewritten(&mut self, raw: Bytes) {
        self.raw = raw;
        self.written = true;
    }

    /// The bytes, when they are the JSON as serde_json writes it (the body
    /// was rewritten), so a step that would serialize it can read them.
    pub fn written(&self) -> Option<&[u8]> {
        self.written.then_some(&self.raw[..])
    }

    /// Lends the parsed JSON out (to a blocking task); see [`Payload::put`].
    pub fn take(&mut self) -> Option<Value> {
        self.json.take()
    }

    /// Gives back the JSON [`Payload::take`] lent out.
    pub fn put(&mut self, v: Value) {
        let _ = self.json.set(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_model_and_stream() {
        let h = parse_head(br#"{"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true,"x":{"y":[1,2]}}"#).unwrap();
        assert_eq!(
            h,
            RequestHead {
                model: Some("m".into()),
                stream: true,
                max_tokens: None,
            }
        );
        assert!(!parse_head(br#"{"model":"m"}"#).unwrap().stream);
    }

    #[test]
    fn the_output_limit_is_read_as_asked_max_tokens_reads_it() {
        for body in [
            r#"{"model":"m","max_tokens":50}"#,
            r#"{"model":"m","max_tokens":50,"max_completion_tokens":70}"#,
            r#"{"max_output_tokens":9,"model":"m","max_tokens":50}"#,
            r#"{"model":"m","max_completion_tokens":"x","max_tokens":50}"#,
            r#"{"model":"m","max_tokens":-1,"max_output_tokens":[1,{"a":2}]}"#,
            r#"{"model":"m","max_tokens":1.5,"max_completion_tokens":{"a":[null]}}"#,
            r#"{"model":"m","max_tokens":null}"#,
            r#"{"model":"m"}"#,
        ] {
            let v: Value = serde_json::from_str(body).unwrap();
            let head = parse_head(body.as_bytes()).expect("a value of another type is not refused");
            assert_eq!(head.max_tokens, asked_max_tokens(&v), "{body}");
            assert_eq!(head.model.as_deref(), Some("m"), "{body}");
        }
    }

    #[test]
    fn names_the_problem() {
        let msg = |b: &[u8]| parse_head(b).unwrap_err().to_string();
        assert!(msg(b"").contains("empty"));
        assert!(
            msg(br#"{"model":"m","#).contains("not valid JSON"),
            "{}",
            msg(br#"{"model":"m","#)
        );
        assert!(msg(br#"{"model":"m"} x"#).contains("trailing"));
        assert!(msg(br#"{"model":"m","stream":"yes"}"#).contains("`stream`"));
        assert!(msg(br#"{"model":7}"#).contains("`model`"));
        assert!(msg(br#"{"model":"a","model":"b"}"#).contains("duplicate field `model`"));
        assert!(msg(br#"[1,2]"#).contains("expected a JSON object"));
        // Syntax errors inside fields the proxy does not read are still caught.
        assert!(msg(br#"{"model":"m","messages":[{]}"#).contains("not valid JSON"));
    }
}
