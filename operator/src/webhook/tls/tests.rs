//! A TLS server on [`server_config`] presents a renewed certificate once
//! the mounted files change, and keeps the last good one when the new pair
//! is broken.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};

use super::reload::Watch;
use super::*;
use crate::metrics::Metrics;

struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            cert: p.self_signed(&key).unwrap(),
            key,
        }
    }

    /// A leaf for `localhost`: its PEM pair and its DER.
    fn leaf(&self) -> (CertPem, CertificateDer<'static>) {
        let key = KeyPair::generate().unwrap();
        let p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        let pem = CertPem {
            cert: cert.pem(),
            key: key.serialize_pem(),
        };
        (pem, cert.der().clone())
    }
}

/// The kubelet's Secret volume: `tls.crt -> ..data/tls.crt`, `..data ->
/// ..N`, swapped by one rename.
fn project(dir: &Path, generation: u32, pem: &CertPem) {
    let ts = format!("..{generation}");
    std::fs::create_dir(dir.join(&ts)).unwrap();
    std::fs::write(dir.join(&ts).join("tls.crt"), &pem.cert).unwrap();
    std::fs::write(dir.join(&ts).join("tls.key"), &pem.key).unwrap();
    std::os::unix::fs::symlink(&ts, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    for f in ["tls.crt", "tls.key"] {
        if std::fs::symlink_metadata(dir.join(f)).is_err() {
            std::os::unix::fs::symlink(format!("..data/{f}"), dir.join(f)).unwrap();
        }
    }
}

/// Handshakes with the server and returns the leaf it presented.
async fn presented(addr: std::net::SocketAddr, ca: &Ca) -> CertificateDer<'static> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.cert.der().clone()).unwrap();
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake with a certificate the CA signed");
    tls.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Polls `f` until it holds, failing after 10 s.
async fn until(what: &str, mut f: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f().await {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn renewed_certificate_is_served_without_restart() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let (first, first_der) = ca.leaf();
    project(dir.path(), 1, &first);
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));

    let pem = read(&cert, &key).unwrap();
    let store = CertStore::new(certified_key(&pem).unwrap());
    let metrics = Metrics::new();
    let watch = Watch {
        cert,
        key,
        interval: Duration::from_millis(20),
    };
    let reloader = tokio::spawn(watch.run(store.clone(), (pem.cert, pem.key), metrics.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_config(store).unwrap());
    let server = tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let _ = acceptor.accept(tcp).await;
        }
    });
    assert_eq!(presented(addr, &ca).await, first_der);

    // Renewal: a new key and certificate, swapped in as the kubelet does.
    let (second, second_der) = ca.leaf();
    project(dir.path(), 2, &second);
    until("the renewed certificate served", async || {
        presented(addr, &ca).await == second_der
    })
    .await;
    let reloads = |r: &str| metrics.tls_reloads.with_label_values(&[r]).get();
    assert_eq!((reloads("success"), reloads("failure")), (1, 0));

    // A pair whose key does not match is refused; the renewed one stays.
    let (third, _) = ca.leaf();
    let mismatched = CertPem {
        cert: third.cert,
        key: first.key,
    };
    project(dir.path(), 3, &mismatched);
    until("the mismatched pair refused", async || {
        reloads("failure") == 1
    })
    .await;
    assert_eq!(presented(addr, &ca).await, second_der);
    assert_eq!(reloads("success"), 1);

    reloader.abort();
    server.abort();
}
