//! When the mock answers with a tool call, and with which arguments.
//!
//! A tool call is made when the request offers tools and either the
//! `x-mock-tool-call: NAME` switch is set or `tool_choice` forces one
//! (OpenAI `{"type":"function",…}` / `"required"`, Anthropic
//! `{"type":"tool",…}` / `{"type":"any"}`; "required"/"any" pick the first
//! tool). The arguments are built from the tool's JSON schema: every property
//! gets a fixed value for its type, so they are deterministic too.

use serde_json::{Map, Value};

use super::tokens::words;

#[derive(Debug, PartialEq)]
pub(crate) struct ToolCall {
    pub name: String,
    pub input: Value,
    /// `input` as compact JSON (OpenAI's `arguments`, Anthropic's streamed `partial_json`).
    pub arguments: String,
}

impl ToolCall {
    /// The tool call this request should get, if any.
    pub(super) fn choose(
        tools: &[Value],
        tool_choice: Option<&Value>,
        switch: Option<&str>,
    ) -> Option<Self> {
        if tools.is_empty() {
            return None;
        }
        let name = match switch {
            Some(n) => n.to_owned(),
            None => forced_name(tools, tool_choice?)?,
        };
        let input = tools
            .iter()
            .find(|t| tool_name(t) == Some(name.as_str()))
            .and_then(tool_schema)
            .map_or_else(|| Value::Object(Map::new()), example);
        let arguments = input.to_string();
        Some(ToolCall {
            name,
            input,
            arguments,
        })
    }

    pub(super) fn tokens(&self) -> u64 {
        words(&self.name) + words(&self.arguments)
    }
}

fn forced_name(tools: &[Value], choice: &Value) -> Option<String> {
    let first = || tool_name(tools.first()?).map(str::to_owned);
    match choice {
        Value::String(s) if s == "required" || s == "any" => first(),
        Value::Object(o) => match o.get("type").and_then(Value::as_str)? {
            "function" => Some(o.get("function")?.get("name")?.as_str()?.to_owned()),
            "tool" => Some(o.get("name")?.as_str()?.to_owned()),
            "any" => first(),
            _ => None,
        },
        _ => None,
    }
}

/// OpenAI nests the definition under `function`; Anthropic does not.
fn tool_name(tool: &Value) -> Option<&str> {
    tool.get("function")
        .and_then(|f| f.get("name"))
        .or_else(|| tool.get("name"))
        .and_then(Value::as_str)
}

fn tool_schema(tool: &Value) -> Option<&Value> {
    tool.get("function")
        .and_then(|f| f.get("parameters"))
        .or_else(|| tool.get("input_schema"))
}

/// A fixed value that fits a JSON schema.
fn example(schema: &Value) -> Value {
    if let Some(first) = schema.get("enum").and_then(|e| e.get(0)) {
        return first.clone();
    }
    let ty = schema.get("type").and_then(|t| match t {
        Value::Array(types) => types.first().and_then(Value::as_str),
        other => other.as_str(),
    });
    match ty {
        Some("string") => Value::from("mock"),
        Some("integer") => Value::from(1),
        Some("number") => Value::from(1.5),
        Some("boolean") => Value::Bool(true),
        Some("array") => Value::Array(Vec::new()),
        Some("null") => Value::Null,
        _ => {
            let props = schema.get("properties").and_then(Value::as_object);
            let obj = props
                .into_iter()
                .flatten()
                .map(|(k, s)| (k.clone(), example(s)))
                .collect();
            Value::Object(obj)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn openai_tools() -> Vec<Value> {
        vec![
            json!({"type": "function", "function": {"name": "get_weather", "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                               "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city"]}}}),
            json!({"type": "function", "function": {"name": "other"}}),
        ]
    }

    #[test]
    fn switch_picks_the_tool_and_fills_its_schema() {
        let call = ToolCall::choose(&openai_tools(), None, Some("get_weather")).unwrap();
        assert_eq!(call.name, "get_weather");
        assert_eq!(call.arguments, r#"{"city":"mock","days":1,"unit":"c"}"#);
        assert_eq!(call.tokens(), 2);
    }

    #[test]
    fn no_tools_no_call() {
        assert_eq!(ToolCall::choose(&[], None, Some("x")), None);
        assert_eq!(ToolCall::choose(&openai_tools(), None, None), None);
        assert_eq!(
            ToolCall::choose(&openai_tools(), Some(&json!("auto")), None),
            None
        );
    }

    #[test]
    fn tool_choice_forces_a_call() {
        let forced = json!({"type": "function", "function": {"name": "other"}});
        let call = ToolCall::choose(&openai_tools(), Some(&forced), None).unwrap();
        assert_eq!(
            (call.name.as_str(), call.arguments.as_str()),
            ("other", "{}")
        );
        let call = ToolCall::choose(&openai_tools(), Some(&json!("required")), None).unwrap();
        assert_eq!(call.name, "get_weather");

        let anthropic = vec![json!({"name": "lookup", "input_schema": {
            "type": "object", "properties": {"q": {"type": "string"}}}})];
        let call = ToolCall::choose(&anthropic, Some(&json!({"type": "any"})), None).unwrap();
        assert_eq!(call.input, json!({"q": "mock"}));
        let call = ToolCall::choose(
            &anthropic,
            Some(&json!({"type": "tool", "name": "lookup"})),
            None,
        );
        assert_eq!(call.unwrap().name, "lookup");
    }
}
