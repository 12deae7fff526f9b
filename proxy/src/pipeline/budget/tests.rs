//! What a request's reservation turns into, and what admission reserves.

use std::time::Duration;

use serde_json::json;

use super::output::MAX_TEXT;
use super::*;
use crate::routing::Table;

fn served() -> Ending {
    Ending {
        served_model: Some("gpt-4o-mini".into()),
        ..Ending::default()
    }
}

fn usage(input: u64, output: u64) -> Usage {
    Usage {
        input,
        output,
        ..Usage::default()
    }
}

#[test]
fn final_usage_is_settled_exactly() {
    let end = Ending {
        answered: true,
        usage: Some(usage(12, 7)),
        usage_complete: true,
        ..served()
    };
    let s = decide(&end, 99, || panic!("no estimate needed"));
    assert_eq!(
        s,
        Settlement::Settle {
            usage: usage(12, 7),
            estimated: false
        }
    );
}

#[test]
fn missing_or_partial_usage_is_estimated() {
    let none = Ending {
        answered: true,
        ..served()
    };
    assert_eq!(
        decide(&none, 20, || 5),
        Settlement::Settle {
            usage: usage(20, 5),
            estimated: true
        }
    );
    // A cut Anthropic stream: message_start counted the input exactly.
    let cut = Ending {
        answered: true,
        usage: Some(usage(31, 1)),
        usage_complete: false,
        ..served()
    };
    assert_eq!(
        decide(&cut, 20, || 9),
        Settlement::Settle {
            usage: usage(31, 9),
            estimated: true
        }
    );
}

#[test]
fn failures_release_and_abandoned_requests_pay_their_prompt() {
    assert_eq!(decide(&Ending::default(), 20, || 0), Settlement::Release);
    let refused_upstream = Ending {
        usage: None,
        ..served()
    };
    assert_eq!(decide(&refused_upstream, 20, || 0), Settlement::Release);
    let left = Ending {
        awaiting: true,
        ..served()
    };
    assert_eq!(
        decide(&left, 20, || 0),
        Settlement::Settle {
            usage: usage(20, 0),
            estimated: true
        }
    );
}

fn parse(json: &[u8]) -> serde_json::Value {
    serde_json::from_slice(json).unwrap()
}

#[test]
fn output_text_of_streams_and_bodies() {
    let mut t = OutputText::default();
    t.push_event(
        Family::OpenAi,
        &parse(br#"{"choices":[{"delta":{"content":"Hello there"}}]}"#),
    );
    t.push_event(
        Family::OpenAi,
        &parse(
            br#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{\"a\":1}"}}]}}]}"#,
        ),
    );
    t.push_event(
        Family::OpenAi,
        &parse(br#"{"choices":[],"usage":{"prompt_tokens":1}}"#),
    );
    assert_eq!(t.text, "Hello there{\"a\":1}");
    let mut a = OutputText::default();
    a.push_event(
        Family::Anthropic,
        &parse(br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hi"}}"#),
    );
    assert_eq!(a.text, "Hi");
    let body = OutputText::of_response(
        Family::Anthropic,
        &parse(br#"{"content":[{"type":"text","text":"one two"},{"type":"tool_use","input":{"x":1}}]}"#),
    );
    assert_eq!(body.text, "one two{\"x\":1}");
    assert!(body.tokens("claude-sonnet-4-5") >= 3);
    let mut big = OutputText::default();
    big.push(&"a".repeat(MAX_TEXT));
    big.push("bcdefgh");
    assert_eq!(big.beyond_chars, 7);
}

fn config() -> tollgate_config::Config {
    tollgate_config::from_yaml_str(
        r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - {name: oai, type: openai, passthrough: true, models: [gpt-4o-mini, gpt-4o]}
routing:
  routes:
    - name: capped
      shaping: {defaultMaxTokens: 100, maxTokens: 500}
      targets: [{provider: oai, model: gpt-4o-mini}, {provider: oai, model: gpt-4o, shaping: {maxTokens: 50}}]
    - name: open
      targets: [{provider: oai, model: gpt-4o-mini}]
"#,
    )
    .unwrap()
}

#[test]
fn reserved_output_follows_shaping_and_n() {
    let c = config();
    let capped = Table::plan_route(&c, &c.routing.routes[0], None);
    let open = Table::plan_route(&c, &c.routing.routes[1], None);
    let chat = Operation::ChatCompletions;
    assert_eq!(max_output(chat, &json!({}), &capped), Some(100));
    assert_eq!(
        max_output(chat, &json!({"max_tokens": 9000}), &capped),
        Some(500)
    );
    assert_eq!(
        max_output(chat, &json!({"max_completion_tokens": 40, "n": 3}), &capped),
        Some(120)
    );
    assert_eq!(max_output(chat, &json!({}), &open), None);
    assert_eq!(max_output(chat, &json!({"max_tokens": 7}), &open), Some(7));
    assert_eq!(
        max_output(Operation::Embeddings, &json!({}), &open),
        Some(0)
    );
}

#[tokio::test]
async fn settle_tasks_are_awaited() {
    let tasks = SettleTasks::default();
    assert!(tasks.wait_idle(Duration::from_millis(10)).await);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tasks.spawn(async move {
        let _ = rx.await;
    });
    assert_eq!(tasks.running(), 1);
    assert!(!tasks.wait_idle(Duration::from_millis(20)).await);
    tx.send(()).unwrap();
    assert!(tasks.wait_idle(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn long_texts_are_counted_off_the_request_workers() {
    let words = "budget ".repeat(10_000);
    let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": words}]});
    let raw = Bytes::from(serde_json::to_vec(&body).unwrap());
    assert!(raw.len() > BLOCKING_TOKENIZE);
    let mut payload = Payload::new(raw);
    payload.json().unwrap();
    let n = prompt_tokens(Family::OpenAi, &mut payload).await;
    assert_eq!(
        n,
        BudgetEngine::estimate_prompt_tokens(Family::OpenAi, &body)
    );
    assert_eq!(payload.parsed(), Some(&body), "the parsed request is kept");

    let mut out = OutputText::default();
    out.push(&words);
    assert_eq!(out.count("gpt-4o-mini").await, out.tokens("gpt-4o-mini"));
}

#[test]
fn the_prompt_is_counted_exactly_when_the_settlement_uses_it() {
    let mut ends = Vec::new();
    for served_model in [None, Some("gpt-4o-mini".to_string())] {
        for answered in [false, true] {
            for awaiting in [false, true] {
                for usage in [None, Some(usage(0, 3)), Some(usage(31, 1))] {
                    for usage_complete in [false, true] {
                        ends.push(Ending {
                            served_model: served_model.clone(),
                            usage,
                            usage_complete,
                            answered,
                            awaiting,
                            text: None,
                            phase: Default::default(),
                        });
                    }
                }
            }
        }
    }
    let mut counted = 0;
    for end in &ends {
        let (low, high) = (decide(end, 0, || 2), decide(end, 1_000, || 2));
        assert_eq!(
            needs_prompt(end),
            low != high,
            "{end:?}: {low:?} vs {high:?}"
        );
        counted += usize::from(needs_prompt(end));
    }
    assert!(counted >= 3, "some endings do charge the prompt estimate");
}

#[tokio::test]
async fn a_deferred_prompt_is_counted_from_the_body() {
    let body = json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]});
    let raw = Bytes::from(serde_json::to_vec(&body).unwrap());
    let deferred = Prompt::Deferred {
        family: Family::OpenAi,
        raw,
    };
    assert_eq!(
        deferred.tokens().await,
        BudgetEngine::estimate_prompt_tokens(Family::OpenAi, &body)
    );
    let garbage = Prompt::Deferred {
        family: Family::OpenAi,
        raw: Bytes::from_static(b"{not json"),
    };
    assert_eq!(garbage.tokens().await, 0);
}
