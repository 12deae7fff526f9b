//! What a replica serves as the Secret it follows changes: nothing until it
//! exists, each new pair, never a broken one, and the last one after a
//! deletion.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use super::*;

fn secret(cert: &str, key: &str) -> Secret {
    let b = |v: &str| ByteString(v.as_bytes().to_vec());
    Secret {
        data: Some(BTreeMap::from([
            (TLS_CRT.to_string(), b(cert)),
            (TLS_KEY.to_string(), b(key)),
        ])),
        ..Default::default()
    }
}

fn pair() -> (String, String) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (ck.cert.pem(), ck.key_pair.serialize_pem())
}

#[test]
fn serves_each_good_pair_and_keeps_the_last_one() {
    let metrics = Metrics::new();
    let mut serving = Serving {
        store: CertStore::empty(),
        metrics: metrics.clone(),
        last: None,
        name: "webhook-certs".into(),
    };
    let reloads = |r: &str| metrics.tls_reloads.with_label_values(&[r]).get();
    serving.take(None);
    assert!(
        !serving.store.loaded(),
        "nothing to serve before the Secret exists"
    );

    let (c1, k1) = pair();
    serving.take(Some(&secret(&c1, &k1)));
    let first = serving.store.current().expect("loaded");
    assert_eq!(
        (reloads("success"), reloads("failure")),
        (0, 0),
        "a first load is no reload"
    );

    // The same pair again (a resync, an annotation edit): nothing happens.
    serving.take(Some(&secret(&c1, &k1)));
    assert!(Arc::ptr_eq(&first, &serving.store.current().unwrap()));

    let (c2, k2) = pair();
    serving.take(Some(&secret(&c2, &k2)));
    let second = serving.store.current().unwrap();
    assert!(!Arc::ptr_eq(&first, &second));
    assert_eq!(reloads("success"), 1);

    // A key that does not match its certificate is refused.
    serving.take(Some(&secret(&c1, &k2)));
    assert!(Arc::ptr_eq(&second, &serving.store.current().unwrap()));
    assert_eq!(reloads("failure"), 1);

    // Deleted, or without its keys: the last good pair stays.
    serving.take(None);
    serving.take(Some(&Secret::default()));
    assert!(Arc::ptr_eq(&second, &serving.store.current().unwrap()));
}
