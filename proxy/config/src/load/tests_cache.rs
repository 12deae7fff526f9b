//! Tests of `cache:` validation.

use std::time::Duration;

use super::*;
use crate::model::CacheStore;

const BASE: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
providers:
  - name: openai
    type: openai
    credentials: {env: OPENAI_API_KEY}
    models: [gpt-4o-mini]
routing:
  routes:
    - name: chat
      targets: [{provider: openai, model: gpt-4o-mini}]
    - name: creative
      targets: [{provider: openai, model: gpt-4o-mini}]
"#;

fn with(cache: &str) -> String {
    format!("{BASE}cache:\n{cache}")
}

fn errors(text: &str) -> Vec<String> {
    match from_yaml_str(text) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e
            .field_errors()
            .into_iter()
            .map(|f| f.to_string())
            .collect(),
    }
}

#[test]
fn absent_cache_is_off() {
    let c = from_yaml_str(BASE).unwrap().cache;
    assert!(!c.is_active());
    assert_eq!(c.ttl_for(Some("chat")), None);
}

#[test]
fn section_turns_it_on_with_route_overrides() {
    let c = from_yaml_str(&with(
        "  ttl: 10m\n  maxBytes: 8Mi\n  tenantHeader: X-Tollgate-Tenant\n  routes:\n    - {name: creative, enabled: false}\n    - {name: chat, ttl: 30s}\n",
    ))
    .unwrap()
    .cache;
    assert!(c.is_active());
    assert_eq!(c.max_bytes, 8 << 20);
    assert_eq!(c.tenant_header.as_deref(), Some("x-tollgate-tenant"));
    assert_eq!(c.ttl_for(None), Some(Duration::from_secs(600)));
    assert_eq!(c.ttl_for(Some("chat")), Some(Duration::from_secs(30)));
    assert_eq!(c.ttl_for(Some("creative")), None);
    assert!(c.deterministic_only);
    assert_eq!(c.store, CacheStore::Memory);
}

#[test]
fn redis_store() {
    let c = from_yaml_str(&with(
        "  store: {type: redis, redis: {url: 'redis://127.0.0.1:6379', keyPrefix: tg}}\n",
    ))
    .unwrap()
    .cache;
    match c.store {
        CacheStore::Redis(r) => assert_eq!(r.key_prefix, "tg"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_settings_name_their_field() {
    let errs = errors(&with(
        "  ttl: soon\n  maxEntries: 0\n  maxEntryBytes: 1Gi\n  tenantHeader: 'bad header'\n  store: {type: redis}\n  routes:\n    - {name: nope}\n",
    ));
    for field in [
        "cache.ttl",
        "cache.maxEntries",
        "cache.maxEntryBytes",
        "cache.tenantHeader",
        "cache.store.redis",
        "cache.routes[0].name",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(field)),
            "{field} not in {errs:?}"
        );
    }
    let errs = errors(&with("  store: {type: redis, redis: {url: 'http://x'}}\n"));
    assert!(
        errs.iter().any(|e| e.starts_with("cache.store.redis.url")),
        "{errs:?}"
    );
}
