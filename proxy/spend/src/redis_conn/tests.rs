use super::*;
use crate::redis_auth::ClientPem;

fn store(redis: &str) -> tollgate_config::RedisStore {
    let text = format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nproviders: [{{name: o, type: openai, passthrough: true, models: [m]}}]\nbudgets: {{store: {{type: redis, redis: {redis}}}}}\n"
    );
    match tollgate_config::from_yaml_str(&text)
        .unwrap_or_else(|e| panic!("{redis}: {e}"))
        .budgets
        .store
    {
        tollgate_config::BudgetStore::Redis(r) => r,
        other => panic!("{other:?}"),
    }
}

/// A CA and a client certificate it signed, PEM.
fn material() -> RedisSecrets {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    RedisSecrets {
        password: Some("pw".into()),
        ca: Some(ca.pem().into_bytes()),
        client: Some(ClientPem {
            cert: cert.pem().into_bytes(),
            key: key.serialize_pem().into_bytes(),
        }),
    }
}

#[tokio::test]
async fn single_cluster_and_sentinel_stores_take_a_user_and_tls() {
    let secrets = material();
    for redis in [
        "{url: 'rediss://r:6380/1', username: u}",
        "{url: 'rediss://r-0:6380', cluster: true, nodes: ['rediss://r-1:6380'], username: u}",
        "{url: 'rediss://s-0:26380', sentinel: {masterName: m}, nodes: ['rediss://s-1:26380'], username: u}",
    ] {
        connect_lazy(&store(redis), &secrets).unwrap_or_else(|e| panic!("{redis}: {e}"));
        // The CA alone, and no TLS material (the public roots).
        let ca_only = RedisSecrets {
            client: None,
            ..secrets.clone()
        };
        connect_lazy(&store(redis), &ca_only).unwrap_or_else(|e| panic!("{redis}: {e}"));
        connect_lazy(&store(redis), &RedisSecrets::default())
            .unwrap_or_else(|e| panic!("{redis}: {e}"));
    }
}

#[test]
fn describe_says_why_tls_or_a_password_failed() {
    let tls = redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "received fatal alert: CertificateRequired",
    ));
    assert_eq!(
        describe(&tls),
        "TLS: received fatal alert: CertificateRequired"
    );
    let auth = redis::RedisError::from((
        redis::ErrorKind::AuthenticationFailed,
        "Password authentication failed",
    ));
    assert!(
        describe(&auth).starts_with("authentication failed (wrong user or password?)"),
        "{}",
        describe(&auth)
    );
    let dropped =
        redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
    assert_eq!(describe(&dropped), "connection lost");
}
