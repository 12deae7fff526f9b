//! A real Redis Cluster: `redis-server` processes in cluster mode on free
//! loopback ports, joined with `redis-cli --cluster create`, optionally
//! with a replica per master, over TLS and behind an ACL user; each node in
//! its own directory, killed on drop. [`RedisCluster::kill_master_of`]
//! kills the master serving a key and waits until its replica took over.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{binary, redis_binary, wait_until, TlsFiles};
use crate::pki::Pki;

/// What a cluster is made of.
#[derive(Clone, Copy)]
pub struct ClusterOptions<'a> {
    pub masters: usize,
    /// Replicas per master (0 or 1 in the tests).
    pub replicas: usize,
    /// Serve TLS only (clients, replication and the cluster bus), with
    /// client certificates.
    pub tls: Option<&'a Pki>,
    /// An ACL user (`~* &* +@all`) with this password; the `default` user
    /// is off.
    pub user: Option<(&'a str, &'a str)>,
}

impl Default for ClusterOptions<'_> {
    fn default() -> Self {
        ClusterOptions {
            masters: 3,
            replicas: 0,
            tls: None,
            user: None,
        }
    }
}

pub struct RedisCluster {
    /// Every node's client port, masters first as created.
    pub ports: Vec<u16>,
    cli: PathBuf,
    tls: Option<TlsFiles>,
    user: Option<(String, String)>,
    _dir: tempfile::TempDir,
    /// By node, `None` once killed.
    children: Vec<Option<Child>>,
}

impl RedisCluster {
    /// Three masters with a replica each (the failover tests'); see
    /// [`RedisCluster::start`].
    pub async fn start_replicated() -> Option<RedisCluster> {
        RedisCluster::start_with(ClusterOptions {
            replicas: 1,
            ..ClusterOptions::default()
        })
        .await
    }

    /// Starts `masters` masters without replicas, or returns `None` (skip)
    /// when `redis-server` or `redis-cli` is not on PATH and
    /// `TOLLGATE_REQUIRE_REDIS` is unset.
    pub async fn start(masters: usize) -> Option<RedisCluster> {
        RedisCluster::start_with(ClusterOptions {
            masters,
            ..ClusterOptions::default()
        })
        .await
    }

    /// Starts a cluster as `o` says (see [`RedisCluster::start`]), and
    /// waits until every node sees it `ok`, every replica is in sync, and
    /// clients asking for the slot map learn every node.
    pub async fn start_with(o: ClusterOptions<'_>) -> Option<RedisCluster> {
        let (Some(server), Some(cli)) = (redis_binary(), binary("redis-cli")) else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_REDIS").is_none(),
                "TOLLGATE_REQUIRE_REDIS is set but redis-server or redis-cli is not on PATH"
            );
            eprintln!("SKIPPED: redis-server/redis-cli not found on PATH");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let n = o.masters * (1 + o.replicas);
        // Client and bus ports, all distinct (the bus on a port of its
        // own: `port + 10000` may be above 65535 for an ephemeral port).
        let mut all: Vec<u16> = Vec::new();
        while all.len() < 2 * n {
            let p = crate::free_port();
            if !all.contains(&p) {
                all.push(p);
            }
        }
        let (ports, buses) = (all[..n].to_vec(), all[n..].to_vec());
        let tls = o.tls.map(TlsFiles::of);
        let mut c = RedisCluster {
            ports: ports.clone(),
            cli,
            tls,
            user: o.user.map(|(u, p)| (u.to_string(), p.to_string())),
            _dir: dir,
            children: Vec::new(),
        };
        for (p, bus) in ports.iter().zip(&buses) {
            let d = c._dir.path().join(p.to_string());
            std::fs::create_dir(&d).unwrap();
            let bus = bus.to_string();
            let mut cmd = Command::new(&server);
            match &c.tls {
                None => cmd.args(["--port", &p.to_string()]),
                Some(t) => cmd
                    .args(["--port", "0", "--tls-port", &p.to_string()])
                    .args(["--tls-cluster", "yes"])
                    .args(t.server_args()),
            };
            if let Some((user, pass)) = &c.user {
                cmd.args(["--user", "default", "off"])
                    .args([
                        "--user",
                        user,
                        "on",
                        &format!(">{pass}"),
                        "~*",
                        "&*",
                        "+@all",
                    ])
                    // Replicas authenticate to their master as this user.
                    .args(["--masteruser", user, "--masterauth", pass]);
            }
            cmd.args(["--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(&d)
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-port", &bus])
                .args(["--cluster-node-timeout", "2000"])
                // A replica that has replicated nothing yet is left out of
                // `CLUSTER SLOTS` (clients would learn it late): the
                // replication stream's ping makes one that has, soon.
                .args(["--repl-ping-replica-period", "1"])
                .args(["--save", "", "--appendonly", "no"])
                .args(["--daemonize", "no", "--protected-mode", "no"])
                .args(["--logfile", "redis.log"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            c.children
                .push(Some(cmd.spawn().expect("redis-server starts")));
        }
        for p in &ports {
            let p = *p;
            let log = c._dir.path().join(p.to_string()).join("redis.log");
            let deadline = Instant::now() + Duration::from_secs(20);
            while !c.cli(p, &["PING"]).contains("PONG") {
                assert!(
                    Instant::now() < deadline,
                    "timed out: node :{p} answers PING; its log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let mut create: Vec<String> = vec!["--cluster".into(), "create".into()];
        create.extend(ports.iter().map(|p| format!("127.0.0.1:{p}")));
        create.extend(["--cluster-replicas".into(), o.replicas.to_string()]);
        create.push("--cluster-yes".into());
        let out = Command::new(&c.cli)
            .args(c.auth_args())
            .args(&create)
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        for &p in &ports {
            wait_until(
                || async {
                    c.cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok") && c.synced(p)
                },
                "every node sees the cluster ok and every replica is in sync",
            )
            .await;
        }
        wait_until(
            || async { ports.iter().all(|p| c.listed(*p) == n) },
            "CLUSTER SLOTS on every node lists every node",
        )
        .await;
        Some(c)
    }

    fn scheme(&self) -> &'static str {
        super::scheme(self.tls.as_ref())
    }

    /// The first node, as a seed URL.
    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.ports[0])
    }

    /// The other nodes, as seed URLs.
    pub fn other_urls(&self) -> Vec<String> {
        self.ports[1..]
            .iter()
            .map(|p| format!("{}://127.0.0.1:{p}", self.scheme()))
            .collect()
    }

    /// A store's `redis:` block (flow style) on this cluster, every node a
    /// seed, with more settings in `extra` (`keyPrefix: p, timeout: 1s`).
    pub fn store(&self, extra: &str) -> String {
        let nodes: Vec<String> = self.other_urls().iter().map(|u| format!("'{u}'")).collect();
        format!(
            "{{url: '{}', cluster: true, nodes: [{}], {extra}}}",
            self.url(),
            nodes.join(", ")
        )
    }

    /// `redis-cli`'s connection arguments (TLS, user).
    fn auth_args(&self) -> Vec<String> {
        let mut a = self
            .tls
            .as_ref()
            .map(TlsFiles::cli_args)
            .unwrap_or_default();
        if let Some((user, pass)) = &self.user {
            a.extend(["--user".into(), user.clone(), "--pass".into(), pass.clone()]);
            a.push("--no-auth-warning".into());
        }
        a
    }

    /// `redis-cli -p port args...`'s output (empty when it fails).
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        Command::new(&self.cli)
            .args(self.auth_args())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// How many of the nodes `CLUSTER SLOTS` on `port` lists (slot numbers
    /// are below any port the tests get).
    fn listed(&self, port: u16) -> usize {
        let slots = self.cli(port, &["CLUSTER", "SLOTS"]);
        let listed: std::collections::BTreeSet<u16> = slots
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter(|p| self.ports.contains(p))
            .collect();
        listed.len()
    }

    /// A replica's link to its master is up (a master is always "synced").
    fn synced(&self, port: u16) -> bool {
        let info = self.cli(port, &["INFO", "replication"]);
        info.contains("role:master") || info.contains("master_link_status:up")
    }

    /// `KEYS pattern` summed over every live node (test-sized clusters only),
    /// each as `port key`.
    pub async fn keys(&self, pattern: &str) -> Vec<String> {
        let mut out = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            if self.children[i].is_none() {
                continue;
            }
            let listed = self.cli(*p, &["--raw", "KEYS", pattern]);
            out.extend(
                listed
                    .lines()
                    .filter(|k| !k.is_empty())
                    .map(|k| format!("{p} {k}")),
            );
        }
        out
    }

    /// The port of the master serving `key`'s slot, as node `via` sees it.
    pub fn master_of(&self, key: &str, via: u16) -> Option<u16> {
        let slot: u16 = self
            .cli(via, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .ok()?;
        let nodes = self.cli(via, &["CLUSTER", "NODES"]);
        nodes.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let flags = f.get(2)?;
            if !flags.contains("master") || flags.contains("fail") {
                return None;
            }
            let serves = f[8..].iter().any(|r| match r.split_once('-') {
                Some((a, b)) => {
                    (a.parse().unwrap_or(u16::MAX)..=b.parse().unwrap_or(0)).contains(&slot)
                }
                None => r.parse::<u16>().ok() == Some(slot),
            });
            let port = f[1].split(['@', ',']).next()?.rsplit_once(':')?.1;
            serves.then(|| port.parse().ok()).flatten()
        })
    }

    /// Kills (SIGKILL) the master serving `key` and waits until another
    /// node serves its slot and every live node sees the cluster `ok`;
    /// returns (the killed port, the promoted replica's port).
    pub async fn kill_master_of(&mut self, key: &str) -> (u16, u16) {
        let old = self
            .master_of(key, self.ports[0])
            .expect("a master serves the key");
        let i = self.ports.iter().position(|p| *p == old).unwrap();
        if let Some(mut child) = self.children[i].take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let live: Vec<u16> = self
            .ports
            .iter()
            .enumerate()
            .filter(|(i, _)| self.children[*i].is_some())
            .map(|(_, p)| *p)
            .collect();
        let mut new = None;
        wait_until(
            || {
                let now = self.master_of(key, live[0]).filter(|p| *p != old);
                new = now;
                let ok = now.is_some()
                    && live.iter().all(|p| {
                        self.cli(*p, &["CLUSTER", "INFO"])
                            .contains("cluster_state:ok")
                    });
                async move { ok }
            },
            "a replica is promoted and the cluster is ok again",
        )
        .await;
        (old, new.unwrap())
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
