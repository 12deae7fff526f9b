//! Black-box: what a request is charged — the provider's usage, exactly,
//! on both APIs, streamed or not, with or without the app asking for the
//! usage chunk; a tokenizer estimate when usage is missing, a stream is cut
//! or the app leaves.

use std::time::Duration;

use serde_json::json;

use crate::budgets::*;
use crate::harness::*;

#[tokio::test]
async fn usage_is_settled_exactly_on_both_apis_streamed_or_not() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config_with(&mock, ROOMY, ""));
    // The mock counts words: 3 prompt tokens, and the reply
    // "Mock reply from <model>: one two three" is 7.
    let text = "one two three";

    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, false),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let first = remaining(&r);
    r.bytes().await.unwrap();
    settled(&proxy, 1.0).await;
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, false),
        &[],
    )
    .await;
    // The same request reserves the same worst case: the difference is
    // exactly what the first one cost (7 output tokens at $0.001).
    assert!(
        (first - remaining(&r) - 0.007).abs() < 1e-9,
        "{first} then {}",
        remaining(&r)
    );
    r.bytes().await.unwrap();

    // Streamed without asking for usage: the proxy asks, and strips the chunk.
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, true),
        &[],
    )
    .await;
    let datas = sse_datas(r).await;
    assert!(datas.iter().all(|d| d["usage"].is_null()), "{datas:?}");
    // Streamed, asking: the app gets the usage chunk.
    let mut asked = chat("gpt-4o-mini", text, true);
    asked["stream_options"] = json!({"include_usage": true});
    let datas = sse_datas(post(&proxy, "/v1/chat/completions", &asked, &[]).await).await;
    let usage = &datas.last().unwrap()["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(3), Some(7))
    );

    let msgs = |stream| messages("claude-sonnet-4-5", text, stream);
    let r = post(&proxy, "/v1/messages", &msgs(false), &[]).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();
    let r = post(&proxy, "/v1/messages", &msgs(true), &[]).await;
    assert_eq!(r.status(), 200);
    r.bytes().await.unwrap();

    let m = settled(&proxy, 6.0).await;
    assert_eq!(tokens(&m, "gpt-4o-mini", "input", "false"), 12.0);
    assert_eq!(tokens(&m, "gpt-4o-mini", "output", "false"), 28.0);
    assert_eq!(tokens(&m, "claude-sonnet-4-5", "input", "false"), 6.0);
    assert_eq!(tokens(&m, "claude-sonnet-4-5", "output", "false"), 14.0);
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("estimated", "true")]
        ),
        0.0,
        "every figure came from the provider"
    );
    let usd = |model| metric_sum(&m, "tollgate_budget_spend_usd_total", &[("model", model)]);
    assert!(
        (usd("gpt-4o-mini") - 0.028).abs() < 1e-9,
        "{}",
        usd("gpt-4o-mini")
    );
    // 6 input at $0.001 + 14 output at $0.002.
    assert!((usd("claude-sonnet-4-5") - 0.034).abs() < 1e-9);
}

#[tokio::test]
async fn missing_usage_cut_streams_and_departed_apps_are_estimated() {
    let mock = mock().await;
    let proxy = ProxyProc::start(&config_with(&mock, ROOMY, ""));
    let text = "one two three";
    let omit = [("x-mock-omit-usage", "true")];
    for (path, body) in [
        ("/v1/chat/completions", chat("gpt-4o-mini", text, false)),
        ("/v1/chat/completions", chat("gpt-4o-mini", text, true)),
        ("/v1/messages", messages("claude-sonnet-4-5", text, false)),
        ("/v1/messages", messages("claude-sonnet-4-5", text, true)),
    ] {
        let r = post(&proxy, path, &body, &omit).await;
        assert_eq!(r.status(), 200, "{path}");
        r.bytes().await.unwrap();
    }
    let m = settled(&proxy, 4.0).await;
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "settled"), ("estimated", "true")]
        ),
        4.0
    );
    // The tokenizer counts the prompt (with message framing) and the reply
    // actually sent; the mock's word counts are a floor.
    for model in ["gpt-4o-mini", "claude-sonnet-4-5"] {
        let (i, o) = (
            tokens(&m, model, "input", "true"),
            tokens(&m, model, "output", "true"),
        );
        assert!((6.0..=60.0).contains(&i), "{model} input {i}");
        assert!((12.0..=60.0).contains(&o), "{model} output {o}");
    }

    // A stream the provider cuts after two events, and one the app leaves.
    let r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", text, true),
        &[("x-mock-reset-after-chunks", "3")],
    )
    .await;
    r.bytes().await.unwrap();
    let mut r = post(
        &proxy,
        "/v1/chat/completions",
        &chat("gpt-4o-mini", "a long answer please", true),
        &[("x-mock-chunks", "20"), ("x-mock-chunk-interval-ms", "100")],
    )
    .await;
    assert!(r.chunk().await.unwrap().is_some());
    drop(r);
    let m = settled(&proxy, 6.0).await;
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "settled"), ("estimated", "true")]
        ),
        6.0,
        "both ended early and were charged an estimate, once"
    );
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "released")]
        ),
        0.0
    );
    assert!(
        mock.wait_for(Duration::from_secs(5), |m| m.cancelled_streams() >= 1)
            .await
    );
}

#[tokio::test]
async fn an_app_that_leaves_before_the_answer_is_charged_once() {
    let mock = exact_mock(0).await;
    let proxy = ProxyProc::start(&config_with(&mock, ROOMY, ""));
    let gone = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .header("x-mock-latency-ms", "1500")
        .json(&exact(false))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());
    // The provider may bill the prompt of a request it was working on.
    let m = settled(&proxy, 1.0).await;
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "settled"), ("estimated", "true")]
        ),
        1.0
    );
    assert!(tokens(&m, "gpt-4o-mini", "input", "true") > 0.0);
    assert_eq!(tokens(&m, "gpt-4o-mini", "output", "true"), 0.0);
}

#[tokio::test]
async fn failed_requests_release_their_reservation() {
    let mock = exact_mock(0).await;
    let limit = "  limits:\n    - {name: daily, scope: policy, window: day, usd: 0.05}\n";
    let proxy = ProxyProc::start(&config_with(&mock, limit, ""));
    let c = client();
    // A client error from the provider, and retries that run out.
    for (status, tries) in [("400", "1"), ("503", "9")] {
        let r = post_chat(
            &c,
            &proxy,
            &exact(false),
            &[("x-mock-status", status), ("x-mock-fail-first", tries)],
        )
        .await;
        assert_eq!(r.status().as_str(), status);
        assert_eq!(
            header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
            Some("0.040000"),
            "the answer still says where the app stands"
        );
    }
    let m = settled(&proxy, 2.0).await;
    assert_eq!(
        metric_sum(
            &m,
            "tollgate_budget_settlements_total",
            &[("outcome", "released")]
        ),
        2.0
    );
    assert_eq!(spend(&m), 0.0);
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-tollgate-budget-remaining-usd").as_deref(),
        Some("0.040000"),
        "nothing was kept by the failures"
    );
}
