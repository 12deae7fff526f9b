use std::path::Path;

use tollgate_config::{ClientCertFiles, RedisTls};

use super::*;

fn settings(dir: &Path, tls: bool, client: bool) -> RedisStore {
    let text = "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nproviders: [{name: o, type: openai, passthrough: true, models: [m]}]\nbudgets: {store: {type: redis, redis: {url: 'rediss://h'}}}\n";
    let tollgate_config::BudgetStore::Redis(mut r) =
        tollgate_config::from_yaml_str(text).unwrap().budgets.store
    else {
        unreachable!()
    };
    r.password_file = Some(dir.join("password"));
    r.tls = tls.then(|| {
        Box::new(RedisTls {
            ca_file: Some(dir.join("ca.pem")),
            client: client.then(|| ClientCertFiles {
                cert_file: dir.join("client.pem"),
                key_file: dir.join("client-key.pem"),
            }),
        })
    });
    r
}

/// A CA and a client certificate with its key, as files in `dir`.
fn write_pki(dir: &Path) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["client".into()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("client.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("client-key.pem"), key.serialize_pem()).unwrap();
    std::fs::write(dir.join("password"), "s3cret-pw\n").unwrap();
}

#[tokio::test]
async fn reads_the_password_ca_and_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let s = RedisSecrets::read(&settings(dir.path(), true, true))
        .await
        .unwrap();
    assert_eq!(s.password.as_deref(), Some("s3cret-pw"));
    assert!(s.ca.is_some() && s.client.is_some());
    let c = s.certificates().expect("TLS material");
    assert!(c.root_cert.is_some() && c.client_tls.is_some());
    let shown = format!("{s:?}");
    assert_eq!(
        shown,
        "RedisSecrets { password: \"***\", ca: \"***\", client: \"***\" }"
    );
    // Without TLS files: the password only, and no certificates for the client.
    let s = RedisSecrets::read(&settings(dir.path(), false, false))
        .await
        .unwrap();
    assert_eq!((s.ca.is_none(), s.client.is_none()), (true, true));
    assert!(s.certificates().is_none());
}

#[tokio::test]
async fn a_missing_or_broken_file_is_named_and_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    write_pki(dir.path());
    let cfg = settings(dir.path(), true, true);

    std::fs::remove_file(dir.path().join("ca.pem")).unwrap();
    let e = RedisSecrets::read(&cfg).await.unwrap_err();
    assert_eq!(e.metric_label(), "tls_file");
    let msg = e.to_string();
    assert!(msg.starts_with("cannot read the Redis CA file "), "{msg}");
    assert!(msg.contains("ca.pem"), "{msg}");

    std::fs::write(dir.path().join("ca.pem"), "not a certificate").unwrap();
    let e = RedisSecrets::read(&cfg).await.unwrap_err().to_string();
    assert!(
        e.contains("CA (file ") && e.ends_with("holds no PEM certificate"),
        "{e}"
    );

    write_pki(dir.path());
    // The certificate where the key belongs.
    std::fs::copy(
        dir.path().join("client.pem"),
        dir.path().join("client-key.pem"),
    )
    .unwrap();
    let e = RedisSecrets::read(&cfg).await.unwrap_err().to_string();
    assert!(e.contains("client key (file "), "{e}");
    assert!(e.contains("client-key.pem"), "{e}");

    std::fs::remove_file(dir.path().join("password")).unwrap();
    let e = RedisSecrets::read(&cfg).await.unwrap_err();
    assert_eq!(e.metric_label(), "password_file");
    assert!(e
        .to_string()
        .starts_with("cannot read the Redis password file "));
}

#[test]
fn the_digest_follows_every_part() {
    let base = RedisSecrets {
        password: Some("a".into()),
        ca: Some(b"ca".to_vec()),
        client: Some(ClientPem {
            cert: b"c".to_vec(),
            key: b"k".to_vec(),
        }),
    };
    let mut seen = vec![base.digest()];
    let variants = [
        RedisSecrets {
            password: None,
            ..base.clone()
        },
        RedisSecrets {
            ca: Some(b"ca2".to_vec()),
            ..base.clone()
        },
        RedisSecrets {
            client: Some(ClientPem {
                cert: b"c".to_vec(),
                key: b"k2".to_vec(),
            }),
            ..base.clone()
        },
        // The same bytes in another part are another secret.
        RedisSecrets {
            password: None,
            ca: Some(b"a".to_vec()),
            ..base.clone()
        },
    ];
    for v in variants {
        let d = v.digest();
        assert!(!seen.contains(&d), "{v:?}");
        seen.push(d);
    }
    assert_eq!(base.digest(), base.clone().digest());
}
