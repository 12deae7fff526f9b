//! The Secret's layout round-trips, keeps what others put on it, and says
//! what is wrong with a Secret the operator cannot use.

use k8s_openapi::jiff::Timestamp;

use super::*;
use crate::webhook::tls::issue::{plan, Policy};

fn issued() -> Issued {
    let p = Policy {
        ca_validity: std::time::Duration::from_secs(3600 * 30),
        cert_validity: std::time::Duration::from_secs(3600 * 9),
        overlap: std::time::Duration::from_secs(3600),
        names: vec!["op.ns.svc".into(), "127.0.0.1".into()],
    };
    let now: Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
    let first = plan(None, now, &p).unwrap().unwrap().next;
    let mut asked = first;
    asked.rotate = Some(Rotate::Ca);
    // Two CAs in the bundle: the order (current first) survives.
    plan(Some(&asked), now, &p).unwrap().unwrap().next
}

#[test]
fn what_is_written_is_read_back() {
    let i = issued();
    assert_eq!(i.trust.len(), 2);
    let mut s = new("webhook-certs", None);
    write(&i, &mut s);
    assert_eq!(s.type_.as_deref(), Some("kubernetes.io/tls"));
    assert_eq!(read(&s), Ok(i.clone()));
    assert_eq!(text(&s, CA_CRT), Some(i.trust.concat().as_str()));
    assert_eq!(text(&s, TLS_CRT), Some(i.cert.pem.as_str()));
}

#[test]
fn a_rewrite_keeps_other_metadata_and_clears_the_rotation_asked_for() {
    let i = issued();
    let mut s = new("webhook-certs", None);
    write(&i, &mut s);
    let notes = s.metadata.annotations.as_mut().unwrap();
    notes.insert(ROTATE.into(), "certificate".into());
    notes.insert("backup.example/keep".into(), "yes".into());
    assert_eq!(read(&s).unwrap().rotate, Some(Rotate::Certificate));
    write(&i, &mut s);
    let notes = s.metadata.annotations.as_ref().unwrap();
    assert!(!notes.contains_key(ROTATE));
    assert_eq!(notes["backup.example/keep"], "yes");
    assert_eq!(
        s.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
        "tollgate-operator"
    );
}

#[test]
fn an_unusable_secret_says_why() {
    let i = issued();
    let mut s = new("webhook-certs", None);
    write(&i, &mut s);
    let mut no_key = s.clone();
    no_key.data.as_mut().unwrap().remove("ca.key");
    assert_eq!(read(&no_key), Err("no `ca.key`".to_string()));
    let mut wrong_ca = s.clone();
    wrong_ca
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert("tollgate.dev/ca".into(), "00".into());
    assert_eq!(
        read(&wrong_ca),
        Err("`ca.crt` does not hold the CA 00".to_string())
    );
    let mut asked = s.clone();
    asked
        .metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(ROTATE.into(), "everything".into());
    assert!(read(&asked)
        .unwrap_err()
        .contains("neither `certificate` nor `ca`"));
    // A user's Secret (cert-manager's layout) is not the operator's.
    let user = Secret {
        data: s.data.clone(),
        ..Default::default()
    };
    assert_eq!(
        read(&user),
        Err("no annotation `tollgate.dev/ca`".to_string())
    );
}
