//! The webhook server's certificate, from one of:
//! - PEM files (a Secret mounted by cert-manager or the chart's `helm`
//!   generator), re-read when they change: [`reload`];
//! - a Secret read through the API and watched (`--tls-secret`): [`follow`].
//!   With `--tls-generate` the operator makes it and rotates it
//!   ([`issue`], [`stored`]), the replica holding the Lease does, and keeps
//!   the webhook configurations' `caBundle` ([`rotate`], [`ca_bundle`]);
//!   otherwise it is the user's, and its `ca.crt` may be injected the same way;
//! - generated at start, one replica only (development): [`generate`].

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use kube::Client;
use rustls::pki_types::pem::{self, PemObject as _};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

pub mod ca_bundle;
pub mod follow;
pub mod issue;
pub mod reload;
pub mod rotate;
pub mod stored;
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
    #[error("issue a certificate: {0}")]
    Issue(String),
    #[error("{verb} Secret {name}: {source}")]
    Secret {
        verb: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
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
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.cert.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            path: "certificate".into(),
            source: invalid_pem(e),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: "certificate".into(),
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(pem.key.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::Pem {
            path: "key".into(),
            what: "private key",
        },
        e => TlsError::Read {
            path: "key".into(),
            source: invalid_pem(e),
        },
    })?;
    Ok(CertifiedKey::from_der(
        certs,
        key,
        &rustls::crypto::ring::default_provider(),
    )?)
}

/// A PEM syntax or base64 error as the read error it is.
fn invalid_pem(e: pem::Error) -> std::io::Error {
    match e {
        pem::Error::Io(e) => e,
        e => std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()),
    }
}

/// The certificate the server presents; replaced while it serves, each new
/// handshake gets the current one. Empty until a Secret to serve from
/// exists: handshakes fail and the replica is not ready.
pub struct CertStore(ArcSwapOption<CertifiedKey>);

impl CertStore {
    pub fn new(key: CertifiedKey) -> Arc<CertStore> {
        Arc::new(CertStore(ArcSwapOption::from_pointee(key)))
    }

    pub fn empty() -> Arc<CertStore> {
        Arc::new(CertStore(ArcSwapOption::empty()))
    }

    pub fn set(&self, key: CertifiedKey) {
        self.0.store(Some(Arc::new(key)));
    }

    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.0.load_full()
    }

    /// Whether there is a certificate to serve (`/readyz`).
    pub fn loaded(&self) -> bool {
        self.0.load().is_some()
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CertStore")
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
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

/// Sets `caBundle` on every webhook of the named configurations (the
/// certificate generated at start).
pub async fn patch_ca_bundle(
    client: &Client,
    mutating: Option<&str>,
    validating: Option<&str>,
    ca_pem: &str,
) -> Result<(), TlsError> {
    let targets = ca_bundle::Targets {
        mutating: mutating.map(String::from),
        validating: validating.map(String::from),
    };
    ca_bundle::ensure(client, &targets, ca_pem).await?;
    Ok(())
}
