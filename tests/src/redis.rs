//! A real `redis-server` for the tests that share state through Redis: a
//! child on a free loopback port, in its own temporary directory, with AOF
//! on so a restart keeps its data, plain or TLS-only with client
//! certificates; killed on drop. A real Redis Cluster of several such
//! servers, with replicas and over TLS if asked ([`RedisCluster`]), and
//! Sentinel-managed Redis ([`RedisSentinel`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::pki::Pki;

mod cluster;
mod sentinel;
pub use cluster::{ClusterOptions, RedisCluster};
pub use sentinel::{RedisSentinel, SentinelOptions, SENTINEL_MASTER};

pub struct Redis {
    bin: PathBuf,
    pub port: u16,
    extra: Vec<String>,
    /// Serving TLS only (`--port 0 --tls-port`), clients with certificates.
    tls: Option<TlsFiles>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The PEM files of a TLS server and of a client it accepts.
#[derive(Clone)]
pub(crate) struct TlsFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

impl TlsFiles {
    pub(crate) fn of(pki: &Pki) -> TlsFiles {
        TlsFiles {
            ca: pki.ca.clone(),
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_cert: pki.client_cert.clone(),
            client_key: pki.client_key.clone(),
        }
    }

    /// The server's TLS arguments: every client shows a certificate signed
    /// by the CA; replication and the cluster bus use TLS with the client
    /// certificate.
    pub(crate) fn server_args(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        [
            ("--tls-cert-file", p(&self.cert)),
            ("--tls-key-file", p(&self.key)),
            ("--tls-ca-cert-file", p(&self.ca)),
            ("--tls-client-cert-file", p(&self.client_cert)),
            ("--tls-client-key-file", p(&self.client_key)),
            ("--tls-auth-clients", "yes".into()),
            ("--tls-replication", "yes".into()),
        ]
        .into_iter()
        .flat_map(|(k, v)| [k.to_string(), v])
        .collect()
    }

    /// `redis-cli`'s arguments to connect as an accepted client.
    pub(crate) fn cli_args(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.display().to_string();
        vec![
            "--tls".into(),
            "--cacert".into(),
            p(&self.ca),
            "--cert".into(),
            p(&self.client_cert),
            "--key".into(),
            p(&self.client_key),
        ]
    }
}

/// A client of the server on loopback `port`: plain, or over TLS as a
/// client `tls` accepts.
/// The URL scheme of a server with or without TLS.
pub(crate) fn scheme(tls: Option<&TlsFiles>) -> &'static str {
    if tls.is_some() {
        "rediss"
    } else {
        "redis"
    }
}

pub(crate) fn client(port: u16, tls: Option<&TlsFiles>) -> redis::Client {
    match tls {
        None => redis::Client::open(format!("redis://127.0.0.1:{port}")),
        Some(t) => {
            let read = |p: &PathBuf| std::fs::read(p).unwrap();
            redis::Client::build_with_tls(
                format!("rediss://127.0.0.1:{port}"),
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: read(&t.client_cert),
                        client_key: read(&t.client_key),
                    }),
                    root_cert: Some(read(&t.ca)),
                },
            )
        }
    }
    .unwrap()
}

pub(crate) fn redis_binary() -> Option<PathBuf> {
    binary("redis-server")
}

impl Redis {
    /// Starts one, or returns `None` (skip) when `redis-server` is not on
    /// PATH and `TOLLGATE_REQUIRE_REDIS` is unset.
    pub async fn start() -> Option<Redis> {
        Redis::start_with(&[]).await
    }

    /// [`Redis::start`] with `extra` arguments (e.g. `--requirepass`).
    pub async fn start_with(extra: &[&str]) -> Option<Redis> {
        let Some(bin) = redis_binary() else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_REDIS").is_none(),
                "TOLLGATE_REQUIRE_REDIS is set but redis-server is not on PATH"
            );
            eprintln!("SKIPPED: redis-server not found on PATH (apt-get install -y redis-server)");
            return None;
        };
        let port = crate::free_port();
        let mut r = Redis {
            bin,
            port,
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: None,
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.run().await;
        Some(r)
    }

    /// [`Redis::start_with`] serving TLS only, on `port`, with `pki`'s
    /// server certificate: clients must show a certificate `pki`'s CA
    /// signed (`--tls-auth-clients yes`).
    pub async fn start_tls(pki: &Pki, extra: &[&str]) -> Option<Redis> {
        let bin = redis_binary().or_else(|| {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_REDIS").is_none(),
                "TOLLGATE_REQUIRE_REDIS is set but redis-server is not on PATH"
            );
            eprintln!("SKIPPED: redis-server not found on PATH");
            None
        })?;
        let mut r = Redis {
            bin,
            port: crate::free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: Some(TlsFiles::of(pki)),
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.run().await;
        Some(r)
    }

    async fn run(&mut self) {
        let port = self.port.to_string();
        let listen: Vec<String> = match &self.tls {
            None => vec!["--port".into(), port],
            Some(t) => {
                let mut a = vec!["--port".into(), "0".into(), "--tls-port".into(), port];
                a.extend(t.server_args());
                a
            }
        };
        let child = Command::new(&self.bin)
            .args(&listen)
            .args(["--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(self.dir.path())
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--protected-mode", "no"])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.listening().await {
            assert!(Instant::now() < deadline, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Answers `PING`: `+PONG`, or `-NOAUTH` behind a password (never
    /// `-LOADING`, so a restart waits until its data is back).
    async fn listening(&self) -> bool {
        let reply = match &self.tls {
            None => ping_reply(self.port).await,
            Some(t) => tls_ping_reply(self.port, t).await,
        };
        reply.is_some_and(|r| r.starts_with(b"+") || r.starts_with(b"-NOAUTH"))
    }

    /// Kills the server (its data stays in the AOF).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub async fn restart(&mut self) {
        self.stop();
        self.run().await;
    }

    /// `redis://127.0.0.1:PORT/0`, or `rediss://` for a TLS server.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}/0", scheme(self.tls.as_ref()), self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

pub(crate) fn binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The first bytes of the reply to `PING` on a plain connection.
async fn ping_reply(port: u16) -> Option<Vec<u8>> {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    exchange_ping(s).await
}

/// The first bytes of the reply to `PING` over TLS, as an accepted client.
async fn tls_ping_reply(port: u16, t: &TlsFiles) -> Option<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(&t.ca).ok()? {
        roots.add(c.ok()?).ok()?;
    }
    let chain = CertificateDer::pem_file_iter(&t.client_cert)
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    let key = PrivateKeyDer::from_pem_file(&t.client_key).ok()?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .ok()?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let name = ServerName::try_from("127.0.0.1").ok()?;
    let tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .ok()?;
    exchange_ping(tls).await
}

async fn exchange_ping<S>(mut s: S) -> Option<Vec<u8>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    s.write_all(b"PING\r\n").await.ok()?;
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.ok()?;
    Some(buf[..n].to_vec())
}

pub(crate) async fn wait_until<F, Fut>(mut check: F, what: &str)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
