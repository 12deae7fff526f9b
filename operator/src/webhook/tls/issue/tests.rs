//! The rotation rules on a simulated clock: what is made when, and that an
//! API server holding any bundle of the last `overlap` trusts whatever
//! certificate any replica may serve in that time.

use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

use super::*;

const HOUR: Duration = Duration::from_secs(3600);

fn policy() -> Policy {
    Policy {
        ca_validity: 30 * HOUR,
        cert_validity: 9 * HOUR,
        overlap: HOUR,
        names: vec![
            "tollgate-operator.tollgate-system.svc".into(),
            "127.0.0.1".into(),
        ],
    }
}

fn t0() -> Timestamp {
    "2030-01-01T00:00:00Z".parse().unwrap()
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

fn trusts(issued: &Issued, leaf_pem: &str, at: Timestamp) -> bool {
    verify(
        &der(leaf_pem),
        &issued.trust.concat(),
        "tollgate-operator.tollgate-system.svc",
        at,
    )
    .is_ok()
}

fn created(at: Timestamp) -> Issued {
    plan(None, at, &policy()).unwrap().unwrap().next
}

#[test]
fn a_first_plan_makes_a_ca_and_a_certificate_it_signed() {
    let now = t0();
    let i = created(now);
    assert_eq!(i.trust, vec![i.ca.pem.clone()]);
    assert_eq!(i.cert.issuer, i.ca.id);
    assert_eq!(i.cert.not_after, add(now, 9 * HOUR));
    assert_eq!(i.ca.not_after, add(now, 30 * HOUR));
    assert!(trusts(&i, &i.cert.pem, now));
    // For its IP too (the chart's webhook.url case).
    verify(&der(&i.cert.pem), &i.ca.pem, "127.0.0.1", now).unwrap();
    // A name it was not made for is refused.
    assert!(verify(&der(&i.cert.pem), &i.ca.pem, "other.example", now).is_err());
    // Nothing to do until a third of its validity is left.
    assert!(plan(Some(&i), add(now, 5 * HOUR), &policy())
        .unwrap()
        .is_none());
    assert_eq!(next_due(&i, &policy()), add(now, 6 * HOUR));
}

#[test]
fn the_certificate_is_renewed_with_a_third_left_by_the_same_ca() {
    let now = t0();
    let i = created(now);
    let at = add(now, 6 * HOUR);
    let c = plan(Some(&i), at, &policy()).unwrap().unwrap();
    assert_eq!(c.reasons, vec!["certificate due for renewal"]);
    assert_eq!(
        (c.next.ca.clone(), c.next.trust.clone()),
        (i.ca.clone(), i.trust.clone())
    );
    assert_ne!(c.next.cert.pem, i.cert.pem);
    assert_eq!(c.next.cert.issued, at);
    assert!(
        trusts(&i, &c.next.cert.pem, at),
        "the bundle API servers hold trusts it"
    );
}

#[test]
fn a_certificate_never_outlives_its_ca() {
    let p = Policy {
        cert_validity: 100 * HOUR,
        ..policy()
    };
    let i = plan(None, t0(), &p).unwrap().unwrap().next;
    assert_eq!(i.cert.not_after, i.ca.not_after);
}

#[test]
fn a_new_ca_is_trusted_for_the_overlap_before_it_signs_and_the_old_one_after() {
    let p = policy();
    let now = t0();
    let mut i = created(now);
    // Keep the certificate fresh until the CA is due (20 h).
    i.cert.issued = add(now, 19 * HOUR);
    i.cert.not_after = add(now, 28 * HOUR);
    let due = add(now, 20 * HOUR);
    assert_eq!(next_due(&i, &p), due);

    let c = plan(Some(&i), due, &p).unwrap().unwrap();
    assert_eq!(
        c.reasons,
        vec!["CA due for renewal: new CA trusted beside the old one"]
    );
    let rotated = c.next;
    assert_eq!(
        rotated.trust,
        vec![rotated.ca.pem.clone(), i.ca.pem.clone()]
    );
    assert_eq!(
        rotated.cert, i.cert,
        "still served by the old CA's certificate"
    );
    assert_eq!(next_due(&rotated, &p), add(due, HOUR));
    assert!(
        plan(Some(&rotated), add(due, HOUR - Duration::from_secs(1)), &p)
            .unwrap()
            .is_none()
    );

    let switch = add(due, HOUR);
    let c = plan(Some(&rotated), switch, &p).unwrap().unwrap();
    assert_eq!(c.reasons, vec!["certificate switched to the new CA"]);
    let switched = c.next;
    assert_eq!(switched.cert.issuer, rotated.ca.id);
    assert_eq!(
        switched.trust.len(),
        2,
        "the old CA stays while replicas switch"
    );
    assert!(trusts(&rotated, &switched.cert.pem, switch));
    assert_eq!(next_due(&switched, &p), add(switch, HOUR));

    let c = plan(Some(&switched), add(switch, HOUR), &p)
        .unwrap()
        .unwrap();
    assert_eq!(c.reasons, vec!["previous CA no longer trusted"]);
    assert_eq!(c.next.trust, vec![rotated.ca.pem.clone()]);
    assert!(trusts(&c.next, &switched.cert.pem, add(switch, HOUR)));
    assert!(!trusts(&c.next, &i.cert.pem, add(switch, HOUR)));
}

#[test]
fn an_expiring_certificate_is_renewed_by_the_new_ca_before_the_overlap_ends() {
    let p = policy();
    let now = t0();
    let mut i = created(now);
    i.rotate = Some(Rotate::Ca);
    let rotated = plan(Some(&i), now, &p).unwrap().unwrap().next;
    // The old certificate expires 30 min into the overlap: renewed at once.
    let mut expiring = rotated.clone();
    expiring.cert.not_after = add(now, HOUR / 2);
    let at = add(now, HOUR / 3);
    let c = plan(Some(&expiring), at, &p).unwrap().unwrap();
    assert_eq!(c.next.cert.issuer, rotated.ca.id);
    assert_eq!(c.reasons, vec!["certificate due for renewal"]);
}

#[test]
fn rotations_asked_for_on_the_secret() {
    let p = policy();
    let now = t0();
    let mut i = created(now);
    i.rotate = Some(Rotate::Certificate);
    let c = plan(Some(&i), add(now, HOUR), &p).unwrap().unwrap();
    assert_eq!(c.reasons, vec!["certificate rotation asked for"]);
    assert_eq!((c.next.rotate, c.next.ca.clone()), (None, i.ca.clone()));
    assert_ne!(c.next.cert.pem, i.cert.pem);

    i.rotate = Some(Rotate::Ca);
    let c = plan(Some(&i), add(now, HOUR), &p).unwrap().unwrap();
    assert_eq!(
        c.reasons,
        vec!["CA rotation asked for: new CA trusted beside the old one"]
    );
    assert_eq!((c.next.rotate, c.next.trust.len()), (None, 2));
    assert_eq!(c.next.cert, i.cert);

    // A certificate asked for while the new CA is not trusted long enough:
    // the switch at the overlap's end renews it; the request is done.
    let mut waiting = c.next;
    waiting.rotate = Some(Rotate::Certificate);
    let c = plan(Some(&waiting), add(now, HOUR + HOUR / 2), &p)
        .unwrap()
        .unwrap();
    assert_eq!(c.next.cert, waiting.cert);
    assert_eq!(c.next.rotate, None);
}

#[test]
fn new_names_get_a_new_certificate() {
    let now = t0();
    let i = created(now);
    let p = Policy {
        names: vec![
            "tollgate-operator.tollgate-system.svc".into(),
            "op.example.test".into(),
        ],
        ..policy()
    };
    let c = plan(Some(&i), add(now, HOUR), &p).unwrap().unwrap();
    assert_eq!(c.reasons, vec!["certificate names changed"]);
    verify(
        &der(&c.next.cert.pem),
        &i.ca.pem,
        "op.example.test",
        add(now, HOUR),
    )
    .unwrap();
}

/// Every 10 minutes over three CA lifetimes: whatever the leader writes, an
/// API server that still holds any bundle of the last `overlap` trusts
/// every certificate a replica may serve in that time (one written within
/// the last `overlap`, replicas being slow to follow), and none has expired.
#[test]
fn trust_is_continuous_across_renewals_and_ca_rotations() {
    let p = policy();
    let step = Duration::from_secs(600);
    let mut now = t0();
    let mut issued = created(now);
    // (since, bundle) and (since, certificate), newest last.
    let mut bundles = vec![(now, issued.clone())];
    let mut certs = vec![(now, issued.cert.pem.clone())];
    let (mut renewals, mut cas) = (0, 0);
    for _ in 0..(90 * 6) {
        now = add(now, step);
        if let Some(c) = plan(Some(&issued), now, &p).unwrap() {
            if c.next.ca.id != issued.ca.id {
                cas += 1;
            }
            if c.next.cert.pem != issued.cert.pem {
                renewals += 1;
                certs.push((now, c.next.cert.pem.clone()));
            }
            if c.next.trust != issued.trust {
                bundles.push((now, c.next.clone()));
            }
            issued = c.next;
        }
        assert!(
            issued.cert.not_after > now,
            "the served certificate expired at {now}"
        );
        for b in &bundles[window(&bundles, now - p.overlap)] {
            for c in &certs[window(&certs, now - p.overlap)] {
                assert!(
                    trusts(&b.1, &c.1, now),
                    "at {now}: a bundle since {} does not trust a certificate since {}",
                    b.0,
                    c.0
                );
            }
        }
    }
    assert!(
        cas >= 3 && renewals >= 10,
        "{cas} CA rotations, {renewals} certificates"
    );
}

/// The entries (each in effect from its time until the next's) in effect
/// at some point from `from` on.
fn window<T>(since: &[(Timestamp, T)], from: Timestamp) -> std::ops::Range<usize> {
    let first = since.iter().rposition(|(t, _)| *t <= from).unwrap_or(0);
    first..since.len()
}

#[test]
fn durations_as_the_chart_writes_them() {
    assert_eq!(parse_duration("8760h"), Ok(8760 * HOUR));
    assert_eq!(
        parse_duration("1h30m"),
        Ok(HOUR + 30 * 60 * Duration::from_secs(1))
    );
    assert_eq!(parse_duration("45s"), Ok(Duration::from_secs(45)));
    for bad in [
        "",
        "0s",
        "10",
        "1d",
        "h",
        "1.5h",
        "-1h",
        "99999999999999999999h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}
