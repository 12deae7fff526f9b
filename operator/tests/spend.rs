//! Status' spend against a real `redis-server`: the proxy's own Redis store
//! settles known usage, and the operator's reader returns exactly it, per
//! budget, in the sidecars' windows. Skipped, with a message, only when
//! `redis-server` is absent and `TOLLGATE_REQUIRE_REDIS` is unset.

use std::time::{Duration, Instant};

use serde_json::json;
use tollgate_operator::crd::LlmPolicySpec;
use tollgate_operator::reconcile::spend::{read, summarize, UNKNOWN};
use tollgate_operator::render::render;
use tollgate_proxy::api::usage::Usage;
use tollgate_proxy::budget::{AdmitRequest, BudgetEngine, Identity, WindowSpend};

use tollgate_spend::RedisSecrets;
use tollgate_tests::redis::Redis;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A policy whose budgets count in the Redis at `port`: one budget per
/// single-valued scope and window kind, and one per header value.
fn spec(port: u16) -> LlmPolicySpec {
    serde_json::from_value(json!({
        "podSelector": {},
        "providers": [{"name": "openai", "type": "openai", "passthrough": true, "models": ["gpt-4o-mini"]}],
        "budgets": {
            "timeZone": "Asia/Kolkata",
            "store": {"type": "redis", "redis": {"url": format!("redis://127.0.0.1:{port}/0"), "keyPrefix": "spendtest"}},
            "pricing": {"models": {"gpt-4o-mini": {"input": 0.15, "output": 0.6}}},
            "limits": [
                {"name": "daily", "scope": "policy", "window": "day", "usd": 100},
                {"name": "hourly-tokens", "scope": "namespace", "window": "hour", "tokens": 10_000_000},
                {"name": "rolling", "scope": "workload", "window": "rolling", "rollingWindow": "90m", "usd": 2.5, "tokens": 5_000_000},
                {"name": "per-team", "scope": "header", "header": "x-team", "window": "hour", "tokens": 100_000_000}
            ]
        }
    }))
    .unwrap()
}

async fn spend(engine: &BudgetEngine, input: u64, output: u64) {
    let headers = http::HeaderMap::new();
    let a = engine
        .admit(&AdmitRequest {
            headers: &headers,
            requested_model: "gpt-4o-mini",
            models: &[],
            prompt_tokens: input,
            max_output_tokens: Some(output),
        })
        .await
        .expect("admitted");
    assert!(a.is_reserved(), "the Redis store answered");
    let usage = Usage {
        input,
        output,
        ..Usage::default()
    };
    a.settle("gpt-4o-mini", &usage, false).await;
}

#[tokio::test]
async fn reads_what_the_proxys_redis_store_settled() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let rendered = render("team-a", "chat", &spec(redis.port)).unwrap();
    let config = &rendered.config;
    let engine = BudgetEngine::new(&config.budgets, &Identity::of(config), None)
        .await
        .unwrap();
    // $0.15 + $0.30, then $0.03 + $0.06: $0.54 and 1,800,000 tokens.
    spend(&engine, 1_000_000, 500_000).await;
    spend(&engine, 200_000, 100_000).await;
    let usd = 540_000_000;
    let tokens = 1_800_000;

    let got = read(config, &RedisSecrets::default()).await.unwrap();
    assert_eq!(
        got,
        vec![
            Some(WindowSpend { usd, tokens: 0 }),
            Some(WindowSpend { usd: 0, tokens }),
            Some(WindowSpend { usd, tokens }),
            None,
        ]
    );

    let (summary, budgets) = summarize(&config.budgets, Some(&got));
    assert_eq!(summary.as_deref(), Some("$0.54/$100 day"));
    assert_eq!(budgets[0].spent_usd, Some(0.54));
    assert_eq!(budgets[0].spent_tokens, None);
    assert_eq!(budgets[1].spent_tokens, Some(tokens));
    assert_eq!(budgets[2].limit_usd, Some(2.5));
    assert_eq!(
        (budgets[2].spent_usd, budgets[2].spent_tokens),
        (Some(0.54), Some(tokens))
    );
    assert_eq!(budgets[3].name, "per-team");
    assert_eq!(
        (budgets[3].spent_tokens, budgets[3].limit_tokens),
        (None, Some(100_000_000))
    );
}

#[tokio::test]
async fn a_dead_redis_is_an_error_quickly_and_shows_unknown() {
    let rendered = render("team-a", "chat", &spec(free_port())).unwrap();
    let started = Instant::now();
    let err = read(&rendered.config, &RedisSecrets::default())
        .await
        .expect_err("nothing listens");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().starts_with("redis: "), "{err}");
    let (summary, budgets) = summarize(&rendered.config.budgets, None);
    assert_eq!(summary.as_deref(), Some(UNKNOWN));
    assert_eq!(budgets.len(), 4);
    assert!(budgets
        .iter()
        .all(|b| b.spent_usd.is_none() && b.spent_tokens.is_none()));
}

/// Over TLS as an ACL user: the operator reads, with the CA, client
/// certificate and password it took from the policy's Secrets, what the
/// proxy's store (reading the same as files) settled; without the client
/// certificate the server refuses it, and the error says so.
#[tokio::test]
async fn reads_over_tls_as_an_acl_user() {
    use tollgate_spend::redis_auth::ClientPem;
    let pki = tollgate_tests::pki::Pki::generate();
    let acl = [
        "--user", "default", "off", "--user", "tollgate", "on", ">pw-1", "~*", "&*", "+@all",
    ];
    let Some(redis) = Redis::start_tls(&pki, &acl).await else {
        return;
    };
    let key = |k: &str| json!({"name": "redis-tls", "key": k});
    let mut spec = spec(redis.port);
    spec.budgets.as_mut().unwrap().store = Some(
        serde_json::from_value(json!({"type": "redis", "redis": {
            "url": redis.url(), "keyPrefix": "spendtls", "username": "tollgate",
            "passwordSecretRef": key("password"),
            "tls": {"caSecretRef": key("ca.crt"), "certSecretRef": key("tls.crt"), "keySecretRef": key("tls.key")}}}))
        .unwrap(),
    );
    let rendered = render("team-a", "chat", &spec).unwrap();
    // The sidecar reads the Secrets' keys as files; here they are the PKI's.
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, "pw-1\n").unwrap();
    let mut budgets = rendered.config.budgets.clone();
    let tollgate_config::BudgetStore::Redis(store) = &mut budgets.store else {
        panic!("a redis store")
    };
    store.password_file = Some(pw);
    store.tls = Some(Box::new(tollgate_config::RedisTls {
        ca_file: Some(pki.ca.clone()),
        client: Some(tollgate_config::ClientCertFiles {
            cert_file: pki.client_cert.clone(),
            key_file: pki.client_key.clone(),
        }),
    }));
    let engine = BudgetEngine::new(&budgets, &Identity::of(&rendered.config), None)
        .await
        .unwrap();
    spend(&engine, 1_000_000, 500_000).await;

    let read_file = |p: &std::path::Path| std::fs::read(p).unwrap();
    let mut secrets = RedisSecrets {
        password: Some("pw-1".into()),
        ca: Some(read_file(&pki.ca)),
        client: Some(ClientPem {
            cert: read_file(&pki.client_cert),
            key: read_file(&pki.client_key),
        }),
    };
    let got = read(&rendered.config, &secrets).await.unwrap();
    assert_eq!(got[0].unwrap().usd, 450_000_000);

    secrets.client = None;
    let err = read(&rendered.config, &secrets).await.unwrap_err();
    assert!(err.to_string().contains("TLS: "), "{err}");
}
