//! Tests of a `redis:` block's authentication: ACL user, TLS files.

use super::*;

const BASE: &str = r#"
apiVersion: tollgate.dev/v1alpha1
kind: ProxyConfig
metadata: {name: p}
providers:
  - {name: openai, type: openai, credentials: {env: OPENAI_API_KEY}, models: [gpt-4o-mini]}
"#;

/// A config whose budgets and cache both use `redis`.
fn with(redis: &str) -> String {
    format!(
        "{BASE}budgets:\n  store: {{type: redis, redis: {redis}}}\ncache:\n  store: {{type: redis, redis: {redis}}}\n"
    )
}

fn errors(redis: &str) -> Vec<String> {
    match from_yaml_str(&with(redis)) {
        Ok(_) => panic!("expected an error for {redis}"),
        Err(e) => e
            .field_errors()
            .into_iter()
            .map(|f| f.to_string())
            .collect(),
    }
}

fn stores(redis: &str) -> (RedisStore, RedisStore) {
    let c = from_yaml_str(&with(redis)).unwrap_or_else(|e| panic!("{redis}: {e}"));
    match (c.budgets.store, c.cache.store) {
        (BudgetStore::Redis(b), CacheStore::Redis(c)) => (b, c),
        other => panic!("{other:?}"),
    }
}

#[test]
fn tls_files_and_an_acl_user_are_kept_for_both_stores() {
    let (b, c) = stores(
        "{url: 'rediss://redis.support.svc:6380/0', username: tollgate, passwordFile: /s/pw, \
         tls: {caFile: /s/ca.crt, certFile: /s/tls.crt, keyFile: /s/tls.key}}",
    );
    assert_eq!(b, c);
    assert_eq!(b.username.as_deref(), Some("tollgate"));
    assert_eq!(
        b.tls,
        Some(Box::new(RedisTls {
            ca_file: Some("/s/ca.crt".into()),
            client: Some(ClientCertFiles {
                cert_file: "/s/tls.crt".into(),
                key_file: "/s/tls.key".into(),
            }),
        }))
    );
    // A CA alone (server-side TLS), and the user named in the URL.
    let (b, _) = stores("{url: 'rediss://tollgate@h:6380', tls: {caFile: /s/ca.crt}}");
    assert_eq!(b.username.as_deref(), Some("tollgate"));
    assert_eq!(b.tls.unwrap().client, None);
    // rediss:// alone trusts the public roots.
    let (b, _) = stores("{url: 'rediss://h:6380'}");
    assert_eq!(b.tls, None);
}

#[test]
fn tls_settings_that_cannot_work_name_their_field() {
    let has = |e: &[String], p: &str, m: &str| {
        e.iter()
            .any(|x| x.starts_with(&format!("budgets.store.redis.{p}")) && x.contains(m))
            && e.iter()
                .any(|x| x.starts_with(&format!("cache.store.redis.{p}")) && x.contains(m))
    };
    let e = errors("{url: 'redis://h', tls: {caFile: /s/ca}}");
    assert!(has(&e, "tls", "rediss://"), "{e:#?}");
    let e = errors("{url: 'rediss://h', tls: {certFile: /s/c}}");
    assert!(has(&e, "tls.keyFile", "required with `certFile`"), "{e:#?}");
    let e = errors("{url: 'rediss://h', tls: {keyFile: /s/k}}");
    assert!(
        has(&e, "tls.certFile", "a key without its certificate"),
        "{e:#?}"
    );
    let e = errors("{url: 'rediss://h', tls: {caFile: ' '}}");
    assert!(has(&e, "tls.caFile", "must not be empty"), "{e:#?}");
    let e = errors("{url: 'rediss://h', cluster: true, nodes: ['redis://h2']}");
    assert!(has(&e, "nodes", "mixes redis:// and rediss://"), "{e:#?}");
    let e = errors("{url: 'rediss://h', tls: {caFile: /s/ca, cert: /s/c}}");
    assert!(
        e.iter().any(|x| x.contains("unknown field `cert`")),
        "{e:#?}"
    );
}

#[test]
fn the_user_is_named_once_and_never_with_a_password() {
    let e = errors("{url: 'redis://a@h', username: b}");
    assert!(
        e.iter()
            .any(|x| x.starts_with("budgets.store.redis.username") && x.contains("set one")),
        "{e:#?}"
    );
    let e = errors("{url: 'redis://h', username: 'two words'}");
    assert!(
        e.iter()
            .any(|x| x.starts_with("budgets.store.redis.username") && x.contains("without spaces")),
        "{e:#?}"
    );
    let e = errors("{url: 'rediss://tollgate:s3cret@h'}");
    assert!(e.iter().any(|x| x.contains("passwordFile")), "{e:#?}");
    assert!(!e.iter().any(|x| x.contains("s3cret")), "{e:#?}");
}

#[test]
fn tls_and_user_change_the_hash_and_the_store() {
    let plain = from_yaml_str(&with("{url: 'rediss://h'}")).unwrap();
    let tls = from_yaml_str(&with("{url: 'rediss://h', tls: {caFile: /s/ca}}")).unwrap();
    let user = from_yaml_str(&with("{url: 'rediss://h', username: u}")).unwrap();
    assert_ne!(plain.hash, tls.hash);
    assert_ne!(plain.hash, user.hash);
    assert_ne!(plain.budgets.store, tls.budgets.store);
    assert_ne!(plain.budgets.store, user.budgets.store);
}
