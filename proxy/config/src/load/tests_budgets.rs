//! Tests of `budgets:` validation.

use std::time::Duration;

use super::*;

const BASE: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {name: p, namespace: team-a}
providers:
  - name: openai
    type: openai
    credentials: {env: OPENAI_API_KEY}
    models: [gpt-4o-mini, gpt-4o]
routing:
  routes:
    - name: chat
      targets: [{provider: openai, model: gpt-4o}]
    - name: chat-cheap
      targets: [{provider: openai, model: gpt-4o-mini}]
"#;

fn with(budgets: &str) -> String {
    format!("{BASE}budgets:\n{budgets}")
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
fn absent_budgets_are_empty_defaults() {
    let c = from_yaml_str(BASE).unwrap();
    assert!(c.budgets.is_empty());
    assert_eq!(c.budgets, Budgets::default());
    assert_eq!(c.budgets.time_zone, Tz::UTC);
}

#[test]
fn full_example_loads() {
    let c = from_yaml_str(&with(
        r#"
  timeZone: Europe/Berlin
  store:
    type: memory
    persistPath: /var/lib/tollgate/budgets.json
    persistInterval: 10s
  pricing:
    unknownModel: default
    defaultPrice: {input: 5, output: 15}
    models:
      gpt-4o-mini: {input: 0.15, output: 0.60, cachedInput: 0.075}
      claude-sonnet-4-5: {input: 3, output: 15, cachedInput: 0.30, cacheWrite: 3.75}
  reservation: {defaultMaxOutputTokens: 2048}
  limits:
    - name: team-daily
      scope: header
      header: X-Tollgate-Team
      missingHeader: refuse
      window: day
      usd: 25.0
      tokens: 2000000
      action: downgrade
      downgradeTo: chat-cheap
      thresholds: [0.5, 0.9]
    - name: ns-hourly
      scope: namespace
      window: rolling
      rollingWindow: 1h
      usd: 1.5
      action: warn
  rateLimits:
    - name: per-user
      scope: header
      header: x-tollgate-user
      requestsPerMinute: 60
      tokensPerMinute: 100000
"#,
    ))
    .unwrap();
    let b = &c.budgets;
    assert!(!b.is_empty());
    assert_eq!(b.time_zone, chrono_tz::Europe::Berlin);
    assert_eq!(
        b.store,
        BudgetStore::Memory(MemoryStore {
            persist_path: Some("/var/lib/tollgate/budgets.json".into()),
            persist_interval: Duration::from_secs(10),
        })
    );
    assert_eq!(
        b.pricing.default_price,
        Some(Price {
            input: 5_000_000_000,
            output: 15_000_000_000,
            cached_input: 5_000_000_000,
            cache_write: 5_000_000_000,
        })
    );
    let mini = &b
        .pricing
        .models
        .iter()
        .find(|(m, _)| m == "gpt-4o-mini")
        .unwrap()
        .1;
    assert_eq!(mini.cached_input, 75_000_000);
    assert_eq!(
        mini.cache_write, 150_000_000,
        "cacheWrite defaults to input"
    );
    assert_eq!(b.default_max_output_tokens, 2048);
    let l = &b.limits[0];
    assert_eq!(
        l.scope,
        Scope::Header {
            name: "x-tollgate-team".into(),
            missing: MissingHeader::Refuse
        }
    );
    assert_eq!(l.window, Window::Day);
    assert_eq!(l.usd, Some(25 * NANO_PER_USD));
    assert_eq!(l.tokens, Some(2_000_000));
    assert_eq!(
        l.action,
        Action::Downgrade {
            route: "chat-cheap".into()
        }
    );
    assert_eq!(l.thresholds, [0.5, 0.9]);
    let l = &b.limits[1];
    assert_eq!(l.window, Window::Rolling(Duration::from_secs(3600)));
    assert_eq!(l.usd, Some(1_500_000_000));
    assert_eq!(l.action, Action::Warn);
    assert_eq!(l.thresholds, [0.5, 0.8, 1.0]);
    assert_eq!(b.rate_limits[0].requests_per_minute, Some(60));
    assert_eq!(b.rate_limits[0].tokens_per_minute, Some(100_000));
}

#[test]
fn redis_store_defaults() {
    let c = from_yaml_str(&with(
        r#"
  store:
    type: redis
    redis: {url: "redis://127.0.0.1:6379/0", passwordFile: /secrets/redis/password}
    failMode: closed
  limits: [{name: all, scope: policy, window: month, usd: 100}]
"#,
    ))
    .unwrap();
    assert_eq!(
        c.budgets.store,
        BudgetStore::Redis(RedisStore {
            url: "redis://127.0.0.1:6379/0".into(),
            password_file: Some("/secrets/redis/password".into()),
            key_prefix: "tollgate".into(),
            timeout: Duration::from_millis(100),
            fail_mode: FailMode::Closed,
            cluster: false,
            nodes: vec![],
            sentinel_master: None,
            username: None,
            tls: None,
        })
    );
}

#[test]
fn a_cluster_store_tags_budget_keys_and_takes_seed_nodes() {
    let c = from_yaml_str(&with(
        "  store:\n    type: redis\n    redis: {url: 'redis://10.0.0.1:7000', cluster: true, nodes: ['redis://10.0.0.2:7000'], keyPrefix: team-a}\n",
    ))
    .unwrap();
    let BudgetStore::Redis(r) = &c.budgets.store else {
        panic!("redis store")
    };
    assert!(r.cluster);
    assert_eq!(r.nodes, ["redis://10.0.0.2:7000"]);
    assert_eq!(r.budget_key_prefix(), "{team-a}");
    let plain = RedisStore {
        cluster: false,
        ..r.clone()
    };
    assert_eq!(plain.budget_key_prefix(), "team-a");

    let errs = errors(&with(
        "  store:\n    type: redis\n    redis: {url: 'redis://10.0.0.1:7000', nodes: ['http://x']}\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("nodes: only applies with `cluster: true`")),
        "{errs:?}"
    );
    assert!(errs.iter().any(|e| e.contains("nodes[0]")), "{errs:?}");
    let errs = errors(&with(
        "  store:\n    type: redis\n    redis: {url: 'redis://10.0.0.1:7000', cluster: true, keyPrefix: '{x}'}\n",
    ));
    assert!(errs.iter().any(|e| e.contains("keyPrefix")), "{errs:?}");
}

#[test]
fn default_price_implies_default_mode() {
    let c = from_yaml_str(&with("  pricing: {defaultPrice: {input: 1, output: 2}}\n")).unwrap();
    assert!(c.budgets.pricing.default_price.is_some());
    let c = from_yaml_str(&with("  pricing: {models: {m: {input: 1, output: 2}}}\n")).unwrap();
    assert_eq!(c.budgets.pricing.default_price, None);
}

#[test]
fn every_budget_error_is_reported_with_its_path() {
    let e = errors(&with(
        r#"
  timeZone: Mars/Olympus
  store:
    type: memory
    persistInterval: 0s
    failMode: closed
    redis: {url: "redis://x"}
  pricing:
    unknownModel: default
    models:
      "gpt-*": {input: -1, output: .nan}
  reservation: {defaultMaxOutputTokens: 0, leaseTimeout: 5s}
  limits:
    - name: dup
      scope: header
      window: day
    - name: dup
      scope: workload
      header: x-team
      missingHeader: refuse
      window: rolling
      rollingWindow: 90s
      usd: -3
      tokens: 0
      action: downgrade
      downgradeTo: nowhere
      thresholds: [0.8, 0.5, 2]
    - name: "bad name"
      scope: policy
      window: month
      rollingWindow: 1h
      usd: 1
      action: warn
      downgradeTo: chat
    - name: no-route
      scope: model
      window: hour
      tokens: 5
      action: downgrade
  rateLimits:
    - name: dup
      scope: header
      header: "bad header"
    - name: rl
      scope: model
      requestsPerMinute: 0
"#,
    ));
    let has = |p: &str, m: &str| e.iter().any(|x| x.starts_with(p) && x.contains(m));
    assert!(has("budgets.timeZone", "IANA"), "{e:#?}");
    assert!(has("budgets.store.persistInterval", "at least 1s"));
    assert!(has("budgets.store.failMode", "type: redis"));
    assert!(has("budgets.store.redis", "type: redis"));
    assert!(has("budgets.pricing.defaultPrice", "required"));
    assert!(has("budgets.pricing.models.gpt-*", "no wildcards"));
    assert!(has("budgets.pricing.models.gpt-*.input", "between 0"));
    assert!(has("budgets.pricing.models.gpt-*.output", "NaN"));
    assert!(has(
        "budgets.reservation.defaultMaxOutputTokens",
        "between 1"
    ));
    assert!(has("budgets.reservation.leaseTimeout", "at least 1m"));
    assert!(has("budgets.limits[0].header", "required"));
    assert!(has("budgets.limits[0]", "set `usd`, `tokens` or both"));
    assert!(has(
        "budgets.limits[1].name",
        "already the name of budgets.limits[0]"
    ));
    assert!(has("budgets.limits[1].scope", "metadata.workload"));
    assert!(has("budgets.limits[1].header", "only applies"));
    assert!(has("budgets.limits[1].missingHeader", "only applies"));
    assert!(has(
        "budgets.limits[1].rollingWindow",
        "whole number of minutes"
    ));
    assert!(has("budgets.limits[1].usd", "greater than 0"));
    assert!(has("budgets.limits[1].tokens", "between 1"));
    assert!(has(
        "budgets.limits[1].downgradeTo",
        "no route is named `nowhere`"
    ));
    assert!(has("budgets.limits[1].thresholds", "(0, 1]"));
    assert!(has("budgets.limits[1].thresholds", "ascending"));
    assert!(has("budgets.limits[2].name", "letters, digits"));
    assert!(has(
        "budgets.limits[2].rollingWindow",
        "only applies to `window: rolling`"
    ));
    assert!(has(
        "budgets.limits[2].downgradeTo",
        "only applies to `action: downgrade`"
    ));
    assert!(has("budgets.limits[3].downgradeTo", "required"));
    assert!(has("budgets.rateLimits[0].name", "already the name"));
    assert!(has("budgets.rateLimits[0].header", "not a header name"));
    assert!(has("budgets.rateLimits[0]", "requestsPerMinute"));
    assert!(has("budgets.rateLimits[1].requestsPerMinute", "between 1"));
}

#[test]
fn redis_settings_are_checked() {
    let e = errors(&with(
        r#"
  store:
    type: redis
    persistPath: /x
    redis: {url: "redis://:hunter2@db:6379", keyPrefix: "a b", timeout: 1m}
"#,
    ));
    let has = |p: &str, m: &str| e.iter().any(|x| x.starts_with(p) && x.contains(m));
    assert!(has("budgets.store.persistPath", "type: memory"), "{e:#?}");
    assert!(has("budgets.store.redis.url", "passwordFile"));
    assert!(
        !e.iter().any(|x| x.contains("hunter2")),
        "no secret in errors"
    );
    assert!(has("budgets.store.redis.keyPrefix", "without spaces"));
    assert!(has("budgets.store.redis.timeout", "at most 10s"));

    let e = errors(&with("  store: {type: redis}\n"));
    assert!(e[0].starts_with("budgets.store.redis") && e[0].contains("required"));
    for bad in ["http://x", "redis://", "redis://h:1/db", "redis"] {
        let e = errors(&with(&format!(
            "  store: {{type: redis, redis: {{url: \"{bad}\"}}}}\n"
        )));
        assert!(e[0].starts_with("budgets.store.redis.url"), "{bad}: {e:?}");
    }
    for good in [
        "redis://h",
        "rediss://user@h:6380/2",
        "redis://[::1]:6379/0?protocol=resp3",
    ] {
        from_yaml_str(&with(&format!(
            "  store: {{type: redis, redis: {{url: \"{good}\"}}}}\n"
        )))
        .unwrap_or_else(|e| panic!("{good}: {e}"));
    }
}

#[test]
fn unknown_budget_field_names_its_path() {
    let e = errors(&with(
        "  limits: [{name: a, scope: policy, window: day, usd: 1, dollars: 2}]\n",
    ));
    assert!(e[0].starts_with("budgets.limits[0]"), "{e:?}");
    assert!(e[0].contains("unknown field `dollars`"), "{e:?}");
}

#[test]
fn refuse_with_default_price_is_contradictory() {
    let e = errors(&with(
        "  pricing: {unknownModel: refuse, defaultPrice: {input: 1, output: 1}}\n",
    ));
    assert!(e[0].starts_with("budgets.pricing.defaultPrice"), "{e:?}");
}

#[test]
fn budgets_change_the_hash() {
    let a = from_yaml_str(BASE).unwrap();
    let b = from_yaml_str(&with(
        "  limits: [{name: a, scope: policy, window: day, usd: 1}]\n",
    ))
    .unwrap();
    assert_ne!(a.hash, b.hash);
}

#[test]
fn a_sentinel_store_names_its_master_and_excludes_cluster() {
    let c = from_yaml_str(&with(
        "  store:\n    type: redis\n    redis: {url: 'redis://10.0.0.1:26379', nodes: ['redis://10.0.0.2:26379'], sentinel: {masterName: mymaster}}\n",
    ))
    .unwrap();
    let BudgetStore::Redis(r) = &c.budgets.store else {
        panic!("redis store")
    };
    assert_eq!(r.sentinel_master.as_deref(), Some("mymaster"));
    assert_eq!(r.budget_key_prefix(), "tollgate");
    let errs = errors(&with(
        "  store:\n    type: redis\n    redis: {url: 'redis://10.0.0.1:26379', cluster: true, sentinel: {masterName: ' '}}\n",
    ));
    assert!(
        errs.iter()
            .any(|e| e.contains("sentinel: cannot be combined")),
        "{errs:?}"
    );
    assert!(
        errs.iter().any(|e| e.contains("sentinel.masterName")),
        "{errs:?}"
    );
}
