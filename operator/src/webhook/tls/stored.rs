//! The managed Secret's layout: `tls.crt`/`tls.key` (what every replica
//! serves), `ca.crt` (the CAs the webhooks trust, the `caBundle`),
//! `ca.key`, and annotations recording when each certificate was made and
//! expires, so whichever replica leads next continues the same schedule.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

use super::issue::{fingerprint, Ca, Issued, Leaf, Rotate};

#[cfg(test)]
mod tests;

pub const TLS_CRT: &str = "tls.crt";
pub const TLS_KEY: &str = "tls.key";
pub const CA_CRT: &str = "ca.crt";
const CA_KEY: &str = "ca.key";

const CA_ID: &str = "tollgate.dev/ca";
const CA_ISSUED: &str = "tollgate.dev/ca-issued-at";
const CA_NOT_AFTER: &str = "tollgate.dev/ca-not-after";
const CERT_ISSUER: &str = "tollgate.dev/certificate-issuer";
const CERT_ISSUED: &str = "tollgate.dev/certificate-issued-at";
const CERT_NOT_AFTER: &str = "tollgate.dev/certificate-not-after";
const CERT_NAMES: &str = "tollgate.dev/certificate-names";
/// Set by a person (`certificate` or `ca`); removed once done.
pub const ROTATE: &str = "tollgate.dev/rotate";

/// A key of the Secret's data, as text.
pub fn text<'a>(s: &'a Secret, key: &str) -> Option<&'a str> {
    let v = s.data.as_ref()?.get(key)?;
    std::str::from_utf8(&v.0).ok()
}

/// Reads what [`write`] wrote; `Err` names what is missing or wrong (the
/// Secret was not made by the operator, or was edited).
pub fn read(s: &Secret) -> Result<Issued, String> {
    let data = |k: &str| text(s, k).ok_or_else(|| format!("no `{k}`"));
    let notes = s.metadata.annotations.clone().unwrap_or_default();
    let note = |k: &str| {
        notes
            .get(k)
            .map(String::as_str)
            .ok_or_else(|| format!("no annotation `{k}`"))
    };
    let time = |k: &str| {
        note(k)?
            .parse::<Timestamp>()
            .map_err(|e| format!("annotation `{k}`: {e}"))
    };
    let ca_id = note(CA_ID)?;
    let mut trust = Vec::new();
    for der in CertificateDer::pem_slice_iter(data(CA_CRT)?.as_bytes()) {
        let der = der.map_err(|e| format!("`{CA_CRT}`: {e}"))?;
        trust.push((fingerprint(&der), pem(&der)));
    }
    // The current CA first, the others in their order.
    let at = trust
        .iter()
        .position(|(id, _)| id == ca_id)
        .ok_or_else(|| format!("`{CA_CRT}` does not hold the CA {ca_id}"))?;
    let current = trust.remove(at);
    let ca = Ca {
        pem: current.1.clone(),
        key: data(CA_KEY)?.to_string(),
        issued: time(CA_ISSUED)?,
        not_after: time(CA_NOT_AFTER)?,
        id: current.0.clone(),
    };
    let cert = Leaf {
        pem: data(TLS_CRT)?.to_string(),
        key: data(TLS_KEY)?.to_string(),
        issued: time(CERT_ISSUED)?,
        not_after: time(CERT_NOT_AFTER)?,
        issuer: note(CERT_ISSUER)?.to_string(),
        names: note(CERT_NAMES)?
            .split(',')
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect(),
    };
    let rotate = match notes.get(ROTATE) {
        None => None,
        Some(v) => Some(Rotate::parse(v).ok_or_else(|| {
            format!("annotation `{ROTATE}`: `{v}` is neither `certificate` nor `ca`")
        })?),
    };
    Ok(Issued {
        trust: std::iter::once(current.1)
            .chain(trust.into_iter().map(|(_, p)| p))
            .collect(),
        ca,
        cert,
        rotate,
    })
}

/// Writes `issued` into `s` (a new Secret, or the current one, whose other
/// labels, annotations and owners are kept).
pub fn write(issued: &Issued, s: &mut Secret) {
    s.type_ = Some("kubernetes.io/tls".into());
    let bytes = |v: &str| ByteString(v.as_bytes().to_vec());
    s.data = Some(BTreeMap::from([
        (TLS_CRT.to_string(), bytes(&issued.cert.pem)),
        (TLS_KEY.to_string(), bytes(&issued.cert.key)),
        (CA_CRT.to_string(), bytes(&issued.trust.concat())),
        (CA_KEY.to_string(), bytes(&issued.ca.key)),
    ]));
    let notes = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
    notes.remove(ROTATE);
    for (k, v) in [
        (CA_ID, issued.ca.id.clone()),
        (CA_ISSUED, issued.ca.issued.to_string()),
        (CA_NOT_AFTER, issued.ca.not_after.to_string()),
        (CERT_ISSUER, issued.cert.issuer.clone()),
        (CERT_ISSUED, issued.cert.issued.to_string()),
        (CERT_NOT_AFTER, issued.cert.not_after.to_string()),
        (CERT_NAMES, issued.cert.names.join(",")),
    ] {
        notes.insert(k.to_string(), v);
    }
    let labels = s.metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.insert(
        "app.kubernetes.io/managed-by".into(),
        "tollgate-operator".into(),
    );
    labels.insert("app.kubernetes.io/part-of".into(), "tollgate".into());
}

/// A new Secret `name`, owned by `owner` (the Lease: deleted with the
/// release, so `helm uninstall` leaves no Secret behind).
pub fn new(name: &str, owner: Option<OwnerReference>) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.into()),
            owner_references: owner.map(|o| vec![o]),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// PEM of one certificate (64-character lines).
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
