//! The webhook server's certificate: read from PEM files (a Secret mounted
//! by cert-manager or the chart, re-read when it changes: [`reload`]), or
//! generated at start (rcgen) with its PEM patched as `caBundle` into the
//! webhook configurations.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::ByteString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub mod reload;
#[cfg(test)]
mod tests;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM {what} found")]
    Pem { path: String, what: &'static str },
    #[error("generate certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS config: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("patch caBundle into {kind} {name}: {source}")]
    Patch {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

/// A certificate and key in PEM.
pub struct CertPem {
    pub cert: String,
    pub key: String,
}

/// A self-signed certificate for these DNS names or IPs.
pub fn generate(names: &[String]) -> Result<CertPem, TlsError> {
    let ck = rcgen::generate_simple_self_signed(names.to_vec())?;
    Ok(CertPem {
        cert: ck.cert.pem(),
        key: ck.key_pair.serialize_pem(),
    })
}

/// Reads a certificate chain and key from PEM files.
pub fn read(cert: &Path, key: &Path) -> Result<CertPem, TlsError> {
    let r = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| TlsError::Read {
            path: p.display().to_string(),
            source,
        })
    };
    Ok(CertPem {
        cert: r(cert)?,
        key: r(key)?,
    })
}

/// `pem` as a certificate chain and a signing key that matches it.
pub fn certified_key(pem: &CertPem) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut pem.cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|source| TlsError::Read {
            path: "certificate".into(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: "certificate".into(),
            what: "certificate",
        });
    }
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut pem.key.as_bytes())
        .map_err(|source| TlsError::Read {
            path: "key".into(),
            source,
        })?
        .ok_or(TlsError::Pem {
            path: "key".into(),
            what: "private key",
        })?;
    Ok(CertifiedKey::from_der(
        certs,
        key,
        &rustls::crypto::ring::default_provider(),
    )?)
}

/// The certificate the server presents; replaced while it serves, each new
/// handshake gets the current one.
pub struct CertStore(ArcSwap<CertifiedKey>);

impl CertStore {
    pub fn new(key: CertifiedKey) -> Arc<CertStore> {
        Arc::new(CertStore(ArcSwap::from_pointee(key)))
    }

    pub fn set(&self, key: CertifiedKey) {
        self.0.store(Arc::new(key));
    }

    pub fn current(&self) -> Arc<CertifiedKey> {
        self.0.load_full()
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A rustls server config (HTTP/1.1 and h2 by ALPN) presenting what `store`
/// holds at each handshake.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// Sets `caBundle` on every webhook of the named configurations.
pub async fn patch_ca_bundle(
    client: &Client,
    mutating: Option<&str>,
    validating: Option<&str>,
    ca_pem: &str,
) -> Result<(), TlsError> {
    let bundle =
        serde_json::to_value(ByteString(ca_pem.as_bytes().to_vec())).expect("bytes serialize");
    if let Some(name) = mutating {
        let api: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
        let cfg = api.get(name).await.map_err(|source| TlsError::Patch {
            kind: "MutatingWebhookConfiguration",
            name: name.into(),
            source,
        })?;
        let ops = ca_ops(cfg.webhooks.map(|w| w.len()).unwrap_or(0), &bundle);
        api.patch(name, &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
            .map_err(|source| TlsError::Patch {
                kind: "MutatingWebhookConfiguration",
                name: name.into(),
                source,
            })?;
    }
    if let Some(name) = validating {
        let api: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
        let cfg = api.get(name).await.map_err(|source| TlsError::Patch {
            kind: "ValidatingWebhookConfiguration",
            name: name.into(),
            source,
        })?;
        let ops = ca_ops(cfg.webhooks.map(|w| w.len()).unwrap_or(0), &bundle);
        api.patch(name, &PatchParams::default(), &Patch::<()>::Json(ops))
            .await
            .map_err(|source| TlsError::Patch {
                kind: "ValidatingWebhookConfiguration",
                name: name.into(),
                source,
            })?;
    }
    Ok(())
}

fn ca_ops(n: usize, bundle: &serde_json::Value) -> json_patch::Patch {
    let ops: Vec<serde_json::Value> = (0..n)
        .map(|i| serde_json::json!({"op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": bundle}))
        .collect();
    serde_json::from_value(serde_json::Value::Array(ops)).expect("valid patch")
}
