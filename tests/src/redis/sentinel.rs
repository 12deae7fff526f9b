//! Sentinel-managed Redis for the failover tests: a master, one replica
//! and one or more Sentinels, plain or TLS only.

use std::path::Path;
use std::process::{Child, Command, Stdio};

use super::{redis_binary, wait_until, TlsFiles};
use crate::pki::Pki;

/// What a Sentinel setup is made of.
#[derive(Clone, Copy)]
pub struct SentinelOptions<'a> {
    /// How many Sentinels; the quorum is a majority of them.
    pub sentinels: usize,
    /// Serve TLS only (`port 0`), the Sentinels too: clients show a
    /// certificate the CA signed, and replication and the Sentinels' own
    /// links (to the master, the replica and each other) use TLS.
    pub tls: Option<&'a Pki>,
}

impl Default for SentinelOptions<'_> {
    fn default() -> Self {
        SentinelOptions {
            sentinels: 1,
            tls: None,
        }
    }
}

/// Sentinel-managed Redis: a master, one replica and the Sentinels
/// (failover after 500 ms of silence) on free loopback ports; killed on
/// drop. [`RedisSentinel::kill_master`] makes the Sentinels promote the
/// replica.
pub struct RedisSentinel {
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_ports: Vec<u16>,
    tls: Option<TlsFiles>,
    _dir: tempfile::TempDir,
    master: Option<Child>,
    others: Vec<Child>,
}

/// The name the Sentinels know the master by.
pub const SENTINEL_MASTER: &str = "tgmaster";

impl RedisSentinel {
    /// One plain Sentinel, or `None` (skip) without `redis-server` unless
    /// `TOLLGATE_REQUIRE_REDIS` is set.
    pub async fn start() -> Option<RedisSentinel> {
        RedisSentinel::start_with(SentinelOptions::default()).await
    }

    /// Starts what `o` says, and waits until every Sentinel knows the
    /// master, the replica (in sync) and the other Sentinels.
    pub async fn start_with(o: SentinelOptions<'_>) -> Option<RedisSentinel> {
        let Some(server) = redis_binary() else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_REDIS").is_none(),
                "TOLLGATE_REQUIRE_REDIS is set but redis-server is not on PATH"
            );
            eprintln!("SKIPPED: redis-server not found on PATH");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let free = crate::free_port;
        let (master_port, replica_port) = (free(), free());
        let sentinel_ports: Vec<u16> = (0..o.sentinels).map(|_| free()).collect();
        let tls = o.tls.map(TlsFiles::of);
        // `port P`, or `port 0` and `tls-port P` with the TLS files.
        let listen = |port: u16| -> Vec<String> {
            match &tls {
                None => vec!["--port".into(), port.to_string()],
                Some(t) => {
                    let mut a = vec!["--port".into(), "0".into()];
                    a.extend(["--tls-port".into(), port.to_string()]);
                    a.extend(t.server_args());
                    a
                }
            }
        };
        // Each in a directory of its own: a full resync writes an RDB file
        // there, and a Sentinel rewrites its config file.
        let home = |port: u16| {
            let d = dir.path().join(port.to_string());
            std::fs::create_dir(&d).unwrap();
            d
        };
        let node = |port: u16, extra: &[String]| {
            Command::new(&server)
                .args(listen(port))
                .args(["--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(home(port))
                .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts")
        };
        let master = node(master_port, &[]);
        let replica = node(
            replica_port,
            &[
                "--replicaof".into(),
                "127.0.0.1".into(),
                master_port.to_string(),
            ],
        );
        let mut others = vec![replica];
        let quorum = o.sentinels / 2 + 1;
        for &port in &sentinel_ports {
            let d = home(port);
            let conf = sentinel_conf(&d, master_port, quorum);
            others.push(
                Command::new(&server)
                    .arg(&conf)
                    .arg("--sentinel")
                    .args(listen(port))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server --sentinel starts"),
            );
        }
        let s = RedisSentinel {
            master_port,
            replica_port,
            sentinel_ports,
            tls,
            _dir: dir,
            master: Some(master),
            others,
        };
        wait_until(
            || s.ready(),
            "every Sentinel knows the master, the replica (in sync) and the other Sentinels",
        )
        .await;
        Some(s)
    }

    fn scheme(&self) -> &'static str {
        super::scheme(self.tls.as_ref())
    }

    /// The first Sentinel, as the store's `url`.
    pub fn url(&self) -> String {
        self.urls().remove(0)
    }

    /// Every Sentinel's URL (`url` and `nodes` of a store).
    pub fn urls(&self) -> Vec<String> {
        self.sentinel_ports
            .iter()
            .map(|p| format!("{}://127.0.0.1:{p}", self.scheme()))
            .collect()
    }

    /// A store's `redis:` block (flow style) on these Sentinels, with more
    /// settings in `extra` (`keyPrefix: p, timeout: 1s`).
    pub fn store(&self, extra: &str) -> String {
        let urls = self.urls();
        let nodes: Vec<String> = urls[1..].iter().map(|u| format!("'{u}'")).collect();
        format!(
            "{{url: '{}', nodes: [{}], sentinel: {{masterName: {SENTINEL_MASTER}}}, {extra}}}",
            urls[0],
            nodes.join(", ")
        )
    }

    /// A connection to the server on `port` (over TLS with the client
    /// certificate when the setup is TLS).
    pub async fn connect(&self, port: u16) -> Option<redis::aio::MultiplexedConnection> {
        super::client(port, self.tls.as_ref())
            .get_multiplexed_async_connection()
            .await
            .ok()
    }

    /// The master's port as the first Sentinel names it now.
    pub async fn sentinel_master_port(&self) -> Option<u16> {
        let mut c = self.connect(self.sentinel_ports[0]).await?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SENTINEL_MASTER)
            .query_async(&mut c)
            .await
            .ok()?;
        addr.map(|(_, p)| p)
    }

    async fn ready(&self) -> bool {
        for &port in &self.sentinel_ports {
            let Some(c) = self.connect(port).await else {
                return false;
            };
            let count = |what: &'static str| {
                let mut c = c.clone();
                async move {
                    redis::cmd("SENTINEL")
                        .arg(what)
                        .arg(SENTINEL_MASTER)
                        .query_async::<Vec<redis::Value>>(&mut c)
                        .await
                        .map_or(0, |v| v.len())
                }
            };
            let master: Option<(String, u16)> = redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(SENTINEL_MASTER)
                .query_async(&mut c.clone())
                .await
                .unwrap_or_default();
            if master.map(|(_, p)| p) != Some(self.master_port)
                || count("replicas").await != 1
                || count("sentinels").await != self.sentinel_ports.len() - 1
            {
                return false;
            }
        }
        self.replica_synced().await
    }

    async fn replica_synced(&self) -> bool {
        let Some(mut c) = self.connect(self.replica_port).await else {
            return false;
        };
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut c)
            .await
            .unwrap_or_default();
        info.contains("master_link_status:up")
    }

    /// Waits until the replica has every write the master took (`WAIT`).
    pub async fn replicate(&self) {
        let mut c = self.connect(self.master_port).await.expect("the master");
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(acked, 1, "the replica acknowledged the writes");
    }

    /// Kills (SIGKILL) the master and waits until the Sentinels have
    /// promoted the replica.
    pub async fn kill_master(&mut self) {
        if let Some(mut m) = self.master.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let replica = self.replica_port;
        wait_until(
            || async { self.sentinel_master_port().await == Some(replica) },
            "the Sentinels promote the replica",
        )
        .await;
    }
}

/// A Sentinel's config file in `dir` (it rewrites it), watching the
/// master on `master_port`.
fn sentinel_conf(dir: &Path, master_port: u16, quorum: usize) -> std::path::PathBuf {
    let conf = dir.join("sentinel.conf");
    std::fs::write(
        &conf,
        format!(
            "bind 127.0.0.1\nprotected-mode no\ndir {}\n\
             sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} {quorum}\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 500\n\
             sentinel failover-timeout {SENTINEL_MASTER} 2000\n",
            dir.display()
        ),
    )
    .unwrap();
    conf
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for c in self.master.iter_mut().chain(self.others.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
