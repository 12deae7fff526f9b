//! Black-box: the connections each proxy keeps on each Redis node, with
//! budgets, the exact cache and the shared semantic index all on Redis —
//! one Redis, a Redis Cluster (three masters with a replica each) and
//! Sentinel-managed Redis (three Sentinels) — under concurrent traffic,
//! and again after a restart or a failover (no connection leaks on
//! reconnect). Counted with `CLIENT LIST` on every node by the name the
//! proxy gives them (`tollgate-proxy:<pod>`), and checked against the
//! proxy's own sockets (`/proc`), so that an unnamed connection would
//! show too; the Sentinels, which cannot be asked by name, by the sockets
//! alone. Prints what a fleet of 200 and 500 such sidecars opens per node
//! against Redis' default `maxclients`.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::budgets::*;
use crate::harness::*;
use tollgate_tests::redis::{Redis, RedisCluster, RedisSentinel, SentinelOptions};

/// Per proxy on each node it holds connections to (README,
/// "Connections."): the budget store's, the exact cache's (which also
/// appends semantic inserts), and the follower of the one shared semantic
/// route's.
const PER_NODE: usize = 3;
/// Proxies per topology.
const PROXIES: usize = 2;
/// Concurrent requests per proxy in one burst.
const BURST: usize = 40;
/// More than [`PER_NODE`] a proxy may hold on a Cluster node for a moment
/// while requests are in flight: while the cluster client recovers (after
/// a `MOVED`, or a node connection it found broken), a request routed to
/// a node it holds no connection to at that moment opens one of its own
/// (redis-rs), which closes with the request. At most one per request in
/// flight; a per-request pool would still show after the traffic, when
/// every proxy must hold exactly [`PER_NODE`] again.
const REFRESH: usize = BURST;
/// Redis' default `maxclients`.
const MAXCLIENTS: usize = 10_000;

/// Budgets, the exact cache and the semantic cache (one shared route) on
/// `store` (a `redis:` block, flow style).
fn config_on(mock: &MockServer, store: &str) -> String {
    let budgets = format!("  store: {{type: redis, failMode: closed, redis: {store}}}\n{ROOMY}");
    config_with(mock, &budgets, &semantic_on_redis(store, ""))
}

/// A proxy whose connections are named `tollgate-proxy:{pod}`.
struct Sidecar {
    pod: String,
    proc: ProxyProc,
}

fn start(mock: &MockServer, store: &str, topology: &str) -> Vec<Sidecar> {
    let cfg = config_on(mock, store);
    (0..PROXIES)
        .map(|i| {
            let pod = format!("conns-{topology}-{i}");
            let proc = ProxyProc::start_env(&cfg, &[("TOLLGATE_POD_NAME", &pod)]);
            Sidecar { pod, proc }
        })
        .collect()
}

/// [`BURST`] concurrent requests to each proxy (ten prompts a round, each
/// asked four times: misses that store and share, and hits); what each
/// got that was not a 200.
async fn burst(sidecars: &[Sidecar], round: usize) -> Vec<String> {
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for s in sidecars {
        for i in 0..BURST {
            let mut body = chat(
                "faq",
                &format!("question {} of round {round}", i % 10),
                false,
            );
            body["temperature"] = 0.into();
            body["max_tokens"] = 10.into();
            let (c, url) = (c.clone(), format!("{}/v1/chat/completions", s.proc.url));
            tasks.spawn(async move {
                match c
                    .post(url)
                    .json(&body)
                    .timeout(Duration::from_secs(30))
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => None,
                    Ok(r) => Some(format!(
                        "{} {:?}",
                        r.status(),
                        header(&r, "x-tollgate-error")
                    )),
                    Err(e) => Some(e.to_string()),
                }
            });
        }
    }
    let mut failed = Vec::new();
    while let Some(r) = tasks.join_next().await {
        failed.extend(r.unwrap());
    }
    failed
}

/// Bursts until one is answered in full (after a restart or failover the
/// first calls fail while the proxies reconnect).
async fn served_again(sidecars: &[Sidecar], mut round: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        round += 1;
        if burst(sidecars, round).await.is_empty() {
            return round;
        }
        assert!(Instant::now() < deadline, "the proxies never served again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The connections named `tollgate-proxy:{pod}` in `CLIENT LIST` of the
/// server on `port`.
async fn named(port: u16, pod: &str) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let Ok(mut c) = client.get_multiplexed_async_connection().await else {
        return 0;
    };
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut c)
        .await
        .unwrap_or_default();
    let name = format!("name=tollgate-proxy:{pod}");
    list.lines()
        .filter(|l| l.split(' ').any(|f| f == name))
        .count()
}

/// The remote ports of process `pid`'s established TCP connections over
/// IPv4, from `/proc`.
fn remote_ports(pid: u32) -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let l = l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
            Some(l.to_string())
        })
        .collect();
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
    tcp.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let established = f.get(3) == Some(&"01");
            if !established || !inodes.contains(*f.get(9)?) {
                return None;
            }
            u16::from_str_radix(f[2].rsplit_once(':')?.1, 16).ok()
        })
        .collect()
}

/// What a proxy holds on one server: (named in `CLIENT LIST`, its sockets
/// to it). `named` is `None` for a Sentinel (not asked).
type Held = (Option<usize>, usize);

/// What each proxy holds on each server of `want`, by port.
async fn census(
    sidecars: &[Sidecar],
    want: &BTreeMap<u16, usize>,
    sentinels: &[u16],
) -> BTreeMap<u16, Vec<Held>> {
    let mut out = BTreeMap::new();
    for &port in want.keys() {
        let mut row = Vec::new();
        for s in sidecars {
            let sockets = remote_ports(s.proc.pid())
                .iter()
                .filter(|p| **p == port)
                .count();
            let name = if sentinels.contains(&port) {
                None
            } else {
                Some(named(port, &s.pod).await)
            };
            row.push((name, sockets));
        }
        out.insert(port, row);
    }
    out
}

/// Whether what every proxy holds on each server is `ok` (named,
/// sockets, wanted there).
fn held(
    seen: &BTreeMap<u16, Vec<Held>>,
    want: &BTreeMap<u16, usize>,
    ok: impl Fn(Option<usize>, usize, usize) -> bool,
) -> bool {
    seen.iter().all(|(port, row)| {
        row.iter()
            .all(|(named, sockets)| ok(*named, *sockets, want[port]))
    })
}

/// Waits until every proxy holds `want[port]` connections on each server,
/// every one of them named (Sentinels: sockets only), and returns that
/// census; panics with the last one.
async fn settles(
    sidecars: &[Sidecar],
    want: &BTreeMap<u16, usize>,
    sentinels: &[u16],
    when: &str,
) -> BTreeMap<u16, Vec<Held>> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = census(sidecars, want, sentinels).await;
        let exact = |named: Option<usize>, sockets, want| {
            sockets == want && named.is_none_or(|n| n == sockets)
        };
        if held(&seen, want, exact) {
            return seen;
        }
        if Instant::now() > deadline {
            logs(sidecars);
            panic!(
                "{when}: connections per proxy (named, sockets) by port {seen:?}, want {want:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Prints the proxies' logs (before a test fails).
fn logs(sidecars: &[Sidecar]) {
    for s in sidecars {
        eprintln!("{}'s log:\n{}", s.pod, s.proc.log());
    }
}

/// Prints what each proxy holds, and what a fleet opens per node.
fn report(topology: &str, seen: &BTreeMap<u16, Vec<Held>>) {
    let per_node = seen
        .values()
        .flat_map(|row| row.iter().map(|(_, sockets)| *sockets))
        .max()
        .unwrap_or(0);
    let total: usize = seen.values().map(|row| row[0].1).sum();
    eprintln!(
        "connections, {topology}: per proxy by server port (named, sockets) {seen:?}; \
         {total} per proxy in all, at most {per_node} on one node: \
         200 pods open {} and 500 pods {} per node, of Redis' default maxclients {MAXCLIENTS}",
        200 * per_node,
        500 * per_node,
    );
}

/// Once every proxy holds exactly `want` on each server, a burst of
/// traffic with a census every 30 ms while it runs (no proxy ever holds
/// more than `want` plus `slack`: none opens a connection per request),
/// then until every proxy holds exactly `want` again; returns that census.
async fn measure(
    sidecars: &[Sidecar],
    want: &BTreeMap<u16, usize>,
    sentinels: &[u16],
    slack: usize,
    round: usize,
    when: &str,
) -> BTreeMap<u16, Vec<Held>> {
    let done = AtomicBool::new(false);
    let traffic = async {
        let failed = burst(sidecars, round).await;
        done.store(true, Ordering::SeqCst);
        failed
    };
    let watch = async {
        let mut censuses = 0;
        while !done.load(Ordering::SeqCst) {
            let seen = census(sidecars, want, sentinels).await;
            let at_most = |named: Option<usize>, sockets, want| {
                sockets <= want + slack && named.is_none_or(|n| n <= want + slack)
            };
            if !held(&seen, want, at_most) {
                logs(sidecars);
                panic!("{when}, during traffic: connections per proxy (named, sockets) by port {seen:?}, at most {slack} more than {want:?}");
            }
            censuses += 1;
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        censuses
    };
    settles(
        sidecars,
        want,
        sentinels,
        &format!("{when}, before traffic"),
    )
    .await;
    let (failed, censuses) = tokio::join!(traffic, watch);
    if !failed.is_empty() {
        logs(sidecars);
        panic!("{when}: not every request served: {failed:?}");
    }
    assert!(censuses > 0, "{when}: counted during traffic");
    settles(sidecars, want, sentinels, &format!("{when}, after traffic")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_redis_holds_three_connections_per_proxy_through_a_restart() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let mock = exact_mock(50).await;
    let store = format!("{{url: '{}', keyPrefix: conns, timeout: 5s}}", redis.url());
    let sidecars = start(&mock, &store, "single");
    let want = BTreeMap::from([(redis.port, PER_NODE)]);
    // The first burst connects every store.
    served_again(&sidecars, 0).await;
    let seen = measure(&sidecars, &want, &[], 0, 2, "one Redis").await;
    report("one Redis", &seen);

    redis.restart().await;
    let round = served_again(&sidecars, 10).await;
    measure(&sidecars, &want, &[], 0, round + 1, "one Redis, restarted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_holds_three_connections_per_proxy_on_every_node_through_a_failover() {
    let Some(mut cluster) = RedisCluster::start_replicated().await else {
        return;
    };
    let mock = exact_mock(50).await;
    let store = cluster.store("keyPrefix: conns, timeout: 5s");
    let sidecars = start(&mock, &store, "cluster");
    // Every node, the replicas too: the client connects to each node the
    // slot map lists.
    let on =
        |ports: &[u16]| -> BTreeMap<u16, usize> { ports.iter().map(|p| (*p, PER_NODE)).collect() };
    served_again(&sidecars, 0).await;
    let all = cluster.ports.clone();
    let seen = measure(&sidecars, &on(&all), &[], REFRESH, 2, "a cluster").await;
    report("a Redis Cluster (3 masters, 3 replicas)", &seen);

    // The budget's master dies; its replica takes over.
    let (old, _) = cluster.kill_master_of("{conns}").await;
    let round = served_again(&sidecars, 10).await;
    let live: Vec<u16> = all.iter().copied().filter(|p| *p != old).collect();
    measure(
        &sidecars,
        &on(&live),
        &[],
        REFRESH,
        round + 1,
        "a cluster after a failover",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinels_keep_no_connection_and_their_master_three_per_proxy_through_a_failover() {
    let Some(mut sentinel) = RedisSentinel::start_with(SentinelOptions {
        sentinels: 3,
        tls: None,
    })
    .await
    else {
        return;
    };
    let mock = exact_mock(50).await;
    let store = sentinel.store("keyPrefix: conns, timeout: 5s");
    let sidecars = start(&mock, &store, "sentinel");
    let sentinels = sentinel.sentinel_ports.clone();
    let want = |master: u16, replica: Option<u16>| {
        let mut want: BTreeMap<u16, usize> = sentinels.iter().map(|p| (*p, 0)).collect();
        want.insert(master, PER_NODE);
        want.extend(replica.map(|r| (r, 0)));
        want
    };
    served_again(&sidecars, 0).await;
    let (master, replica) = (sentinel.master_port, sentinel.replica_port);
    let seen = measure(
        &sidecars,
        &want(master, Some(replica)),
        &sentinels,
        0,
        2,
        "Sentinels",
    )
    .await;
    report("Sentinel-managed Redis (3 Sentinels)", &seen);

    sentinel.kill_master().await;
    let round = served_again(&sidecars, 10).await;
    measure(
        &sidecars,
        &want(replica, None),
        &sentinels,
        0,
        round + 1,
        "Sentinels after a failover",
    )
    .await;
}
