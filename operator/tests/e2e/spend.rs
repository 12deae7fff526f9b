//! Status shows the spend the sidecars count in Redis: the proxy's own
//! Redis store settles usage, the operator reads it (password from the
//! policy's Secret) and `kubectl get llmp` shows it; a dead Redis makes it
//! `unknown` while the policy stays Ready. And the chart's shared store
//! (`--default-store`) over TLS as an ACL user.

use k8s_openapi::api::core::v1::Secret;
use kube::api::PostParams;
use kube::Api;
use serde_json::json;
use tollgate_operator::crd::LlmPolicy;
use tollgate_operator::render::render;
use tollgate_proxy::api::usage::Usage;
use tollgate_proxy::budget::{AdmitRequest, BudgetEngine, Identity};

use crate::*;
use tollgate_tests::redis::Redis;

fn spend_is(want: &'static str) -> impl Fn(Option<&LlmPolicy>) -> bool {
    move |p: Option<&LlmPolicy>| {
        p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
            s.spend.as_deref() == Some(want)
                && s.conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
        })
    }
}

#[tokio::test]
async fn status_shows_the_spend_counted_in_redis() {
    if !cluster() {
        return;
    }
    let Some(redis) = Redis::start_with(&["--requirepass", "s3cret"]).await else {
        return;
    };
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-spend";
    namespace(&client, ns).await;
    let secret: Secret = serde_json::from_value(
        json!({"metadata": {"name": "redis"}, "stringData": {"password": "s3cret\n"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let op = Launch::new("e2e-spend", ns).start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);

    // The example policy (a `daily` $100 budget per policy, a per-team
    // token budget per header), its counters in Redis.
    let mut p = policy(ns);
    p.spec.budgets.as_mut().unwrap().store = Some(
        serde_json::from_value(json!({"type": "redis", "redis": {
            "url": format!("redis://127.0.0.1:{}/0", redis.port),
            "passwordSecretRef": {"name": "redis", "key": "password"}}}))
        .unwrap(),
    );
    create_policy(&policies, &p).await;
    wait_policy(&policies, "chat", "spend $0.00", spend_is("$0.00/$100 day")).await;

    // A sidecar settles $0.006 + $0.012 through the proxy's own store
    // (60,000 tokens: under the per-team budget).
    let rendered = render(ns, "chat", &p.spec).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    let mut budgets = rendered.config.budgets.clone();
    let tollgate_config::BudgetStore::Redis(r) = &mut budgets.store else {
        panic!("redis store")
    };
    r.password_file = Some(password);
    let engine = BudgetEngine::new(&budgets, &Identity::of(&rendered.config), None)
        .await
        .unwrap();
    let headers = http::HeaderMap::new();
    let a = engine
        .admit(&AdmitRequest {
            headers: &headers,
            requested_model: "gpt-4o-mini",
            models: &[],
            prompt_tokens: 40_000,
            max_output_tokens: Some(20_000),
        })
        .await
        .unwrap();
    assert!(a.is_reserved());
    let usage = Usage {
        input: 40_000,
        output: 20_000,
        ..Usage::default()
    };
    a.settle("gpt-4o-mini", &usage, false).await;

    // Read on the next refresh (every 30 s).
    let got = wait_policy(&policies, "chat", "spend $0.02", spend_is("$0.02/$100 day")).await;
    let budgets = got.status.unwrap().budgets;
    assert_eq!(budgets[0].name, "daily");
    assert_eq!(
        (budgets[0].spent_usd, budgets[0].limit_usd),
        (Some(0.02), Some(100.0))
    );
    assert_eq!(
        (budgets[1].name.as_str(), budgets[1].spent_tokens),
        ("per-team", None),
        "per-header budgets show their limits only"
    );

    // Redis gone: the spend is unknown and the policy stays Ready.
    drop(redis);
    wait_policy(&policies, "chat", "spend unknown", spend_is("unknown")).await;
    let errors = op
        .metric(r#"tollgate_operator_spend_reads_total{result="error"}"#)
        .await;
    assert!(errors >= Some(1.0), "{errors:?}");
    let reads = op
        .metric(r#"tollgate_operator_spend_reads_total{result="success"}"#)
        .await;
    assert!(reads >= Some(2.0), "{reads:?}");

    cleanup(&client, "e2e-spend", ns).await;
}

/// The chart's shared store (`--default-store`): a policy whose budgets
/// name no store counts in a Redis that speaks TLS only and knows one ACL
/// user; the operator mounts the password, CA and client certificate from
/// the Secret of the policy's namespace, reports the budgets shared, and
/// reads the spend over TLS with them.
#[tokio::test]
async fn the_default_store_serves_a_policy_without_one_over_tls() {
    use tollgate_operator::default_store::DefaultStore;
    if !cluster() {
        return;
    }
    let pki = tollgate_tests::pki::Pki::generate();
    let acl = [
        "--user", "default", "off", "--user", "tollgate", "on", ">s3cret", "~*", "&*", "+@all",
    ];
    let Some(redis) = Redis::start_tls(&pki, &acl).await else {
        return;
    };
    let _serial = serial().await;
    let client = client().await;
    let ns = "e2e-default-store";
    namespace(&client, ns).await;
    let file = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let secret: Secret = serde_json::from_value(json!({"metadata": {"name": "tollgate-redis"},
        "stringData": {"password": "s3cret\n", "ca.crt": file(&pki.ca),
                       "tls.crt": file(&pki.client_cert), "tls.key": file(&pki.client_key)}}))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let key = |k: &str| json!({"name": "tollgate-redis", "key": k});
    let store = json!({"redis": {"url": redis.url(), "username": "tollgate",
        "passwordSecretRef": key("password"),
        "tls": {"caSecretRef": key("ca.crt"), "certSecretRef": key("tls.crt"), "keySecretRef": key("tls.key")}},
        "failMode": "closed"})
    .to_string();
    let mut launch = Launch::new("e2e-default-store", ns);
    launch.args = vec![format!("--default-store={store}")];
    let _op = launch.start(&client).await;
    let policies: Api<LlmPolicy> = Api::namespaced(client.clone(), ns);

    // The example policy without a store of its own.
    let mut p = policy(ns);
    p.spec.budgets.as_mut().unwrap().store = None;
    create_policy(&policies, &p).await;
    let shared = |p: Option<&LlmPolicy>| {
        spend_is("$0.00/$100 day")(p)
            && p.and_then(|p| p.status.as_ref()).is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.type_ == "BudgetsShared" && c.reason == "SharedStore")
            })
    };
    wait_policy(&policies, "chat", "shared, spend $0.00", shared).await;

    // As the operator renders it: the store with this policy's own prefix
    // and the Secret's keys as files.
    let mut effective = p.clone();
    DefaultStore::parse(&store)
        .unwrap()
        .apply(ns, "chat", &mut effective.spec);
    let rendered = render(ns, "chat", &effective.spec).unwrap();
    let mut budgets = rendered.config.budgets.clone();
    let tollgate_config::BudgetStore::Redis(r) = &mut budgets.store else {
        panic!("redis store")
    };
    assert_eq!(r.key_prefix, format!("tollgate:{ns}:chat"));
    let cm = Api::<k8s_openapi::api::core::v1::ConfigMap>::namespaced(client.clone(), ns)
        .get("tollgate-chat")
        .await
        .unwrap();
    let yaml = &cm.data.unwrap()["config.yaml"];
    assert!(
        yaml.contains("caFile: /var/run/secrets/tollgate/tollgate-redis/ca.crt"),
        "{yaml}"
    );
    // A sidecar settles $0.006 + $0.012, reading the files it would mount.
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("password");
    std::fs::write(&password, "s3cret\n").unwrap();
    r.password_file = Some(password);
    r.tls = Some(Box::new(tollgate_config::RedisTls {
        ca_file: Some(pki.ca.clone()),
        client: Some(tollgate_config::ClientCertFiles {
            cert_file: pki.client_cert.clone(),
            key_file: pki.client_key.clone(),
        }),
    }));
    let engine = BudgetEngine::new(&budgets, &Identity::of(&rendered.config), None)
        .await
        .unwrap();
    let headers = http::HeaderMap::new();
    let a = engine
        .admit(&AdmitRequest {
            headers: &headers,
            requested_model: "gpt-4o-mini",
            models: &[],
            prompt_tokens: 40_000,
            max_output_tokens: Some(20_000),
        })
        .await
        .unwrap();
    assert!(
        a.is_reserved(),
        "the sidecar's store reached Redis over TLS"
    );
    let usage = Usage {
        input: 40_000,
        output: 20_000,
        ..Usage::default()
    };
    a.settle("gpt-4o-mini", &usage, false).await;
    wait_policy(&policies, "chat", "spend $0.02", spend_is("$0.02/$100 day")).await;

    cleanup(&client, "e2e-default-store", ns).await;
}
