//! Tests of `cache:` validation.

use std::time::Duration;

use super::*;
use crate::model::{CacheStore, EmbedderKind, Guard};

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

const EMBEDDERS: &str = "  semantic:\n    embedders:\n      - {name: small, provider: openai, model: text-embedding-3-small, dimensions: 256, timeout: 500ms, cacheEntries: 0}\n      - {name: minilm, type: local, path: /models/minilm}\n";

#[test]
fn semantic_is_opt_in_per_route() {
    let c = from_yaml_str(&with(&format!(
        "{EMBEDDERS}    threshold: 0.9\n    guard: [numbers, negations]\n  routes:\n    - {{name: chat, semantic: {{embedder: minilm}}}}\n    - {{name: creative, semantic: {{embedder: small, threshold: 0.97, guard: []}}}}\n"
    )))
    .unwrap()
    .cache;
    assert_eq!(c.semantic.embedders.len(), 2);
    assert_eq!(c.semantic.max_entries, c.max_entries);
    assert_eq!(c.semantic.exact_scan_below, 2048);
    assert_eq!(c.semantic.embedders[0].cache_entries, 0);
    assert_eq!(c.semantic.embedders[1].cache_entries, 1024, "the default");
    match &c.semantic.embedders[0].kind {
        EmbedderKind::Provider {
            provider,
            model,
            dimensions,
            timeout,
        } => {
            assert_eq!(*provider, 0);
            assert_eq!(model, "text-embedding-3-small");
            assert_eq!(*dimensions, Some(256));
            assert_eq!(*timeout, Duration::from_millis(500));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        c.semantic.embedders[1].kind,
        EmbedderKind::Local {
            path: "/models/minilm".into(),
            max_tokens: 256
        }
    );
    let chat = c.semantic_for(Some("chat")).unwrap();
    assert_eq!(chat.embedder, 1);
    assert_eq!(chat.threshold, 0.9);
    assert_eq!(
        chat.guard,
        Guard {
            numbers: true,
            negations: true,
            ..Guard::NONE
        }
    );
    let creative = c.semantic_for(Some("creative")).unwrap();
    assert_eq!((creative.embedder, creative.threshold), (0, 0.97));
    assert_eq!(creative.guard, Guard::NONE);
    // Direct models never use it.
    assert!(c.semantic_for(None).is_none());
}

#[test]
fn semantic_defaults_with_one_embedder() {
    let c = from_yaml_str(&with(
        "  semantic:\n    embedders: [{name: e, type: local, path: /m}]\n    maxEntries: 50\n    exactScanBelow: 0\n  routes:\n    - {name: chat, semantic: {}}\n    - {name: creative, semantic: {enabled: false}}\n",
    ))
    .unwrap()
    .cache;
    let s = c.semantic_for(Some("chat")).unwrap();
    assert_eq!((s.embedder, s.threshold, s.guard), (0, 0.95, Guard::ALL));
    assert!(c.semantic_for(Some("creative")).is_none());
    assert_eq!(c.semantic.max_entries, 50);
    assert_eq!(c.semantic.exact_scan_below, 0);
}

#[test]
fn a_redis_store_shares_the_semantic_index_unless_opted_out() {
    let redis = "  store: {type: redis, redis: {url: 'redis://127.0.0.1:6379'}}\n";
    let one = "  semantic:\n    embedders: [{name: e, type: local, path: /m}]\n";
    let shared = |yaml: &str, route: &str| {
        let c = from_yaml_str(&with(yaml)).unwrap().cache;
        c.semantic_for(Some(route)).unwrap().shared
    };
    let routes = "  routes:\n    - {name: chat, semantic: {}}\n    - {name: creative, semantic: {shared: false}}\n";
    let on = format!("{redis}{one}{routes}");
    assert!(shared(&on, "chat"));
    assert!(!shared(&on, "creative"));
    // Off by default for the policy, back on for one route.
    let off = format!("{redis}{one}    shared: false\n  routes:\n    - {{name: chat, semantic: {{}}}}\n    - {{name: creative, semantic: {{shared: true}}}}\n");
    assert!(!shared(&off, "chat"));
    assert!(shared(&off, "creative"));
    // The memory store: never shared, and asking for it is an error.
    assert!(!shared(&format!("{one}{routes}"), "chat"));
    let errs = errors(&with(&format!(
        "{one}    shared: true\n  routes:\n    - {{name: chat, semantic: {{shared: true}}}}\n"
    )));
    for field in ["cache.semantic.shared", "cache.routes[0].semantic.shared"] {
        assert!(
            errs.iter()
                .any(|e| e.starts_with(&format!("{field}: needs `cache.store.type: redis`"))),
            "{field} not in {errs:?}"
        );
    }
}

#[test]
fn semantic_identity_names_what_shapes_the_vectors() {
    let c = from_yaml_str(&with(EMBEDDERS)).unwrap();
    let ids: Vec<String> = c
        .cache
        .semantic
        .embedders
        .iter()
        .map(|e| e.identity(&c.providers))
        .collect();
    assert!(ids[0].contains("text-embedding-3-small") && ids[0].contains(";256"));
    assert!(ids[1].contains("/models/minilm"));
    assert_ne!(ids[0], ids[1]);
}

#[test]
fn invalid_semantic_settings_name_their_field() {
    let errs = errors(&with(
        "  semantic:\n    threshold: 1.5\n    maxEntries: 0\n    embedders:\n      - {name: a, provider: nope, path: /x}\n      - {name: a, type: local, model: m}\n      - {name: c, provider: openai, dimensions: 0}\n  routes:\n    - {name: chat, semantic: {embedder: zzz, threshold: 0}}\n    - {name: creative, enabled: false, semantic: {embedder: c}}\n",
    ));
    for field in [
        "cache.semantic.threshold",
        "cache.semantic.maxEntries",
        "cache.semantic.embedders[0].provider",
        "cache.semantic.embedders[0].path",
        "cache.semantic.embedders[0].model",
        "cache.semantic.embedders[1].name",
        "cache.semantic.embedders[1].model",
        "cache.semantic.embedders[1].path",
        "cache.semantic.embedders[2].dimensions",
        "cache.routes[0].semantic.embedder",
        "cache.routes[0].semantic.threshold",
        "cache.routes[1].semantic",
    ] {
        assert!(
            errs.iter().any(|e| e.starts_with(&format!("{field}:"))),
            "{field} not in {errs:?}"
        );
    }
    // Several embedders: a route must name one; none: nothing to embed with.
    let errs = errors(&with(&format!(
        "{EMBEDDERS}  routes:\n    - {{name: chat, semantic: {{}}}}\n"
    )));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("cache.routes[0].semantic.embedder: is required")),
        "{errs:?}"
    );
    let errs = errors(&with("  routes:\n    - {name: chat, semantic: {}}\n"));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("cache.routes[0].semantic.embedder: no embedder")),
        "{errs:?}"
    );
    let errs = errors(&with("  semantic: {guard: [numbers, spelling]}\n"));
    assert!(
        errs.iter().any(|e| e.contains("cache.semantic.guard")),
        "{errs:?}"
    );
}

#[test]
fn the_readme_semantic_example_loads() {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("```yaml\ncache:\n  semantic:\n")
        .expect("README has a semantic cache example")
        + 8;
    let block = &readme[start..start + readme[start..].find("```").unwrap()];
    let base = BASE
        .replace("name: chat\n", "name: faq\n")
        .replace("name: creative\n", "name: support\n");
    let c = from_yaml_str(&format!("{base}{block}")).unwrap().cache;
    assert_eq!(c.semantic.embedders.len(), 2);
    let faq = c.semantic_for(Some("faq")).unwrap();
    assert_eq!(
        (faq.embedder, faq.threshold, faq.guard, faq.shared),
        (0, 0.95, Guard::ALL, true)
    );
    let support = c.semantic_for(Some("support")).unwrap();
    assert_eq!((support.embedder, support.threshold), (1, 0.97));
    assert!(!support.guard.order);
}
