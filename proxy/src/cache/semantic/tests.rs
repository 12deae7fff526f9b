use serde_json::{json, Value};

use super::provider::parse;
use super::*;
use crate::api::{Family, Operation};
use crate::cache::Scope;

fn scope(route: &str, tenant: Option<&'static str>) -> Scope<'static> {
    Scope {
        policy: "p",
        family: Family::OpenAi,
        operation: Operation::ChatCompletions,
        route: Box::leak(route.to_string().into_boxed_str()),
        tenant,
    }
}

fn chat(system: &str, user: &str) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "temperature": 0,
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": [{"type": "text", "text": user}]},
        ],
    })
}

fn prompt(body: &Value) -> Prompt {
    Prompt::of(&scope("chat", None), body).expect("has text")
}

#[test]
fn texts_are_system_then_messages() {
    let p = prompt(&chat("Be brief.", "What is a toll road?"));
    assert_eq!(p.texts, ["Be brief.", "What is a toll road?"]);
    assert_eq!(p.query(), "What is a toll road?");
    assert_eq!(
        p.context().as_deref(),
        Some("Be brief.\n\nWhat is a toll road?")
    );
    let anthropic = json!({
        "model": "claude",
        "system": [{"type": "text", "text": "Be brief."}],
        "messages": [{"role": "user", "content": "Hi there"}],
    });
    let p = Prompt::of(&scope("chat", None), &anthropic).unwrap();
    assert_eq!(p.texts, ["Be brief.", "Hi there"]);
    let single = json!({"messages": [{"role": "user", "content": "Hi"}]});
    let p = Prompt::of(&scope("chat", None), &single).unwrap();
    assert_eq!(p.context(), None);
}

#[test]
fn scope_ignores_the_wording_only() {
    let base = prompt(&chat("Be brief.", "What is a toll road?")).scope;
    assert_eq!(base, prompt(&chat("Be short.", "Explain toll roads")).scope);
    // Fields that never change the answer are ignored, like the exact key.
    let mut b = chat("Be brief.", "x");
    b["stream"] = json!(true);
    b["user"] = json!("u-1");
    assert_eq!(base, prompt(&b).scope);
    let changed = |edit: &dyn Fn(&mut Value)| {
        let mut b = chat("Be brief.", "What is a toll road?");
        edit(&mut b);
        prompt(&b).scope
    };
    for (what, edit) in [
        (
            "model",
            &(|b: &mut Value| b["model"] = json!("gpt-4o")) as &dyn Fn(&mut Value),
        ),
        ("temperature", &|b: &mut Value| {
            b["temperature"] = json!(0.5)
        }),
        ("max_tokens", &|b: &mut Value| b["max_tokens"] = json!(5)),
        ("tools", &|b: &mut Value| {
            b["tools"] = json!([{"type": "function", "function": {"name": "f"}}])
        }),
        ("role", &|b: &mut Value| {
            b["messages"][0]["role"] = json!("developer")
        }),
        ("image", &|b: &mut Value| {
            b["messages"][1]["content"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "image_url", "image_url": {"url": "https://x/y.png"}}))
        }),
        ("another turn", &|b: &mut Value| {
            b["messages"]
                .as_array_mut()
                .unwrap()
                .push(json!({"role": "assistant", "content": "ok"}))
        }),
    ] {
        assert_ne!(base, changed(edit), "{what} must change the scope");
    }
    let body = chat("Be brief.", "What is a toll road?");
    assert_ne!(
        base,
        Prompt::of(&scope("chat", Some("t1")), &body).unwrap().scope
    );
    assert_ne!(
        base,
        Prompt::of(&scope("other", None), &body).unwrap().scope
    );
}

#[test]
fn no_text_no_prompt() {
    let body = json!({"messages": [{"role": "user", "content": "  "}]});
    assert!(Prompt::of(&scope("chat", None), &body).is_none());
    assert!(Prompt::of(&scope("chat", None), &json!([1])).is_none());
}

#[test]
fn provider_answers_are_ordered_and_normalized() {
    let body = br#"{"data":[{"index":1,"embedding":[0,2]},{"index":0,"embedding":[3,4]}]}"#;
    let v = parse(body, 2).unwrap();
    assert_eq!(v, vec![vec![0.6, 0.8], vec![0.0, 1.0]]);
    assert!(matches!(parse(body, 3), Err(EmbedError::Malformed(_))));
    let zero = br#"{"data":[{"index":0,"embedding":[0,0]}]}"#;
    assert!(matches!(parse(zero, 1), Err(EmbedError::Malformed(_))));
    let ragged = br#"{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1,0]}]}"#;
    assert!(matches!(parse(ragged, 2), Err(EmbedError::Malformed(_))));
    assert!(parse(b"not json", 1).is_err());
}
