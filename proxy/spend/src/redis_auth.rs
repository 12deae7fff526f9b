//! What a connection to Redis proves itself with: the password of its ACL
//! user and, over TLS, the CA it trusts and the client certificate it
//! shows. The proxy reads them from the files its config names (mounted
//! Secrets); the operator from the Secrets themselves. They are never
//! printed: `Debug` says which are set, and errors name files, not
//! contents.

use std::fmt;
use std::path::{Path, PathBuf};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use tollgate_config::RedisStore;

/// The password and TLS material of one store.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct RedisSecrets {
    pub password: Option<String>,
    /// PEM: the CA certificates trusted instead of the public roots.
    pub ca: Option<Vec<u8>>,
    /// PEM: the client certificate (chain) and its private key.
    pub client: Option<ClientPem>,
}

/// A client certificate and its key, PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl fmt::Debug for RedisSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |b: bool| if b { "***" } else { "unset" };
        f.debug_struct("RedisSecrets")
            .field("password", &set(self.password.is_some()))
            .field("ca", &set(self.ca.is_some()))
            .field("client", &set(self.client.is_some()))
            .finish()
    }
}

/// Why a store's password or TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the Redis {what} file {path}: {source}")]
    File {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `from`: where it came from (`file /x`, `Secret s key k`).
    #[error("the Redis {what} ({from}) {problem}")]
    Pem {
        what: &'static str,
        from: String,
        problem: String,
    },
}

impl SecretError {
    /// Which of the files failed, for metrics and logs.
    pub fn metric_label(&self) -> &'static str {
        match self {
            SecretError::File { what, .. } | SecretError::Pem { what, .. } => match *what {
                PASSWORD => "password_file",
                _ => "tls_file",
            },
        }
    }
}

pub const PASSWORD: &str = "password";
pub const CA: &str = "CA";
pub const CLIENT_CERT: &str = "client certificate";
pub const CLIENT_KEY: &str = "client key";

impl RedisSecrets {
    /// Reads the files `settings` names and checks the PEM ones parse.
    pub async fn read(settings: &RedisStore) -> Result<RedisSecrets, SecretError> {
        let password = match &settings.password_file {
            None => None,
            Some(p) => Some(password_text(&tokio::fs::read_to_string(p).await.map_err(
                |source| SecretError::File {
                    what: PASSWORD,
                    path: p.clone(),
                    source,
                },
            )?)),
        };
        let tls = settings.tls.as_ref();
        let ca = match tls.and_then(|t| t.ca_file.as_ref()) {
            None => None,
            Some(p) => Some(read(CA, p).await?),
        };
        let client = match tls.and_then(|t| t.client.as_ref()) {
            None => None,
            Some(c) => Some(ClientPem {
                cert: read(CLIENT_CERT, &c.cert_file).await?,
                key: read(CLIENT_KEY, &c.key_file).await?,
            }),
        };
        let s = RedisSecrets {
            password,
            ca,
            client,
        };
        s.check(|what| {
            let t = tls.expect("TLS material comes from tls files");
            let path = match what {
                CA => t.ca_file.as_deref(),
                CLIENT_CERT => t.client.as_ref().map(|c| c.cert_file.as_path()),
                _ => t.client.as_ref().map(|c| c.key_file.as_path()),
            };
            format!(
                "file {}",
                path.map_or_else(String::new, |p| p.display().to_string())
            )
        })?;
        Ok(s)
    }

    /// Checks that the CA and client certificate hold PEM certificates and
    /// the key a PEM private key; `from` names where each came from.
    pub fn check(&self, from: impl Fn(&'static str) -> String) -> Result<(), SecretError> {
        let bad = |what: &'static str, problem: String| SecretError::Pem {
            what,
            from: from(what),
            problem,
        };
        if let Some(ca) = &self.ca {
            certificates(ca).map_err(|p| bad(CA, p))?;
        }
        if let Some(c) = &self.client {
            certificates(&c.cert).map_err(|p| bad(CLIENT_CERT, p))?;
            PrivateKeyDer::from_pem_slice(&c.key)
                .map_err(|e| bad(CLIENT_KEY, format!("holds no usable PEM private key ({e})")))?;
        }
        Ok(())
    }

    /// A digest of everything: a reload keeps a store's connection only
    /// while none of it changed.
    pub fn digest(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut part = |tag: u8, v: Option<&[u8]>| {
            h.update([tag]);
            if let Some(v) = v {
                h.update((v.len() as u64).to_be_bytes());
                h.update(v);
            }
        };
        part(0, self.password.as_deref().map(str::as_bytes));
        part(1, self.ca.as_deref());
        part(2, self.client.as_ref().map(|c| c.cert.as_slice()));
        part(3, self.client.as_ref().map(|c| c.key.as_slice()));
        h.finalize().into()
    }

    /// The redis client's form of the TLS material; `None` without any
    /// (a `rediss://` URL then trusts the public roots).
    pub(crate) fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca.is_none() && self.client.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|c| redis::ClientTlsConfig {
                client_cert: c.cert.clone(),
                client_key: c.key.clone(),
            }),
            root_cert: self.ca.clone(),
        })
    }
}

/// A password file's text without its trailing newline.
pub fn password_text(text: &str) -> String {
    text.trim_end_matches(['\r', '\n']).to_string()
}

async fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, SecretError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| SecretError::File {
            what,
            path: path.to_path_buf(),
            source,
        })
}

/// At least one certificate, every PEM block a valid one.
fn certificates(pem: &[u8]) -> Result<(), String> {
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(pem) {
        c.map_err(|e| format!("is not valid PEM ({e})"))?;
        n += 1;
    }
    if n == 0 {
        return Err("holds no PEM certificate".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
