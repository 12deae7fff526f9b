//! Sentinel-managed Redis for the failover tests.

use std::process::{Child, Command, Stdio};

use super::{ping, redis_binary, wait_until};

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
