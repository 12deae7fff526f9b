use serde_json::json;

use super::*;
use crate::context::Settings;
use crate::crd::LlmPolicy;
use crate::sharing::Sharing;

const STORE: &str = r#"{
    "redis": {
        "url": "rediss://redis.shared.svc:6380/0",
        "username": "tollgate",
        "passwordSecretRef": {"name": "tollgate-redis", "key": "password"},
        "tls": {
            "caSecretRef": {"name": "tollgate-redis", "key": "ca.crt"},
            "certSecretRef": {"name": "tollgate-redis", "key": "tls.crt"},
            "keySecretRef": {"name": "tollgate-redis", "key": "tls.key"}
        }
    },
    "failMode": "closed"
}"#;

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> LlmPolicy {
    let mut spec = spec;
    spec["podSelector"] = json!({});
    spec["providers"] = json!([{"name": "openai", "type": "openai", "passthrough": true, "models": ["gpt-4o-mini"]}]);
    let mut p = LlmPolicy::new(name, serde_json::from_value(spec).unwrap());
    p.metadata.namespace = Some(ns.into());
    p
}

fn settings() -> Settings {
    Settings {
        default_store: Some(DefaultStore::parse(STORE).unwrap()),
        ..Settings::default()
    }
}

const LIMITS: &str = "limits";

#[test]
fn budgets_and_a_cache_without_a_store_get_the_default_one_with_their_own_prefix() {
    let p = policy(
        "team-a",
        "chat",
        json!({"budgets": {LIMITS: [{"name": "d", "scope": "policy", "window": "day", "usd": 5}]}, "cache": {"ttl": "10m"}}),
    );
    let e = settings().effective(&p);
    let store = e.spec.budgets.as_ref().unwrap().store.clone().unwrap();
    assert_eq!(store.kind, Some(BudgetStoreType::Redis));
    assert_eq!(store.fail_mode, Some(FailMode::Closed));
    let redis = store.redis.unwrap();
    assert_eq!(redis.key_prefix.as_deref(), Some("tollgate:team-a:chat"));
    assert_eq!(redis.username.as_deref(), Some("tollgate"));
    let cache = e.spec.cache.as_ref().unwrap().store.clone().unwrap();
    assert_eq!(cache.kind, Some(CacheStoreType::Redis));
    assert_eq!(
        cache.redis.unwrap().key_prefix.as_deref(),
        Some("tollgate:team-a:chat")
    );
    assert_eq!(Sharing::of(&e.spec), Some(Sharing::Shared));

    // Rendered: the files come from the Secret, mounted once, and the
    // policy's own settings are kept.
    let r = render("team-a", "chat", &e.spec).unwrap();
    assert_eq!(r.secrets.len(), 1);
    assert_eq!(r.secrets[0].secret, "tollgate-redis");
    assert_eq!(
        r.secrets[0].keys,
        ["ca.crt", "password", "tls.crt", "tls.key"]
    );
    let tollgate_config::BudgetStore::Redis(b) = &r.config.budgets.store else {
        panic!("redis budgets")
    };
    assert_eq!(
        b.password_file.as_deref(),
        Some("/var/run/secrets/tollgate/tollgate-redis/password".as_ref())
    );
    assert_eq!(
        b.tls.as_ref().unwrap().ca_file.as_deref(),
        Some("/var/run/secrets/tollgate/tollgate-redis/ca.crt".as_ref())
    );
    assert_eq!(r.config.cache.ttl, std::time::Duration::from_secs(600));
    assert!(matches!(
        r.config.cache.store,
        tollgate_config::CacheStore::Redis(_)
    ));
}

#[test]
fn a_policys_own_store_wins_and_sections_it_lacks_stay_absent() {
    let own = policy(
        "team-a",
        "chat",
        json!({
            "budgets": {"store": {"type": "memory"}, LIMITS: [{"name": "d", "scope": "policy", "window": "day", "usd": 5}]},
            "cache": {"store": {"type": "redis", "redis": {"url": "redis://own:6379"}}}
        }),
    );
    let e = settings().effective(&own);
    assert_eq!(e.spec.budgets, own.spec.budgets);
    assert_eq!(e.spec.cache, own.spec.cache);
    assert_eq!(Sharing::of(&e.spec), Some(Sharing::PerPod));

    let none = policy("team-a", "chat", json!({}));
    let e = settings().effective(&none);
    assert_eq!((e.spec.budgets, e.spec.cache), (None, None));
    // Prices alone count nothing: no store needed.
    let prices = policy(
        "team-a",
        "chat",
        json!({"budgets": {"pricing": {"models": {"m": {"input": 1, "output": 1}}}}}),
    );
    assert_eq!(
        settings().effective(&prices).spec.budgets.unwrap().store,
        None
    );
    // Without --default-store nothing changes.
    assert_eq!(Settings::default().effective(&none), none);
}

#[test]
fn budgets_or_cache_can_be_left_out() {
    let mut s = settings();
    let d = s.default_store.as_mut().unwrap();
    d.budgets = Some(false);
    let p = policy(
        "team-a",
        "chat",
        json!({"budgets": {LIMITS: [{"name": "d", "scope": "policy", "window": "day", "usd": 5}]}, "cache": {}}),
    );
    let e = s.effective(&p);
    assert_eq!(e.spec.budgets.unwrap().store, None);
    assert!(e.spec.cache.unwrap().store.is_some());
    let d = s.default_store.as_mut().unwrap();
    (d.budgets, d.cache) = (None, Some(false));
    let e = s.effective(&p);
    assert!(e.spec.budgets.unwrap().store.is_some());
    assert_eq!(e.spec.cache.unwrap().store, None);
}

#[test]
fn a_long_name_gets_a_hashed_prefix_within_the_proxys_limit() {
    let d = DefaultStore::parse(STORE).unwrap();
    let long = "n".repeat(63);
    let a = d.prefix_for(&long, "chat");
    let b = d.prefix_for(&long, "chat2");
    assert!(a.len() <= 64 && a.starts_with("tollgate:"), "{a}");
    assert_ne!(a, b);
    assert_eq!(a, d.prefix_for(&long, "chat"));
}

#[test]
fn a_store_the_proxy_would_refuse_is_refused_at_start() {
    let e = DefaultStore::parse(r#"{"redis": {"url": "http://x"}}"#).unwrap_err();
    assert!(e.contains("url") && e.contains("scheme"), "{e}");
    let e = DefaultStore::parse(r#"{"redis": {"url": "redis://x"}, "fail": "open"}"#).unwrap_err();
    assert!(e.contains("unknown field `fail`"), "{e}");
    let e = DefaultStore::parse(
        r#"{"redis": {"url": "redis://x", "tls": {"caSecretRef": {"name": "s", "key": "ca.crt"}}}}"#,
    )
    .unwrap_err();
    assert!(e.contains("rediss://"), "{e}");
    let e = DefaultStore::parse(&format!(
        r#"{{"redis": {{"url": "redis://x", "keyPrefix": "{}"}}}}"#,
        "p".repeat(48)
    ))
    .unwrap_err();
    assert!(e.contains("keyPrefix"), "{e}");
}
