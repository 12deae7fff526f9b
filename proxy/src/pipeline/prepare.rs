//! The request body each target receives: the app's bytes untouched when
//! nothing changes, otherwise the parsed request with the target's model,
//! the route's shaping, and translation to the target's API.

use bytes::Bytes;
use serde_json::Value;
use tollgate_config::{ProviderType, Shaping};

use crate::api::request::Payload;
use crate::api::translate::TranslateError;
use crate::api::{Family, Operation};
use crate::error::ProxyError;

/// Largest `max_tokens` sent to Anthropic when an OpenAI app gave none and
/// no shaping sets a default (Anthropic requires the field).
pub(crate) const DEFAULT_TRANSLATED_MAX_TOKENS: u64 = 4096;

/// What the target needs.
pub struct TargetSpec<'a> {
    pub family: Family,
    pub kind: ProviderType,
    pub model: &'a str,
    pub shaping: [Option<&'a Shaping>; 2],
    /// Ask an OpenAI-style upstream for the final usage chunk of a stream
    /// (`stream_options.include_usage`), so usage is exact even when the app
    /// did not ask; the proxy removes that chunk again before the app sees it.
    pub stream_usage: bool,
}

impl TargetSpec<'_> {
    /// The proxy adds `stream_options.include_usage` for the app: the
    /// target speaks the app's API and the app did not ask itself. The
    /// response pipeline then strips that chunk again.
    pub fn injects_usage(&self, app: Family, body: &Payload) -> bool {
        self.stream_usage && self.family == app && !app_wants_stream_usage(body)
    }
}

/// True when the app itself asked for the usage chunk of a stream.
pub(crate) fn app_wants_stream_usage(body: &Payload) -> bool {
    body.json()
        .ok()
        .and_then(|v| v.get("stream_options")?.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// Builds the body for one target: the app's bytes when nothing changes,
/// otherwise from its JSON (parsed once, shared by every attempt).
pub fn body_for(
    app: Family,
    op: Operation,
    body: &Payload,
    requested_model: &str,
    t: &TargetSpec<'_>,
) -> Result<Bytes, ProxyError> {
    let shaping_noop = t.shaping.iter().all(Option::is_none);
    let inject_usage = t.injects_usage(app, body);
    if t.family == app && t.model == requested_model && shaping_noop && !inject_usage {
        return Ok(body.raw().clone());
    }
    let v = body.json()?;
    let mut out = if t.family != app {
        translate(app, op, v, t)?
    } else {
        let mut v = v.clone();
        v["model"] = Value::String(t.model.to_string());
        v
    };
    for s in t.shaping.iter().flatten() {
        shape(&mut out, s, t.family, t.kind);
    }
    if inject_usage {
        if let Some(o) = out.as_object_mut() {
            let so = o
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(so) = so.as_object_mut() {
                so.insert("include_usage".into(), Value::Bool(true));
            }
        }
    }
    Ok(Bytes::from(
        serde_json::to_vec(&out).expect("a JSON value serializes"),
    ))
}

fn translate(
    app: Family,
    op: Operation,
    v: &Value,
    t: &TargetSpec<'_>,
) -> Result<Value, TranslateError> {
    use crate::api::translate as tr;
    match (app, op, t.family) {
        (Family::OpenAi, Operation::ChatCompletions, Family::Anthropic) => {
            // Anthropic requires `max_tokens`: a request without one gets
            // the route's or target's `defaultMaxTokens` (shaping would
            // find it already set), else the built-in default.
            let max_tokens = t
                .shaping
                .iter()
                .flatten()
                .find_map(|s| s.default_max_tokens)
                .unwrap_or(DEFAULT_TRANSLATED_MAX_TOKENS);
            tr::openai_to_anthropic_request(v, t.model, &tr::Defaults { max_tokens })
        }
        (Family::Anthropic, Operation::Messages, Family::OpenAi) => {
            tr::anthropic_to_openai_request(v, t.model)
        }
        _ => Err(TranslateError::Operation {
            operation: op.otel_name(),
        }),
    }
}

/// Applies shaping to a request in the target's API.
pub(crate) fn shape(v: &mut Value, s: &Shaping, family: Family, kind: ProviderType) {
    let Some(obj) = v.as_object_mut() else { return };
    for key in &s.strip {
        obj.remove(key);
    }
    for (key, value) in &s.set {
        obj.insert(key.clone(), value.clone());
    }
    // The field that carries the output limit in this request.
    let field = match family {
        Family::Anthropic => "max_tokens",
        Family::OpenAi if obj.contains_key("max_completion_tokens") => "max_completion_tokens",
        Family::OpenAi if obj.contains_key("max_tokens") => "max_tokens",
        Family::OpenAi if kind == ProviderType::Openai && obj.contains_key("messages") => {
            "max_completion_tokens"
        }
        Family::OpenAi => "max_tokens",
    };
    let current = obj.get(field).and_then(Value::as_u64);
    let wanted = match (current, s.default_max_tokens, s.max_tokens) {
        (Some(c), _, Some(max)) if c > max => Some(max),
        (None, Some(d), _) => Some(d),
        _ => None,
    };
    if let Some(n) = wanted {
        obj.insert(field.to_string(), Value::from(n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec<'a>(model: &'a str, shaping: Option<&'a Shaping>) -> TargetSpec<'a> {
        TargetSpec {
            family: Family::OpenAi,
            kind: ProviderType::OpenaiCompatible,
            model,
            shaping: [shaping, None],
            stream_usage: false,
        }
    }

    #[test]
    fn stream_usage_is_requested_when_the_app_did_not() {
        let mut t = spec("m", None);
        t.stream_usage = true;
        let raw = Payload::new(Bytes::from_static(
            br#"{"model":"m","stream":true,"messages":[]}"#,
        ));
        let out = body_for(Family::OpenAi, Operation::ChatCompletions, &raw, "m", &t).unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["stream_options"]["include_usage"], true);
        let asked = Payload::new(Bytes::from_static(
            br#"{"model":"m","stream":true,"stream_options":{"include_usage":true}}"#,
        ));
        assert!(app_wants_stream_usage(&asked));
        let out = body_for(Family::OpenAi, Operation::ChatCompletions, &asked, "m", &t).unwrap();
        assert_eq!(&out, asked.raw(), "already asked: bytes untouched");
    }

    #[test]
    fn untouched_when_nothing_changes() {
        let raw = Payload::new(Bytes::from_static(br#"{"model":"m",  "messages":[]}"#));
        let out = body_for(
            Family::OpenAi,
            Operation::ChatCompletions,
            &raw,
            "m",
            &spec("m", None),
        )
        .unwrap();
        assert_eq!(&out, raw.raw());
        assert!(raw.parsed().is_none(), "no parse on the fast path");
    }

    #[test]
    fn model_rewrite_and_shaping() {
        let raw = Payload::new(Bytes::from_static(br#"{"model":"alias","messages":[],"max_tokens":99999,"logit_bias":{"1":2},"temperature":1}"#));
        let s = Shaping {
            default_max_tokens: Some(256),
            max_tokens: Some(1000),
            set: vec![("temperature".into(), json!(0))],
            strip: vec!["logit_bias".into()],
        };
        let out = body_for(
            Family::OpenAi,
            Operation::ChatCompletions,
            &raw,
            "alias",
            &spec("real", Some(&s)),
        )
        .unwrap();
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"model": "real", "messages": [], "max_tokens": 1000, "temperature": 0})
        );
        // Default applies when absent, in the field the provider expects.
        let mut v = json!({"model": "x", "messages": []});
        shape(&mut v, &s, Family::OpenAi, ProviderType::Openai);
        assert_eq!(v["max_completion_tokens"], 256);
        let mut v = json!({"model": "x", "messages": [], "max_tokens": 10});
        shape(&mut v, &s, Family::Anthropic, ProviderType::Anthropic);
        assert_eq!(v["max_tokens"], 10, "below the cap: kept");
    }

    #[test]
    fn a_translated_request_without_max_tokens_gets_the_shaping_default() {
        let app = Payload::new(bytes::Bytes::from(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string(),
        ));
        let shaping = Shaping {
            default_max_tokens: Some(300),
            ..Shaping::default()
        };
        fn anthropic(shaping: Option<&Shaping>) -> TargetSpec<'_> {
            TargetSpec {
                family: Family::Anthropic,
                kind: ProviderType::Anthropic,
                model: "claude",
                shaping: [None, shaping],
                stream_usage: false,
            }
        }
        let out = |t: &TargetSpec<'_>| -> Value {
            serde_json::from_slice(
                &body_for(Family::OpenAi, Operation::ChatCompletions, &app, "m", t).unwrap(),
            )
            .unwrap()
        };
        assert_eq!(out(&anthropic(Some(&shaping)))["max_tokens"], 300);
        assert_eq!(
            out(&anthropic(None))["max_tokens"],
            DEFAULT_TRANSLATED_MAX_TOKENS
        );
    }
}
