use std::time::Duration;

use super::*;
use http_body_util::BodyExt;

async fn body_json(resp: Response<ResponseBody>) -> serde_json::Value {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn openai_shape() {
    let e = ProxyError::from(UnknownModel::not_served("gpt-9", Vec::new()));
    let resp = e.to_response(Family::OpenAi, "req-1");
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["x-request-id"], "req-1");
    let v = body_json(resp).await;
    assert_eq!(v["error"]["code"], "model_not_found");
    assert_eq!(v["error"]["type"], "invalid_request_error");
    assert_eq!(v["error"]["param"], "model");
}

#[tokio::test]
async fn budget_refusals_in_both_shapes() {
    let e = ProxyError::Budget {
        refusal: Refusal::BudgetExceeded {
            limit: "team-daily".into(),
            retry_after: Duration::from_millis(2500),
        },
        headers: vec![(
            header::HeaderName::from_static("x-tollgate-budget-remaining-usd"),
            HeaderValue::from_static("0.000000"),
        )],
    };
    let resp = e.to_response(Family::OpenAi, "r");
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    assert_eq!(
        resp.headers()["x-tollgate-budget-remaining-usd"],
        "0.000000"
    );
    assert_eq!(resp.headers()["x-tollgate-error"], "budget_exceeded");
    let v = body_json(resp).await;
    assert_eq!(v["error"]["code"], "budget_exceeded");
    assert_eq!(v["error"]["type"], "insufficient_quota");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("team-daily"));

    let e = ProxyError::Budget {
        refusal: Refusal::RateLimited {
            limit: "rpm".into(),
            retry_after: Duration::from_millis(10),
        },
        headers: Vec::new(),
    };
    let resp = e.to_response(Family::Anthropic, "r");
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v = body_json(resp).await;
    assert_eq!(v["error"]["type"], "rate_limit_error");

    let e = ProxyError::Budget {
        refusal: Refusal::StoreUnavailable {
            reason: "timeout".into(),
        },
        headers: Vec::new(),
    };
    let resp = e.to_response(Family::OpenAi, "r");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(
        body_json(resp).await["error"]["code"],
        "budget_store_unavailable"
    );
}

/// Each layer's error keeps the status, label and code the app saw
/// when the layers returned `ProxyError` themselves.
#[test]
fn layer_errors_answer_as_before() {
    let provider = || "p".to_string();
    let cases: Vec<(ProxyError, u16, &str, Option<&str>)> = vec![
        (
            ParseError::Malformed("x".into()).into(),
            400,
            "malformed_json",
            Some("invalid_json"),
        ),
        (
            ParseError::Field("x".into()).into(),
            400,
            "invalid_field",
            None,
        ),
        (
            TranslateError::Operation {
                operation: "embeddings",
            }
            .into(),
            400,
            "invalid_field",
            None,
        ),
        (
            UnknownModel::not_served("m", Vec::new()).into(),
            404,
            "unknown_model",
            Some("model_not_found"),
        ),
        (
            UpstreamError::CredentialsUnavailable {
                provider: provider(),
                reason: "r".into(),
            }
            .into(),
            503,
            "credentials_unavailable",
            Some("credentials_unavailable"),
        ),
        (
            UpstreamError::Connect {
                provider: provider(),
                reason: "r".into(),
            }
            .into(),
            502,
            "upstream_connect",
            Some("upstream_unreachable"),
        ),
        (
            UpstreamError::Protocol {
                provider: provider(),
                reason: "r".into(),
            }
            .into(),
            502,
            "upstream_protocol",
            Some("upstream_invalid_response"),
        ),
        (
            UpstreamError::Timeout {
                provider: provider(),
                timeout: Duration::from_secs(2),
            }
            .into(),
            504,
            "upstream_timeout",
            Some("upstream_timeout"),
        ),
        (
            UpstreamError::Uri("u".into()).into(),
            400,
            "invalid_field",
            None,
        ),
        (
            PiiError::Guard { rules: vec!["r"] }.into(),
            400,
            "prompt_blocked",
            Some("prompt_blocked"),
        ),
        (
            PiiError::Blocked {
                types: vec!["us_ssn".into()],
            }
            .into(),
            400,
            "pii_blocked",
            Some("pii_blocked"),
        ),
    ];
    for (e, status, label, code) in cases {
        assert_eq!(e.status().as_u16(), status, "{e}");
        assert_eq!(e.metric_label(), label, "{e}");
        assert_eq!(e.openai_code(), code, "{e}");
    }
    let e = ProxyError::from(ParseError::Field("`stream`: bad".into()));
    assert_eq!(e.to_string(), "invalid request: `stream`: bad");
    let e = ProxyError::from(TranslateError::Operation {
        operation: "embeddings",
    });
    assert_eq!(
        e.to_string(),
        "invalid request: embeddings requests cannot be sent to a provider of the other API; only chat completions and messages are translated"
    );
    let e = ProxyError::from(UpstreamError::CredentialsUnavailable {
        provider: provider(),
        reason: "r".into(),
    });
    assert_eq!(e.retry_after(), Some(5));
}

#[tokio::test]
async fn anthropic_shape_and_retry_after() {
    let resp = ProxyError::Overloaded { limit: 4 }.to_response(Family::Anthropic, "r");
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let v = body_json(resp).await;
    assert_eq!(v["type"], "error");
    assert_eq!(v["error"]["type"], "overloaded_error");
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("4 concurrent"));
}

#[test]
fn errors_retrying_cannot_fix_tell_the_sdks() {
    let should_retry = |e: &ProxyError| {
        e.to_response(Family::OpenAi, "r")
            .headers()
            .get(SHOULD_RETRY)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let budget = |retry_after: Duration| ProxyError::Budget {
        refusal: Refusal::BudgetExceeded {
            limit: "monthly".into(),
            retry_after,
        },
        headers: Vec::new(),
    };
    let rate = |retry_after: Duration| ProxyError::Budget {
        refusal: Refusal::RateLimited {
            limit: "rpm".into(),
            retry_after,
        },
        headers: Vec::new(),
    };
    let never = [
        budget(Duration::from_secs(86_400)),
        rate(Duration::from_secs(61)),
        ProxyError::from(UnknownModel::not_served("gpt-9", Vec::new())),
        ProxyError::MissingModel,
        ProxyError::Pii(PiiError::Blocked {
            types: vec!["credit_card".into()],
        }),
        ProxyError::Pii(PiiError::Guard {
            rules: vec!["ignore_previous"],
        }),
        ProxyError::Budget {
            refusal: Refusal::UnknownPrice { model: "m".into() },
            headers: Vec::new(),
        },
    ];
    for e in &never {
        assert_eq!(should_retry(e).as_deref(), Some("false"), "{e}");
    }
    let worth_it = [
        budget(Duration::from_secs(30)),
        rate(Duration::from_millis(1500)),
        ProxyError::Overloaded { limit: 4 },
        ProxyError::AllTargetsEjected { route: "r".into() },
        ProxyError::Budget {
            refusal: Refusal::StoreUnavailable {
                reason: "timeout".into(),
            },
            headers: Vec::new(),
        },
    ];
    for e in &worth_it {
        assert_eq!(should_retry(e), None, "{e}");
    }
    // The exact wait, which the SDKs read before `Retry-After`.
    let resp = rate(Duration::from_millis(1500)).to_response(Family::Anthropic, "r");
    assert_eq!(resp.headers()["retry-after-ms"], "1500");
    assert_eq!(resp.headers()["retry-after"], "2");
}
