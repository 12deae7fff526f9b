//! Tool definitions and tool choice, both ways.

use serde_json::{json, Map, Value};

use super::values::{object, string};
use super::{Result, TranslateError};

pub(super) fn openai_tools(tools: &Value) -> Result<Value> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::invalid("tools", "must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.get("type").and_then(Value::as_str) != Some("function") {
                return Err(TranslateError::unsupported(
                    format!("tools[{i}].type"),
                    "only function tools can be routed to an Anthropic model",
                ));
            }
            let f = t.get("function").unwrap_or(&Value::Null);
            let name = f.get("name").and_then(Value::as_str).ok_or_else(|| {
                TranslateError::invalid(format!("tools[{i}].function.name"), "is required")
            })?;
            let mut tool = Map::new();
            tool.insert("name".into(), name.into());
            if let Some(d) = f.get("description").filter(|d| !d.is_null()) {
                let field = format!("tools[{i}].function.description");
                tool.insert("description".into(), string(d, &field)?);
            }
            let schema = match f.get("parameters").filter(|p| !p.is_null()) {
                Some(p) => object(p, &format!("tools[{i}].function.parameters"))?,
                None => json!({"type": "object", "properties": {}}),
            };
            tool.insert("input_schema".into(), schema);
            Ok(Value::Object(tool))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}

pub(super) fn tool_choice_to_anthropic(obj: &Map<String, Value>) -> Result<Option<Value>> {
    let choice = obj.get("tool_choice").filter(|v| !v.is_null());
    let serial = obj.get("parallel_tool_calls").and_then(Value::as_bool) == Some(false);
    let has_tools = obj
        .get("tools")
        .and_then(Value::as_array)
        .is_some_and(|t| !t.is_empty());
    let mut out = match choice {
        None if serial && has_tools => json!({"type": "auto"}),
        None => return Ok(None),
        Some(Value::String(s)) => match s.as_str() {
            "auto" => json!({"type": "auto"}),
            "required" => json!({"type": "any"}),
            "none" => json!({"type": "none"}),
            other => {
                return Err(TranslateError::invalid(
                    "tool_choice",
                    format!("unknown value '{other}'"),
                ))
            }
        },
        Some(v) => {
            let name = v
                .pointer("/function/name")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    TranslateError::invalid("tool_choice.function.name", "is required")
                })?;
            json!({"type": "tool", "name": name})
        }
    };
    if serial && out["type"] != "none" {
        out["disable_parallel_tool_use"] = Value::Bool(true);
    }
    Ok(Some(out))
}

pub(super) fn anthropic_tools(tools: &Value) -> Result<Value> {
    let tools = tools
        .as_array()
        .ok_or_else(|| TranslateError::invalid("tools", "must be an array"))?;
    tools
        .iter()
        .enumerate()
        .map(|(i, t)| {
            // Client tools have no type (or "custom"); server tools are typed
            // (web_search_…, bash_…) and run at Anthropic.
            match t.get("type").and_then(Value::as_str) {
                None | Some("custom") => {}
                Some(other) => {
                    return Err(TranslateError::unsupported(
                        format!("tools[{i}].type"),
                        format!(
                            "Anthropic server tool '{other}' cannot be routed to an OpenAI model"
                        ),
                    ))
                }
            }
            let name = t.get("name").and_then(Value::as_str).ok_or_else(|| {
                TranslateError::invalid(format!("tools[{i}].name"), "is required")
            })?;
            let mut f = Map::new();
            f.insert("name".into(), name.into());
            if let Some(d) = t.get("description").filter(|d| !d.is_null()) {
                f.insert(
                    "description".into(),
                    string(d, &format!("tools[{i}].description"))?,
                );
            }
            let schema = match t.get("input_schema").filter(|s| !s.is_null()) {
                Some(s) => object(s, &format!("tools[{i}].input_schema"))?,
                None => json!({"type": "object", "properties": {}}),
            };
            f.insert("parameters".into(), schema);
            Ok(json!({"type": "function", "function": Value::Object(f)}))
        })
        .collect::<Result<Vec<_>>>()
        .map(Value::Array)
}
