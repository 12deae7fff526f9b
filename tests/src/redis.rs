//! A real `redis-server` for the tests that share state through Redis: a
//! child on a free loopback port, in its own temporary directory, with AOF
//! on so a restart keeps its data; killed on drop. And a real Redis Cluster
//! of several such servers ([`RedisCluster`]).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    bin: PathBuf,
    pub port: u16,
    extra: Vec<String>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn redis_binary() -> Option<PathBuf> {
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
            dir: tempfile::tempdir().unwrap(),
            child: None,
        };
        r.run().await;
        Some(r)
    }

    async fn run(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
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
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await else {
            return false;
        };
        let mut buf = [0u8; 16];
        s.write_all(b"PING\r\n").await.is_ok()
            && matches!(s.read(&mut buf).await,
                Ok(n) if buf[..n].starts_with(b"+") || buf[..n].starts_with(b"-NOAUTH"))
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

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real Redis Cluster: `masters` `redis-server` processes in cluster mode
/// on free loopback ports, joined with `redis-cli --cluster create` (no
/// replicas), each in its own directory; killed on drop.
pub struct RedisCluster {
    pub ports: Vec<u16>,
    _dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl RedisCluster {
    /// Starts one, or returns `None` (skip) when `redis-server` or
    /// `redis-cli` is not on PATH and `TOLLGATE_REQUIRE_REDIS` is unset.
    pub async fn start(masters: usize) -> Option<RedisCluster> {
        let (Some(server), Some(cli)) = (redis_binary(), binary("redis-cli")) else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_REDIS").is_none(),
                "TOLLGATE_REQUIRE_REDIS is set but redis-server or redis-cli is not on PATH"
            );
            eprintln!("SKIPPED: redis-server/redis-cli not found on PATH");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let ports: Vec<u16> = (0..masters).map(|_| crate::free_port()).collect();
        let mut children = Vec::new();
        for p in &ports {
            let d = dir.path().join(p.to_string());
            std::fs::create_dir(&d).unwrap();
            children.push(
                Command::new(&server)
                    .args(["--port", &p.to_string(), "--bind", "127.0.0.1"])
                    .arg("--dir")
                    .arg(&d)
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                    ])
                    .args([
                        "--cluster-node-timeout",
                        "2000",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ])
                    .args(["--daemonize", "no", "--protected-mode", "no"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("redis-server starts"),
            );
        }
        let c = RedisCluster {
            ports,
            _dir: dir,
            children,
        };
        for p in &c.ports {
            wait_until(|| ping(*p), "a cluster node answers PING").await;
        }
        let mut create = Command::new(&cli);
        create.arg("--cluster").arg("create");
        for p in &c.ports {
            create.arg(format!("127.0.0.1:{p}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for p in c.ports.clone() {
            let cli = cli.clone();
            wait_until(
                move || {
                    let cli = cli.clone();
                    async move {
                        Command::new(&cli)
                            .args(["-p", &p.to_string(), "cluster", "info"])
                            .output()
                            .is_ok_and(|o| {
                                String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok")
                            })
                    }
                },
                "every node sees the cluster as ok",
            )
            .await;
        }
        Some(c)
    }

    /// The first node, as a seed URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.ports[0])
    }

    /// The other nodes, as seed URLs.
    pub fn other_urls(&self) -> Vec<String> {
        self.ports[1..]
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect()
    }

    /// `KEYS pattern` summed over every node (test-sized clusters only).
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.ports {
            let client = redis::Client::open(format!("redis://127.0.0.1:{p}")).unwrap();
            let mut c = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut c)
                .await
                .unwrap();
            out.extend(keys.into_iter().map(|k| format!("{p} {k}")));
        }
        out
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn binary(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

async fn ping(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    let mut buf = [0u8; 16];
    s.write_all(b"PING\r\n").await.is_ok()
        && matches!(s.read(&mut buf).await, Ok(n) if buf[..n].starts_with(b"+PONG"))
}

async fn wait_until<F, Fut>(mut check: F, what: &str)
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

/// Sentinel-managed Redis: a master, one replica and one Sentinel (quorum
/// 1, failover after 500 ms of silence) on free loopback ports; killed on
/// drop. [`RedisSentinel::kill_master`] makes the Sentinel promote the
/// replica.
pub struct RedisSentinel {
    pub master_port: u16,
    pub replica_port: u16,
    pub sentinel_port: u16,
    _dir: tempfile::TempDir,
    master: Option<Child>,
    others: Vec<Child>,
}

/// The name the Sentinel knows the master by.
pub const SENTINEL_MASTER: &str = "tgmaster";

impl RedisSentinel {
    /// Starts one, or `None` (skip) without `redis-server` unless
    /// `TOLLGATE_REQUIRE_REDIS` is set.
    pub async fn start() -> Option<RedisSentinel> {
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
        let (master_port, replica_port, sentinel_port) = (free(), free(), free());
        let node = |port: u16, extra: &[String]| {
            // Its own directory: a full resync writes an RDB file there.
            let d = dir.path().join(port.to_string());
            std::fs::create_dir(&d).unwrap();
            Command::new(&server)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&d)
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
        wait_until(|| ping(master_port), "the master answers").await;
        wait_until(|| ping(replica_port), "the replica answers").await;
        let conf = dir.path().join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {sentinel_port}\nbind 127.0.0.1\nprotected-mode no\ndir {}\n\
                 sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds {SENTINEL_MASTER} 500\n\
                 sentinel failover-timeout {SENTINEL_MASTER} 2000\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let sentinel = Command::new(&server)
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server --sentinel starts");
        let s = RedisSentinel {
            master_port,
            replica_port,
            sentinel_port,
            _dir: dir,
            master: Some(master),
            others: vec![replica, sentinel],
        };
        wait_until(
            || async {
                s.sentinel_master_port().await == Some(master_port) && s.replica_synced().await
            },
            "the Sentinel knows the master and the replica is in sync",
        )
        .await;
        Some(s)
    }

    /// The Sentinel, as the store's `url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.sentinel_port)
    }

    /// The master's port as the Sentinel names it now.
    pub async fn sentinel_master_port(&self) -> Option<u16> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut c = client.get_multiplexed_async_connection().await.ok()?;
        let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SENTINEL_MASTER)
            .query_async(&mut c)
            .await
            .ok()?;
        addr.map(|(_, p)| p)
    }

    async fn replica_synced(&self) -> bool {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{}", self.replica_port))
        else {
            return false;
        };
        let Ok(mut c) = client.get_multiplexed_async_connection().await else {
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
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}", self.master_port)).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let acked: i64 = redis::cmd("WAIT")
            .arg(1)
            .arg(5000)
            .query_async(&mut c)
            .await
            .unwrap();
        assert_eq!(acked, 1, "the replica acknowledged the writes");
    }

    /// Kills the master and waits until the Sentinel has promoted the replica.
    pub async fn kill_master(&mut self) {
        if let Some(mut m) = self.master.take() {
            let _ = m.kill();
            let _ = m.wait();
        }
        let replica = self.replica_port;
        wait_until(
            || async { self.sentinel_master_port().await == Some(replica) },
            "the Sentinel promotes the replica",
        )
        .await;
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        for c in self.master.iter_mut().chain(self.others.iter_mut()) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
