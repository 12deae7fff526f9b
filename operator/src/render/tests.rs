//! Every spec field lands where the proxy reads it; every invalid spec is
//! refused with the path of the field the user wrote.

use serde_json::json;
use tollgate_config::raw::RawConfig;

use super::*;
use crate::crd::LlmPolicy;

fn example() -> LlmPolicySpec {
    let p: LlmPolicy = serde_saphyr::from_str(include_str!("../../testdata/policy.yaml")).unwrap();
    p.spec
}

/// A spec edited as JSON (the way a user edits YAML).
fn edit(f: impl FnOnce(&mut Value)) -> LlmPolicySpec {
    let mut v = serde_json::to_value(example()).unwrap();
    f(&mut v);
    serde_json::from_value(v).unwrap()
}

fn raw(r: &Rendered) -> RawConfig {
    serde_saphyr::from_str(&r.yaml).unwrap()
}

fn ok(spec: &LlmPolicySpec) -> Rendered {
    render("team-a", "chat", spec).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn refused(spec: &LlmPolicySpec, path: &str, message: &str) {
    let err = render("team-a", "chat", spec).expect_err("expected an error");
    assert!(
        err.0
            .iter()
            .any(|e| e.path == path && e.message.contains(message)),
        "expected `{path}: ...{message}...` in {err:#?}"
    );
}

#[test]
fn example_renders_and_the_proxy_accepts_it() {
    let r = ok(&example());
    let config = tollgate_config::from_yaml_str(&r.yaml).unwrap();
    assert_eq!(config.hash, r.hash, "the status hash is the proxy's own");
    assert!(r
        .yaml
        .starts_with("# Rendered by tollgate-operator from LlmPolicy team-a/chat"));
}

#[test]
fn metadata_and_listeners() {
    let c = raw(&ok(&example()));
    let m = c.metadata.unwrap();
    assert_eq!(m.name.as_deref(), Some("team-a/chat"));
    assert_eq!(m.namespace.as_deref(), Some("team-a"));
    assert_eq!(m.workload.as_deref(), Some("chat"));
    assert_eq!(c.server.listen.as_deref(), Some("127.0.0.1:15800"));
    assert_eq!(c.admin.listen.as_deref(), Some("0.0.0.0:15801"));
    assert_eq!(c.logging.level.as_deref(), Some("info"));

    let spec =
        edit(|v| v["sidecar"] = json!({"port": 9000, "adminPort": 9001, "logFormat": "json"}));
    let r = ok(&spec);
    assert_eq!((r.port, r.admin_port), (9000, 9001));
    let c = raw(&r);
    assert_eq!(c.server.listen.as_deref(), Some("127.0.0.1:9000"));
    assert_eq!(c.admin.listen.as_deref(), Some("0.0.0.0:9001"));
    assert_eq!(c.logging.format, tollgate_config::LogFormat::Json);

    // The access log's share, passed on; out of range, refused at its field.
    let spec = edit(|v| v["sidecar"] = json!({"accessLog": {"sample": 0.1}}));
    let access = raw(&ok(&spec)).logging.access.expect("rendered");
    assert_eq!((access.enabled, access.sample), (None, Some(0.1)));
    let spec = edit(|v| v["sidecar"] = json!({"perModelHistograms": false}));
    assert_eq!(raw(&ok(&spec)).metrics.per_model_histograms, Some(false));
    // The runtime: left to the proxy's default unless set.
    assert_eq!(c.server.runtime, None);
    let spec = edit(|v| v["sidecar"] = json!({"runtime": "workStealing"}));
    assert_eq!(
        raw(&ok(&spec)).server.runtime,
        Some(tollgate_config::raw::RuntimeMode::WorkStealing)
    );
    refused(
        &edit(|v| v["sidecar"] = json!({"accessLog": {"sample": 2}})),
        "spec.sidecar.accessLog.sample",
        "between 0 and 1",
    );

    let spec = edit(|v| {
        v.as_object_mut().unwrap().remove("sidecar");
    });
    let r = ok(&spec);
    assert_eq!((r.port, r.admin_port), (DEFAULT_PORT, DEFAULT_ADMIN_PORT));
}

#[test]
fn providers_reference_mounted_secret_files() {
    let r = ok(&example());
    let c = raw(&r);
    let openai = &c.providers[0];
    assert_eq!(openai.name, "openai");
    assert_eq!(
        openai.credentials.as_ref().unwrap().file.as_deref(),
        Some("/var/run/secrets/tollgate/llm-keys/openai")
    );
    assert_eq!(openai.models, ["gpt-4o-mini", "gpt-4.1*"]);
    assert_eq!(openai.headers["OpenAI-Organization"], "org-123");
    assert_eq!(
        c.providers[1].credentials.as_ref().unwrap().file.as_deref(),
        Some("/var/run/secrets/tollgate/llm-keys/anthropic")
    );
    // One volume per Secret, with only the keys used.
    assert_eq!(
        r.secrets,
        [SecretVolume {
            volume: "tollgate-secret-0".into(),
            secret: "llm-keys".into(),
            keys: vec!["anthropic".into(), "openai".into()],
            mount_path: "/var/run/secrets/tollgate/llm-keys".into(),
        }]
    );
    assert_eq!(c.default_provider.as_deref(), Some("openai"));
}

#[test]
fn trace_propagation_is_per_provider_and_on_unless_switched_off() {
    let c = ok(&example()).config;
    assert!(c.providers.iter().all(|p| p.propagate_trace));
    let spec = edit(|v| v["providers"][0]["propagateTrace"] = json!(false));
    let c = ok(&spec).config;
    assert!(!c.providers[0].propagate_trace);
    assert!(c.providers[1..].iter().all(|p| p.propagate_trace));
}

#[test]
fn passthrough_provider_mounts_nothing() {
    let spec = edit(|v| {
        v["providers"] = json!([{"name": "local", "type": "openai-compatible", "baseUrl": "http://vllm:8000/v1",
            "passthrough": true, "models": ["llama*"]}]);
        v.as_object_mut().unwrap().remove("routes");
        v.as_object_mut().unwrap().remove("defaultProvider");
        v.as_object_mut().unwrap().remove("budgets");
    });
    let r = ok(&spec);
    assert!(r.secrets.is_empty());
    let c = raw(&r);
    assert!(c.providers[0].passthrough);
    assert!(c.providers[0].credentials.is_none());
    assert_eq!(
        c.providers[0].base_url.as_deref(),
        Some("http://vllm:8000/v1")
    );
}

#[test]
fn routes_and_defaults() {
    let c = raw(&ok(&example()));
    let routes = &c.routing.routes;
    assert_eq!(routes.len(), 2);
    let r = &routes[0];
    assert_eq!(r.name, "chat-default");
    assert_eq!(r.targets[0].weight, Some(3));
    assert!(r.targets[2].long_context);
    assert_eq!(r.rules[0].route, "chat-smart");
    assert_eq!(r.rules[0].when.has_tools, Some(true));
    assert_eq!(r.retry.as_ref().unwrap().max_attempts, Some(3));
    assert_eq!(r.circuit_breaker.as_ref().unwrap().error_rate, Some(0.5));
    let shaping = r.shaping.as_ref().unwrap();
    assert_eq!(shaping.max_tokens, Some(2048));
    assert_eq!(shaping.set["temperature"], json!(0));
    assert_eq!(shaping.strip, ["logit_bias"]);
    let shadow = r.shadow.as_ref().unwrap();
    assert_eq!((shadow.provider.as_str(), shadow.share), ("anthropic", 0.1));
    let d = c.routing.defaults.timeouts.as_ref().unwrap();
    assert_eq!(d.idle.as_deref(), Some("60s"));
}

#[test]
fn budgets_persist_to_the_sidecar_volume() {
    let c = raw(&ok(&example()));
    let b = &c.budgets;
    assert_eq!(b.time_zone.as_deref(), Some("Europe/Berlin"));
    let store = b.store.as_ref().unwrap();
    assert_eq!(
        store.persist_path.as_deref(),
        Some("/var/lib/tollgate/budgets.json")
    );
    assert_eq!(store.persist_interval.as_deref(), Some("5s"));
    assert_eq!(
        b.pricing.as_ref().unwrap().models["gpt-4o-mini"].output,
        0.6
    );
    assert_eq!(b.limits[0].name, "daily");
    assert_eq!(b.limits[0].downgrade_to.as_deref(), Some("chat-default"));
    assert_eq!(b.limits[0].thresholds, Some(vec![0.5, 0.9]));
    assert_eq!(b.limits[1].header.as_deref(), Some("x-team"));
    assert_eq!(b.rate_limits[0].requests_per_minute, Some(600));

    // No store written: limits still get the persisted memory store.
    let spec = edit(|v| {
        v["budgets"].as_object_mut().unwrap().remove("store");
    });
    let c = raw(&ok(&spec));
    let store = c.budgets.store.unwrap();
    assert_eq!(
        store.persist_path.as_deref(),
        Some("/var/lib/tollgate/budgets.json")
    );
}

#[test]
fn redis_password_comes_from_a_mounted_secret() {
    let spec = edit(|v| {
        v["budgets"]["store"] = json!({"type": "redis", "failMode": "closed",
            "redis": {"url": "redis://redis.infra:6379/0", "keyPrefix": "tg",
                      "passwordSecretRef": {"name": "redis", "key": "password"}}});
    });
    let r = ok(&spec);
    let c = raw(&r);
    let store = c.budgets.store.unwrap();
    assert!(store.persist_path.is_none());
    let redis = store.redis.unwrap();
    assert_eq!(redis.url, "redis://redis.infra:6379/0");
    assert_eq!(
        redis.password_file.as_deref(),
        Some("/var/run/secrets/tollgate/redis/password")
    );
    assert_eq!(redis.key_prefix.as_deref(), Some("tg"));
    assert_eq!(r.secrets.len(), 2);
    assert_eq!(r.secrets[1].secret, "redis");
    assert_eq!(r.secrets[1].volume, "tollgate-secret-1");
}

#[test]
fn redis_tls_files_and_the_cache_password_come_from_mounted_secrets() {
    let key = |name: &str, key: &str| json!({"name": name, "key": key});
    let spec = edit(|v| {
        v["budgets"]["store"] = json!({"type": "redis", "redis": {
            "url": "rediss://redis.infra:6380/0", "username": "tollgate",
            "passwordSecretRef": key("redis", "password"),
            "tls": {"caSecretRef": key("redis-tls", "ca.crt"), "certSecretRef": key("redis-tls", "tls.crt"),
                    "keySecretRef": key("redis-tls", "tls.key")}}});
        v["cache"] = json!({"store": {"type": "redis", "redis": {
            "url": "rediss://redis.infra:6380/1", "username": "cache",
            "passwordSecretRef": key("redis-cache", "pw"),
            "tls": {"caSecretRef": key("redis-tls", "ca.crt")}}}});
    });
    let r = ok(&spec);
    let c = raw(&r);
    let file = |s: &str, k: &str| Some(format!("/var/run/secrets/tollgate/{s}/{k}"));
    let b = c.budgets.store.unwrap().redis.unwrap();
    assert_eq!(b.username.as_deref(), Some("tollgate"));
    assert_eq!(b.password_file, file("redis", "password"));
    assert_eq!(
        b.tls,
        Some(tollgate_config::raw::RawRedisTls {
            ca_file: file("redis-tls", "ca.crt"),
            cert_file: file("redis-tls", "tls.crt"),
            key_file: file("redis-tls", "tls.key"),
        })
    );
    let cache = c.cache.store.unwrap().redis.unwrap();
    assert_eq!(cache.username.as_deref(), Some("cache"));
    assert_eq!(cache.password_file, file("redis-cache", "pw"));
    assert_eq!(cache.tls.unwrap().ca_file, file("redis-tls", "ca.crt"));
    assert!(!r.yaml.contains("SecretRef"), "{}", r.yaml);
    // Each Secret is mounted once, with only the keys the config reads.
    let mounted = |name: &str| {
        r.secrets
            .iter()
            .find(|s| s.secret == name)
            .map(|s| s.keys.clone())
    };
    assert_eq!(mounted("redis"), Some(vec!["password".to_string()]));
    assert_eq!(mounted("redis-cache"), Some(vec!["pw".to_string()]));
    assert_eq!(
        mounted("redis-tls"),
        Some(vec!["ca.crt".into(), "tls.crt".into(), "tls.key".into()])
    );
    // The proxy's validation took them: the client certificate is there.
    let tollgate_config::BudgetStore::Redis(v) = &r.config.budgets.store else {
        panic!("a redis store")
    };
    assert!(v.tls.as_ref().unwrap().client.is_some());

    // A client certificate without its key is named at the spec's field.
    let half = edit(|v| {
        v["budgets"]["store"] = json!({"type": "redis", "redis": {
            "url": "rediss://redis.infra:6380/0", "tls": {"certSecretRef": key("redis-tls", "tls.crt")}}});
    });
    let e = render("team-a", "chat", &half).unwrap_err().to_string();
    assert!(
        e.contains("spec.budgets.store.redis.tls.keySecretRef: required with `certFile`"),
        "{e}"
    );
}

/// Every field of the proxy's `cache` and `pii` sections, set.
fn every_cache_and_pii_field() -> (Value, Value) {
    let cache = json!({
        "enabled": true, "ttl": "10m", "maxEntries": 500, "maxBytes": "32Mi", "maxEntryBytes": 65536,
        "deterministicOnly": false, "tenantHeader": "x-tenant",
        "store": {"type": "redis", "redis": {"url": "redis://r:6379/1", "passwordFile": "/var/run/secrets/tollgate/r/p",
            "username": "tollgate", "keyPrefix": "tg", "timeout": "50ms", "cluster": false, "nodes": ["redis://s:26379"],
            "sentinel": {"masterName": "mymaster"}}},
        "semantic": {"embedders": [
                {"name": "small", "type": "provider", "provider": "openai", "model": "text-embedding-3-small", "dimensions": 256, "timeout": "1s"},
                {"name": "local", "type": "local", "path": "/models/minilm", "maxTokens": 128}],
            "threshold": 1, "guard": ["numbers", "negations"], "maxEntries": 100, "exactScanBelow": 64,
            "verify": {"share": 0.1, "floor": 0.4, "window": 10, "minSamples": 3, "queueSize": 1}},
        "routes": [{"name": "chat-default", "enabled": true, "ttl": "1m", "semantic": {"enabled": true, "embedder": "small",
            "threshold": 0.97, "guard": [], "verify": {"share": 0}, "judge": {"provider": "openai", "model": "gpt-4o-mini", "timeout": "2s"}}}],
    });
    let pii = json!({
        "enabled": true, "action": "hash", "minScore": 0.6,
        "entities": {"email": {"enabled": true, "action": "pseudonymize", "minScore": 0.7}, "ip_address": {"enabled": false}},
        "custom": [
            {"name": "customer_id", "regex": "CUST-[0-9]{8}", "validator": "luhn", "context": ["customer"], "contextWindow": 20, "action": "block"},
            {"name": "codename", "terms": ["Project Falcon"]}],
        "responses": {"scan": true, "maxHoldBack": "8Ki"},
        "promptGuard": {"enabled": true, "user": "strip", "toolResults": "block", "disabledRules": ["role_play"], "minBlobLength": 64},
    });
    (cache, pii)
}

/// `spec.cache` and `spec.pii` reach the proxy as written: the typed
/// sections render to the config the same YAML gives the proxy directly
/// (unset fields stay unset), for every field and every example.
#[test]
fn cache_and_pii_render_as_written() {
    use tollgate_config::raw::{RawCache, RawPii};
    let (cache, pii) = every_cache_and_pii_field();
    let mut every = serde_json::to_value(example()).unwrap();
    every["cache"] = cache;
    every["pii"] = pii;
    let mut specs = vec![every];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s");
    for f in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for v in serde_saphyr::from_multiple::<Value>(&text).unwrap() {
            if v["kind"] == "LlmPolicy" {
                specs.push(v["spec"].clone());
            }
        }
    }
    assert!(specs.iter().filter(|s| !s["cache"].is_null()).count() >= 3);
    assert!(specs.iter().filter(|s| !s["pii"].is_null()).count() >= 2);
    // A Secret reference renders as the path the Secret is mounted at.
    fn mounted(cache: &mut Value) {
        let path = |r: &Value| {
            Value::String(format!(
                "/var/run/secrets/tollgate/{}/{}",
                r["name"].as_str().unwrap(),
                r["key"].as_str().unwrap()
            ))
        };
        let Some(redis) = cache
            .pointer_mut("/store/redis")
            .and_then(Value::as_object_mut)
        else {
            return;
        };
        if let Some(r) = redis.remove("passwordSecretRef") {
            redis.insert("passwordFile".into(), path(&r));
        }
        if let Some(tls) = redis.get_mut("tls").and_then(Value::as_object_mut) {
            for (from, to) in [
                ("caSecretRef", "caFile"),
                ("certSecretRef", "certFile"),
                ("keySecretRef", "keyFile"),
            ] {
                if let Some(r) = tls.remove(from) {
                    tls.insert(to.into(), path(&r));
                }
            }
        }
    }
    for spec_json in specs {
        let (mut cache, pii) = (spec_json["cache"].clone(), spec_json["pii"].clone());
        mounted(&mut cache);
        let spec: LlmPolicySpec = serde_json::from_value(spec_json).unwrap();
        let c = raw(&ok(&spec));
        let want_cache: RawCache = serde_json::from_value(cache.clone()).unwrap_or_default();
        let want_pii: RawPii = serde_json::from_value(pii.clone()).unwrap_or_default();
        assert_eq!(c.cache, want_cache, "{cache}");
        assert_eq!(c.pii, want_pii, "{pii}");
    }
}

/// A value outside what the proxy accepts does not parse into the typed
/// spec (the CRD's enums and types refuse it at the API server); a field
/// the CRD lacks is named by `validate::unknown_fields`.
#[test]
fn cache_and_pii_values_outside_their_types_do_not_parse() {
    for (section, value) in [
        ("pii", json!({"action": "scramble"})),
        ("pii", json!({"promptGuard": {"user": "shout"}})),
        ("cache", json!({"store": {"type": "disk"}})),
        ("cache", json!({"semantic": {"guard": ["vibes"]}})),
        ("cache", json!({"maxEntries": "many"})),
    ] {
        let mut v = serde_json::to_value(example()).unwrap();
        v[section] = value.clone();
        assert!(
            serde_json::from_value::<LlmPolicySpec>(v).is_err(),
            "{section}: {value}"
        );
    }
}

#[test]
fn cache_and_pii_pass_through_to_the_proxy() {
    let spec = edit(|v| {
        v["cache"] = json!({"ttl": "10m", "maxEntries": 500});
        v["pii"] = json!({"action": "mask", "entities": {"email": {"action": "block"}}});
    });
    let c = raw(&ok(&spec));
    assert_eq!(c.cache.ttl.as_deref(), Some("10m"));
    assert_eq!(c.cache.max_entries, Some(500));
    assert!(!c.pii.is_empty());
}

#[test]
fn rendering_is_deterministic_and_the_hash_follows_the_config() {
    let a = ok(&example());
    assert_eq!(a, ok(&example()));
    let b = ok(&edit(|v| v["routes"][0]["targets"][0]["weight"] = json!(4)));
    assert_ne!(a.hash, b.hash);
}

#[test]
fn keys_never_land_in_the_config_map() {
    let spec = edit(|v| v["providers"][0]["headers"] = json!({"Authorization": "Bearer sk-live"}));
    refused(
        &spec,
        "spec.providers[0].headers.Authorization",
        "use credentialsSecretRef",
    );
    let spec = edit(|v| v["pii"] = json!({"hashSalt": "0123456789abcdef0123"}));
    refused(&spec, "spec.pii.hashSalt", "ConfigMap");
}

#[test]
fn invalid_values_name_the_spec_field() {
    let cases: Vec<(LlmPolicySpec, &str, &str)> = vec![
        (
            edit(|v| v["routes"][0]["targets"][1]["provider"] = json!("anthropc")),
            "spec.routes[0].targets[1].provider",
            "no provider is named `anthropc`",
        ),
        (
            edit(|v| v["routes"][0]["shadow"]["provider"] = json!("nope")),
            "spec.routes[0].shadow.provider",
            "no provider is named `nope`",
        ),
        (
            edit(|v| v["routes"][0]["retry"]["initialBackoff"] = json!("soon")),
            "spec.routes[0].retry.initialBackoff",
            "",
        ),
        (
            edit(|v| v["routes"][0]["rules"][0]["when"] = json!({"systemPrompt": "(unclosed"})),
            "spec.routes[0].rules[0].when.systemPrompt",
            "",
        ),
        (
            edit(|v| v["budgets"]["pricing"]["models"]["gpt-4o-mini"]["input"] = json!(-1.0)),
            "spec.budgets.pricing.models.gpt-4o-mini.input",
            "between 0",
        ),
        (
            edit(|v| v["budgets"]["timeZone"] = json!("Mars/Olympus")),
            "spec.budgets.timeZone",
            "",
        ),
        (
            edit(|v| v["providers"][0]["baseUrl"] = json!("not a url")),
            "spec.providers[0].baseUrl",
            "",
        ),
        (
            edit(|v| v["sidecar"] = json!({"port": 9000, "adminPort": 9000})),
            "spec.sidecar.adminPort",
            "must differ",
        ),
        (
            edit(|v| v["routeDefaults"]["timeouts"]["idle"] = json!("forever")),
            "spec.routeDefaults.timeouts.idle",
            "",
        ),
        (
            edit(|v| v["budgets"]["limits"][0]["rollingWindow"] = json!("90s")),
            "spec.budgets.limits[0].rollingWindow",
            "",
        ),
    ];
    for (spec, path, message) in cases {
        refused(&spec, path, message);
    }
}

#[test]
fn cache_and_pii_are_checked_by_the_proxys_rules() {
    // What no schema says: references, regexes, sizes.
    let spec = edit(|v| {
        v["cache"] = json!({"routes": [{"name": "chat-default", "semantic": {"embedder": "e"}}],
            "semantic": {"embedders": [{"name": "e", "provider": "anthropic", "model": "m"}]}})
    });
    refused(
        &spec,
        "spec.cache.semantic.embedders[0].provider",
        "Anthropic",
    );
    let spec = edit(|v| v["pii"] = json!({"custom": [{"name": "x", "regex": "("}]}));
    refused(&spec, "spec.pii.custom[0].regex", "does not compile");
    let spec = edit(|v| v["cache"] = json!({"maxBytes": "1Mi", "maxEntryBytes": "2Mi"}));
    refused(&spec, "spec.cache.maxEntryBytes", "maxBytes");
}

#[test]
fn schema_rules_are_enforced_again_by_the_proxy() {
    // What CEL refuses at the API server, the proxy's validation refuses
    // too (a policy written before a rule existed, or a webhook review).
    let spec = edit(|v| v["routes"][0]["targets"][0]["provider"] = json!("nope"));
    refused(&spec, "spec.routes[0].targets[0].provider", "");
    let spec = edit(|v| v["providers"][1]["name"] = json!("openai"));
    refused(&spec, "spec.providers[1].name", "already");
}

#[test]
fn spec_paths() {
    use super::paths::to_spec;
    assert_eq!(
        to_spec("routing.routes[1].targets[0]"),
        "spec.routes[1].targets[0]"
    );
    assert_eq!(
        to_spec("routing.defaults.retry"),
        "spec.routeDefaults.retry"
    );
    assert_eq!(
        to_spec("providers[2].credentials.file"),
        "spec.providers[2].credentialsSecretRef"
    );
    assert_eq!(to_spec("providers[2].baseUrl"), "spec.providers[2].baseUrl");
    assert_eq!(to_spec("admin.listen"), "spec.sidecar.adminPort");
    assert_eq!(
        to_spec("budgets.store.redis.passwordFile"),
        "spec.budgets.store.redis.passwordSecretRef"
    );
    assert_eq!(to_spec("(root)"), "spec");
}

/// Property names of a type's JSON schema.
fn props<T: schemars::JsonSchema>() -> std::collections::BTreeSet<String> {
    let s = serde_json::to_value(schemars::schema_for!(T)).unwrap();
    s["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

/// The CRD mirrors the proxy's sections field for field (apart from the
/// Kubernetes-shaped ones), so a field added to the proxy's config fails
/// here until the CRD offers it too.
#[test]
fn crd_sections_mirror_the_proxy_config() {
    use crate::crd::*;
    use std::collections::BTreeSet;
    use tollgate_config::raw::*;
    fn same<A: schemars::JsonSchema, B: schemars::JsonSchema>(
        crd_only: &[&str],
        proxy_only: &[&str],
    ) {
        let a: BTreeSet<String> = props::<A>();
        let b: BTreeSet<String> = props::<B>();
        let a: BTreeSet<_> = a
            .iter()
            .filter(|k| !crd_only.contains(&k.as_str()))
            .collect();
        let b: BTreeSet<_> = b
            .iter()
            .filter(|k| !proxy_only.contains(&k.as_str()))
            .collect();
        assert_eq!(
            a,
            b,
            "{} vs {}",
            std::any::type_name::<A>(),
            std::any::type_name::<B>()
        );
    }
    same::<Provider, RawProvider>(&["credentialsSecretRef"], &["credentials"]);
    same::<RouteDefaults, RawRoutePolicy>(&[], &[]);
    same::<Route, RawRoute>(&[], &[]);
    same::<Target, RawTarget>(&[], &[]);
    same::<RouteRule, RawRule>(&[], &[]);
    same::<CircuitBreaker, RawCircuitBreaker>(&[], &[]);
    same::<Shaping, RawShaping>(&[], &[]);
    same::<Shadow, RawShadow>(&[], &[]);
    same::<Budgets, RawBudgets>(&[], &[]);
    same::<BudgetStore, RawBudgetStore>(&[], &["persistPath"]);
    same::<RedisStore, RawRedisStore>(&["passwordSecretRef"], &["passwordFile"]);
    same::<RedisTls, RawRedisTls>(
        &["caSecretRef", "certSecretRef", "keySecretRef"],
        &["caFile", "certFile", "keyFile"],
    );
    same::<Sentinel, RawSentinel>(&[], &[]);
    same::<Limit, RawLimit>(&[], &[]);
    same::<Cache, RawCache>(&[], &[]);
    same::<CacheStore, RawCacheStore>(&[], &[]);
    same::<CacheRedis, RawRedisStore>(&["passwordSecretRef"], &[]);
    same::<Semantic, RawSemantic>(&[], &[]);
    same::<Verify, RawVerify>(&[], &[]);
    same::<Embedder, RawEmbedder>(&[], &[]);
    same::<RouteCache, RawRouteCache>(&[], &[]);
    same::<RouteSemantic, RawRouteSemantic>(&[], &[]);
    same::<Pii, RawPii>(&[], &[]);
    same::<EntityPolicy, RawEntityPolicy>(&[], &[]);
    same::<CustomRecognizer, RawCustomRecognizer>(&[], &[]);
    same::<Responses, RawPiiResponses>(&[], &[]);
    same::<PromptGuard, RawPromptGuard>(&[], &[]);
}

/// `n` dictionary terms of 20 bytes each, in one custom PII type.
fn with_terms(n: usize) -> LlmPolicySpec {
    let terms: Vec<String> = (0..n).map(|i| format!("codename-{i:011}")).collect();
    edit(|v| v["pii"] = serde_json::json!({"custom": [{"name": "codenames", "terms": terms}]}))
}

#[test]
fn a_config_a_config_map_cannot_hold_is_refused() {
    // About 0.6 MiB of terms renders and fits.
    let r = ok(&with_terms(25_000));
    assert!(r.yaml.len() < CONFIG_MAP_LIMIT);
    // About 1.2 MiB does not: the API server would refuse the ConfigMap.
    let err = render("team-a", "chat", &with_terms(50_000)).unwrap_err();
    assert_eq!(err.0.len(), 1, "{err}");
    assert_eq!(err.0[0].path, "spec");
    let m = &err.0[0].message;
    assert!(
        m.contains("more than the 1024 KiB a ConfigMap holds"),
        "{m}"
    );
    assert!(m.contains("(largest: spec.pii "), "{m}");
}
