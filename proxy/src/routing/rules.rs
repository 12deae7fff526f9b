//! Request features that routing rules test, and rule matching.
//!
//! Prompt tokens are estimated from characters (about four per token for
//! English); rules compare against thresholds, where that precision is
//! enough and the cost is a single pass over the text.

use http::HeaderMap;
use serde_json::Value;
use tollgate_config::{Match, Rule};

use crate::api::Family;

/// What rules can see of a request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Features {
    pub prompt_chars: usize,
    pub has_tools: bool,
    pub has_images: bool,
    pub response_format: Option<String>,
    pub system_prompt: String,
}

impl Features {
    pub fn estimated_prompt_tokens(&self) -> u64 {
        self.prompt_chars.div_ceil(4) as u64
    }

    /// Extracts features from a chat (OpenAI) or messages (Anthropic) body.
    pub fn of(family: Family, body: &Value) -> Features {
        let mut f = Features {
            has_tools: body
                .get("tools")
                .and_then(Value::as_array)
                .is_some_and(|t| !t.is_empty()),
            response_format: body
                .pointer("/response_format/type")
                .and_then(Value::as_str)
                .map(str::to_string),
            ..Default::default()
        };
        if family == Family::Anthropic {
            if let Some(system) = body.get("system") {
                let mut s = String::new();
                collect_text(system, &mut s, &mut f.has_images);
                f.prompt_chars += s.len();
                f.system_prompt = s;
            }
        }
        if let Some(prompt) = body.get("prompt") {
            let mut s = String::new();
            collect_text(prompt, &mut s, &mut f.has_images);
            f.prompt_chars += s.len();
        }
        for m in body
            .get("messages")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let mut s = String::new();
            if let Some(c) = m.get("content") {
                collect_text(c, &mut s, &mut f.has_images);
            }
            f.prompt_chars += s.len();
            let role = m.get("role").and_then(Value::as_str);
            if family == Family::OpenAi && matches!(role, Some("system" | "developer")) {
                if !f.system_prompt.is_empty() {
                    f.system_prompt.push('\n');
                }
                f.system_prompt.push_str(&s);
            }
        }
        f
    }
}

fn collect_text(v: &Value, out: &mut String, images: &mut bool) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(parts) => {
            for p in parts {
                if matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("image_url" | "image" | "input_image")
                ) {
                    *images = true;
                }
                if let Some(t) = p.get("text").and_then(Value::as_str) {
                    out.push_str(t);
                } else if let Value::String(s) = p {
                    out.push_str(s);
                } else if let Some(c) = p.get("content") {
                    collect_text(c, out, images);
                }
            }
        }
        _ => {}
    }
}

/// True when every condition of `m` holds.
pub(crate) fn matches(m: &Match, headers: &HeaderMap, f: Option<&Features>) -> bool {
    if let Some(h) = &m.header {
        let Some(v) = headers.get(h.name.as_str()).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        if !h.values.is_empty()
            && !h
                .values
                .iter()
                .any(|want| want.eq_ignore_ascii_case(v.trim()))
        {
            return false;
        }
    }
    if !m.needs_body() {
        return true;
    }
    let Some(f) = f else { return false };
    let tokens = f.estimated_prompt_tokens();
    m.prompt_tokens_above.is_none_or(|t| tokens > t)
        && m.prompt_tokens_below.is_none_or(|t| tokens < t)
        && m.has_tools.is_none_or(|want| f.has_tools == want)
        && m.has_images.is_none_or(|want| f.has_images == want)
        && m.response_format
            .as_ref()
            .is_none_or(|want| f.response_format.as_ref() == Some(want))
        && m.system_prompt
            .as_ref()
            .is_none_or(|p| p.0.is_match(&f.system_prompt))
}

/// The first matching rule.
pub fn first_match<'a>(
    rules: &'a [Rule],
    headers: &HeaderMap,
    f: Option<&Features>,
) -> Option<&'a Rule> {
    rules.iter().find(|r| matches(&r.when, headers, f))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tollgate_config::{HeaderMatch, Pattern};

    #[test]
    fn features_of_both_apis() {
        let o = json!({"model": "m", "messages": [
            {"role": "system", "content": "You are a legal assistant"},
            {"role": "user", "content": [{"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {"url": "data:"}}]}
        ], "tools": [{"type": "function"}], "response_format": {"type": "json_object"}});
        let f = Features::of(Family::OpenAi, &o);
        assert_eq!(f.system_prompt, "You are a legal assistant");
        assert!(f.has_tools && f.has_images);
        assert_eq!(f.response_format.as_deref(), Some("json_object"));
        assert_eq!(f.prompt_chars, 25 + 4);
        let a = json!({"system": [{"type": "text", "text": "sys"}], "messages": [{"role": "user", "content": "hello"}]});
        let f = Features::of(Family::Anthropic, &a);
        assert_eq!(f.system_prompt, "sys");
        assert!(!f.has_tools && !f.has_images);
        assert_eq!(f.estimated_prompt_tokens(), 2);
    }

    #[test]
    fn all_conditions_must_hold() {
        let mut headers = HeaderMap::new();
        headers.insert("x-tollgate-tier", "Premium".parse().unwrap());
        let f = Features {
            prompt_chars: 40_000,
            has_tools: true,
            system_prompt: "legal".into(),
            ..Default::default()
        };
        let m = Match {
            header: Some(HeaderMatch {
                name: "x-tollgate-tier".into(),
                values: vec!["premium".into()],
            }),
            prompt_tokens_above: Some(4000),
            has_tools: Some(true),
            system_prompt: Some(Pattern(regex::Regex::new("leg").unwrap())),
            ..Default::default()
        };
        assert!(matches(&m, &headers, Some(&f)));
        assert!(!matches(&m, &HeaderMap::new(), Some(&f)), "header missing");
        let short = Features {
            prompt_chars: 100,
            ..f
        };
        assert!(!matches(&m, &headers, Some(&short)), "too short");
        assert!(
            !matches(&m, &headers, None),
            "body conditions need features"
        );
        let header_only = Match {
            header: m.header.clone(),
            ..Default::default()
        };
        assert!(matches(&header_only, &headers, None));
    }
}
