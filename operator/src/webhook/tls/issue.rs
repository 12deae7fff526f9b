//! The operator's own CA and serving certificate (`--tls-generate`): what
//! the managed Secret should hold at a given time, as a pure function of
//! what it holds now ([`plan`]), so every rotation rule is unit-tested
//! without a clock or an API server.
//!
//! The rules, each run by the replica holding the Lease:
//! - A certificate (CA or serving) is replaced once a third of its validity
//!   is left, or when the Secret asks (`tollgate.dev/rotate`).
//! - A new CA joins the trust bundle (`ca.crt`, the webhooks' `caBundle`)
//!   beside the old one; the serving certificate switches to it only after
//!   `overlap`, so every API server trusts the new CA before any replica
//!   presents a certificate it signed.
//! - The old CA leaves the bundle `overlap` after the switch, once every
//!   replica serves the new certificate (they follow the Secret's watch
//!   within moments).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

use super::TlsError;

#[cfg(test)]
mod tests;

/// Certificates are valid from this long before they are made, so an API
/// server whose clock is a little behind accepts them at once.
const SKEW: Duration = Duration::from_secs(300);

/// How the operator issues and rotates.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub ca_validity: Duration,
    pub cert_validity: Duration,
    /// How long a new CA is trusted before the serving certificate switches
    /// to it, and the old CA kept after the switch.
    pub overlap: Duration,
    /// DNS names and IPs of the serving certificate; the first is its CN.
    pub names: Vec<String>,
}

/// What the managed Secret holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// The CAs the webhooks trust, PEM, the current one first.
    pub trust: Vec<String>,
    pub ca: Ca,
    pub cert: Leaf,
    /// A rotation asked for on the Secret, not yet done.
    pub rotate: Option<Rotate>,
}

/// The CA that signs serving certificates.
#[derive(Debug, Clone, PartialEq)]
pub struct Ca {
    pub pem: String,
    pub key: String,
    pub issued: Timestamp,
    pub not_after: Timestamp,
    /// SHA-256 of its DER, hex: how a serving certificate names its issuer.
    pub id: String,
}

/// The serving certificate.
#[derive(Debug, Clone, PartialEq)]
pub struct Leaf {
    pub pem: String,
    pub key: String,
    pub issued: Timestamp,
    pub not_after: Timestamp,
    /// The [`Ca::id`] of its issuer.
    pub issuer: String,
    pub names: Vec<String>,
}

/// A rotation asked for with the Secret's `tollgate.dev/rotate` annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotate {
    /// A new serving certificate now.
    Certificate,
    /// A new CA now, with the usual overlap.
    Ca,
}

impl Rotate {
    pub fn parse(s: &str) -> Option<Rotate> {
        match s {
            "certificate" => Some(Rotate::Certificate),
            "ca" => Some(Rotate::Ca),
            _ => None,
        }
    }
}

/// A new Secret content, and why.
#[derive(Debug)]
pub struct Change {
    pub next: Issued,
    pub reasons: Vec<&'static str>,
}

/// What the Secret should hold at `now`, when that differs from `current`
/// (`None`: there is no usable Secret yet).
pub fn plan(
    current: Option<&Issued>,
    now: Timestamp,
    policy: &Policy,
) -> Result<Option<Change>, TlsError> {
    let now = whole_seconds(now);
    let Some(current) = current else {
        let ca = new_ca(now, policy)?;
        let cert = new_leaf(&ca, now, policy)?;
        let next = Issued {
            trust: vec![ca.pem.clone()],
            ca,
            cert,
            rotate: None,
        };
        return Ok(Some(Change {
            next,
            reasons: vec!["created"],
        }));
    };
    let mut next = current.clone();
    let mut reasons = Vec::new();
    let asked = next.rotate.take();
    if asked == Some(Rotate::Ca) || third_left(next.ca.issued, next.ca.not_after, now) {
        let ca = new_ca(now, policy)?;
        next.trust.insert(0, ca.pem.clone());
        next.ca = ca;
        reasons.push(if asked == Some(Rotate::Ca) {
            "CA rotation asked for: new CA trusted beside the old one"
        } else {
            "CA due for renewal: new CA trusted beside the old one"
        });
    }

    let cert = &next.cert;
    let switched = cert.issuer == next.ca.id;
    let switch_at = add(next.ca.issued, policy.overlap);
    let why = if asked == Some(Rotate::Certificate) {
        Some("certificate rotation asked for")
    } else if third_left(cert.issued, cert.not_after, now) {
        Some("certificate due for renewal")
    } else if cert.names != policy.names {
        Some("certificate names changed")
    } else if !switched && now >= switch_at {
        Some("certificate switched to the new CA")
    } else {
        None
    };
    // Signed by a CA that API servers may not trust yet: wait for the
    // overlap, unless the certificate would expire meanwhile.
    let may_sign = switched || now >= switch_at || cert.not_after <= switch_at;
    if let (Some(why), true) = (why, may_sign) {
        next.cert = new_leaf(&next.ca, now, policy)?;
        reasons.push(why);
    }

    if next.trust.len() > 1
        && next.cert.issuer == next.ca.id
        && now >= add(next.cert.issued, policy.overlap)
    {
        next.trust.truncate(1);
        reasons.push("previous CA no longer trusted");
    }
    if next == *current {
        return Ok(None);
    }
    if reasons.is_empty() {
        reasons.push("rotation asked for: nothing to do until the overlap ends");
    }
    Ok(Some(Change { next, reasons }))
}

/// When [`plan`] next has something to do for `issued` (unless asked).
pub fn next_due(issued: &Issued, policy: &Policy) -> Timestamp {
    let (ca, cert) = (&issued.ca, &issued.cert);
    let mut due = renewal(ca.issued, ca.not_after).min(renewal(cert.issued, cert.not_after));
    if cert.issuer != ca.id {
        due = due.min(add(ca.issued, policy.overlap));
    } else if issued.trust.len() > 1 {
        due = due.min(add(cert.issued, policy.overlap));
    }
    due
}

/// Whether `leaf` (DER) chains to one of the PEM `trust` CAs for `name` at `at`.
pub fn verify(
    leaf: &CertificateDer<'_>,
    trust: &str,
    name: &str,
    at: Timestamp,
) -> Result<(), TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_slice_iter(trust.as_bytes()).flatten() {
        roots.add(ca)?;
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| TlsError::Issue(format!("trust bundle: {e}")))?;
    let name = ServerName::try_from(name.to_string())
        .map_err(|e| TlsError::Issue(format!("server name {name}: {e}")))?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(at.as_second().max(0) as u64));
    verifier.verify_server_cert(leaf, &[], &name, &[], at)?;
    Ok(())
}

/// SHA-256 of a certificate's DER, hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Whether a third or less of `issued..not_after` is left at `now`.
fn third_left(issued: Timestamp, not_after: Timestamp, now: Timestamp) -> bool {
    now >= renewal(issued, not_after)
}

fn renewal(issued: Timestamp, not_after: Timestamp) -> Timestamp {
    let life = not_after.duration_since(issued);
    not_after - life / 3
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.saturating_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .expect("a saturating add of a signed duration")
}

fn whole_seconds(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).expect("within the range of a timestamp")
}

/// Sets the validity (rcgen's dates are the `time` crate's, which the
/// operator does not name: built from the epoch).
fn validity(p: &mut CertificateParams, from: Timestamp, until: Timestamp) {
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    let secs = |t: Timestamp| Duration::from_secs(t.as_second().max(0) as u64);
    p.not_before = epoch + secs(from) - SKEW;
    p.not_after = epoch + secs(until);
}

/// The CA's parameters: its name comes from when it was made, so the same
/// issuer can be rebuilt from the Secret to sign with (rcgen signs with the
/// issuer's name and key only).
fn ca_params(issued: Timestamp, not_after: Timestamp) -> Result<CertificateParams, TlsError> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(
        DnType::CommonName,
        format!("tollgate-webhook-ca-{}", issued.as_second()),
    );
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut p, issued, not_after);
    Ok(p)
}

fn new_ca(now: Timestamp, policy: &Policy) -> Result<Ca, TlsError> {
    let key = KeyPair::generate()?;
    let not_after = add(now, policy.ca_validity);
    let cert = ca_params(now, not_after)?.self_signed(&key)?;
    Ok(Ca {
        pem: cert.pem(),
        key: key.serialize_pem(),
        issued: now,
        not_after,
        id: fingerprint(cert.der()),
    })
}

fn new_leaf(ca: &Ca, now: Timestamp, policy: &Policy) -> Result<Leaf, TlsError> {
    let first = policy
        .names
        .first()
        .ok_or_else(|| TlsError::Issue("no name for the serving certificate".into()))?;
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(policy.names.clone())?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, first.as_str());
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.use_authority_key_identifier_extension = true;
    // Never past its CA: a chain is only as valid as its issuer.
    let not_after = add(now, policy.cert_validity).min(ca.not_after);
    validity(&mut p, now, not_after);
    let ca_key = KeyPair::from_pem(&ca.key)?;
    let issuer = ca_params(ca.issued, ca.not_after)?.self_signed(&ca_key)?;
    let cert = p.signed_by(&key, &issuer, &ca_key)?;
    // What is written must be what API servers accept: checked against
    // the CA as stored, not the issuer rebuilt to sign with.
    verify(cert.der(), &ca.pem, first, now).map_err(|e| {
        TlsError::Issue(format!(
            "the new certificate does not verify against the stored CA: {e}"
        ))
    })?;
    Ok(Leaf {
        pem: cert.pem(),
        key: key.serialize_pem(),
        issued: now,
        not_after,
        issuer: ca.id.clone(),
        names: policy.names.clone(),
    })
}

/// Parses a duration such as `8760h`, `90m`, `1h30m` or `45s` (whole units
/// of h, m and s, as the chart's values are written).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("`{s}`: expected a duration such as 8760h, 90m or 45s");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
        digits.clear();
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(Duration::from_secs(total))
}
