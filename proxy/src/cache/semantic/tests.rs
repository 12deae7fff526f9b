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

/// The local embedder through the semantic cache, as a lookup uses it
/// (needs the model: see `local/tests.rs`).
#[cfg(feature = "local-embeddings")]
mod with_the_local_model {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::upstream::Client;

    fn config(dir: &str) -> tollgate_config::Config {
        tollgate_config::from_yaml_str(&format!(
            "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nproviders:\n  - {{name: openai, type: openai, passthrough: true, models: [m]}}\nrouting:\n  routes:\n    - {{name: chat, targets: [{{provider: openai, model: m}}]}}\ncache:\n  semantic:\n    embedders: [{{name: minilm, type: local, path: '{dir}'}}]\n    threshold: 0.8\n  routes:\n    - {{name: chat, semantic: {{}}}}\n"
        ))
        .unwrap()
    }

    #[tokio::test]
    async fn paraphrases_hit_and_changed_numbers_do_not() {
        let Ok(dir) = std::env::var("TOLLGATE_MINILM_DIR") else {
            assert!(std::env::var("TOLLGATE_REQUIRE_MODEL").is_err());
            return;
        };
        let cfg = config(&dir);
        let metrics = Arc::new(CacheMetrics::new());
        let sc = SemanticCache::new(&cfg.cache.semantic, None, metrics.clone())
            .await
            .unwrap();
        let client = Client::new(&cfg.upstream).unwrap();
        let up = Upstream {
            providers: &cfg.providers,
            credentials: &[None],
            client: &client,
        };
        let route = *cfg.cache.semantic_for(Some("chat")).unwrap();
        let id = HeaderValue::from_static("t");
        let probe = |text: &'static str| {
            let (sc, up, route, cfg, id) = (&sc, &up, &route, &cfg, &id);
            async move {
                let p = prompt(&chat("Answer briefly.", text));
                sc.probe(up, &cfg.cache.semantic, "chat", route, &p, id)
                    .await
                    .unwrap()
            }
        };
        let stored = probe("How do I reverse a list in Python?").await;
        assert!(sc
            .remember(stored, Key([1; 32]), Duration::from_secs(60))
            .is_none());
        let found = sc.find(&probe("What's the way to reverse a Python list?").await);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].key, Key([1; 32]));
        assert!(found[0].similarity >= 0.8, "{}", found[0].similarity);
        assert!(sc
            .find(&probe("How do I reverse a list in Python 2?").await)
            .is_empty());
        assert_eq!(
            metrics.guard_refusals.with_label_values(&["numbers"]).get(),
            1
        );
        // A reload with the same folder keeps the loaded model and the index.
        let again = SemanticCache::new(&cfg.cache.semantic, Some(&sc), metrics)
            .await
            .unwrap();
        match (&sc.embedders[0], &again.embedders[0]) {
            (Embedder::Local(a), Embedder::Local(b)) => assert!(Arc::ptr_eq(a, b)),
            _ => panic!("local embedders expected"),
        }
        assert!(Arc::ptr_eq(sc.index(), again.index()));
    }
}
