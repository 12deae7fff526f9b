//! Black-box: budgets and the exact cache on Redis over TLS as an ACL
//! user. The server speaks TLS only, asks every client for a certificate
//! its CA signed, and knows one user (`tollgate`; `default` is off). Two
//! proxies share a budget exactly and the cache's entries; a wrong
//! password, a missing client certificate or an untrusted server is
//! refused with an error that says why, the budget's `failMode` decides
//! what the request gets, and no secret reaches a log or a metric. The
//! same through a Redis Cluster over TLS, and an unreadable CA file stops
//! the proxy at start with its path. Sentinel-managed Redis over TLS (the
//! Sentinels too) through a failover. A password file changed on disk is
//! taken without a restart.

mod budgets;
mod harness;

use std::path::Path;
use std::time::Duration;

use budgets::*;
use harness::*;
use tollgate_tests::pki::Pki;
use tollgate_tests::redis::{ClusterOptions, RedisCluster, RedisSentinel, SentinelOptions};

const USER: &str = "tollgate";
const PASSWORD: &str = "s3cret-Redis-pw";

/// The ACL of the test servers: one user with every right, `default` off.
fn acl() -> Vec<String> {
    let pass = format!(">{PASSWORD}");
    [
        "--user", "default", "off", "--user", USER, "on", &pass, "~*", "&*", "+@all",
    ]
    .map(String::from)
    .to_vec()
}

/// A TLS-only redis-server with [`acl`] (`None` without redis-server).
async fn tls_redis_with_acl(pki: &Pki) -> Option<tollgate_tests::redis::Redis> {
    let extra = acl();
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    tollgate_tests::redis::Redis::start_tls(pki, &extra).await
}

/// How a proxy authenticates in a test.
struct Auth<'a> {
    pki: &'a Pki,
    password: &'a str,
    /// Trust the test CA (else the public roots).
    ca: bool,
    /// Show the client certificate.
    client_cert: bool,
}

/// The `tls:` settings of `a` (flow style).
fn tls_block(a: &Auth<'_>) -> String {
    let mut tls = Vec::new();
    if a.ca {
        tls.push(format!("caFile: '{}'", a.pki.ca.display()));
    }
    if a.client_cert {
        tls.push(format!("certFile: '{}'", a.pki.client_cert.display()));
        tls.push(format!("keyFile: '{}'", a.pki.client_key.display()));
    }
    format!("{{{}}}", tls.join(", "))
}

/// A `redis:` block (flow style) for `url` (and cluster `nodes`), with a
/// password file written into `dir`.
fn redis_block(dir: &Path, url: &str, nodes: &[String], prefix: &str, a: &Auth<'_>) -> String {
    let pw = dir.join(format!("password-{prefix}"));
    std::fs::write(&pw, format!("{}\n", a.password)).unwrap();
    let cluster = if nodes.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = nodes.iter().map(|n| format!("'{n}'")).collect();
        format!(", cluster: true, nodes: [{}]", list.join(", "))
    };
    format!(
        "{{url: '{url}'{cluster}, username: {USER}, passwordFile: '{}', keyPrefix: {prefix}, timeout: 1s, tls: {}}}",
        pw.display(),
        tls_block(a)
    )
}

/// A config whose budget (`usd` a day per `x-tollgate-team`) and cache
/// use `redis`.
fn config_on(mock: &MockServer, redis: &str, fail_mode: &str, usd: f64) -> String {
    let body = format!(
        "  store: {{type: redis, failMode: {fail_mode}, redis: {redis}}}\n  limits:\n    - {{name: daily, scope: header, header: x-tollgate-team, window: day, usd: {usd}}}\n"
    );
    config_with(
        mock,
        &body,
        &format!("cache:\n  ttl: 1h\n  store: {{type: redis, redis: {redis}}}\n"),
    )
}

/// `n` concurrent $0.01 requests of team `a` spread over `proxies`:
/// (200s, 429s).
async fn spend_concurrently(proxies: &[ProxyProc], n: usize) -> (usize, usize) {
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (c, url) = (c.clone(), proxies[i % proxies.len()].url.clone());
        tasks.spawn(async move {
            c.post(format!("{url}/v1/chat/completions"))
                .header("x-tollgate-team", "a")
                .json(&exact(false))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        });
    }
    let (mut ok, mut refused) = (0, 0);
    while let Some(s) = tasks.join_next().await {
        match s.unwrap() {
            200 => ok += 1,
            429 => refused += 1,
            s => panic!("unexpected {s}"),
        }
    }
    (ok, refused)
}

/// A deterministic request that the cache stores (with its own team's
/// budget).
fn cacheable(text: &str) -> serde_json::Value {
    let mut v = chat("gpt-4o-mini", text, false);
    v["temperature"] = 0.into();
    v["max_tokens"] = 10.into();
    v
}

/// Nothing secret in what a proxy printed or exports.
async fn no_secret_shown(p: &ProxyProc, pki: &Pki) {
    let key = std::fs::read_to_string(&pki.client_key).unwrap();
    let key_body = key.lines().nth(1).unwrap();
    for (what, text) in [("log", p.log()), ("metrics", p.metrics().await)] {
        assert!(!text.contains(PASSWORD), "password in the {what}");
        assert!(!text.contains("wrong-password"), "password in the {what}");
        assert!(!text.contains(key_body), "private key in the {what}");
        assert!(!text.contains("BEGIN"), "PEM in the {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn budgets_and_the_cache_share_a_tls_redis_as_an_acl_user() {
    let pki = Pki::generate();
    let Some(redis) = tls_redis_with_acl(&pki).await else {
        return;
    };
    let mock = exact_mock(50).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = Auth {
        pki: &pki,
        password: PASSWORD,
        ca: true,
        client_cert: true,
    };
    let block = redis_block(dir.path(), &redis.url(), &[], "tls", &auth);
    let cfg = config_on(&mock, &block, "closed", 0.10);
    let proxies: Vec<ProxyProc> = (0..2).map(|_| ProxyProc::start(&cfg)).collect();

    // Exactly $0.10 of $0.01 requests, across both proxies.
    let (ok, refused) = spend_concurrently(&proxies, 30).await;
    let mut spent = 0.0;
    for p in &proxies {
        spent += spend(&settled(p, 0.0).await);
    }
    assert_eq!((ok, refused), (10, 20), "exactly $0.10 admitted");
    assert!((spent - 0.10).abs() < 1e-9, "spent ${spent}");

    // The cache: stored by one proxy, served by the other.
    let c = client();
    let q = cacheable("what does a toll road cost over tls");
    let first = post_chat(&c, &proxies[0], &q, &[]).await;
    assert_eq!(header(&first, "x-tollgate-cache").as_deref(), Some("miss"));
    let hit = wait_for("the entry in Redis", Duration::from_secs(10), || async {
        let r = post_chat(&c, &proxies[1], &q, &[]).await;
        (header(&r, "x-tollgate-cache").as_deref() == Some("hit")).then_some(r)
    })
    .await;
    assert_eq!(hit.status(), 200);
    for p in &proxies {
        let m = p.metrics().await;
        assert_eq!(
            metric_sum(&m, "tollgate_budget_store_errors_total", &[]),
            0.0,
            "every call went through"
        );
        no_secret_shown(p, &pki).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_password_a_missing_client_certificate_or_an_unknown_ca_is_refused_and_named() {
    let pki = Pki::generate();
    let Some(redis) = tls_redis_with_acl(&pki).await else {
        return;
    };
    let mock = exact_mock(0).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = |password, ca, client_cert| Auth {
        pki: &pki,
        password,
        ca,
        client_cert,
    };
    // (what is wrong, how the proxy authenticates, what its log says)
    let cases = [
        (
            "wrong password",
            auth("wrong-password", true, true),
            "authentication failed",
        ),
        (
            "no client certificate",
            auth(PASSWORD, true, false),
            "TLS: received fatal alert: CertificateRequired",
        ),
        (
            "the server's CA not trusted",
            auth(PASSWORD, false, true),
            "TLS: invalid peer certificate: UnknownIssuer",
        ),
    ];
    for (i, (what, a, says)) in cases.iter().enumerate() {
        let closed = ProxyProc::start(&config_on(
            &mock,
            &redis_block(dir.path(), &redis.url(), &[], &format!("c{i}"), a),
            "closed",
            1.0,
        ));
        let open = ProxyProc::start(&config_on(
            &mock,
            &redis_block(dir.path(), &redis.url(), &[], &format!("o{i}"), a),
            "open",
            1.0,
        ));
        let c = client();
        // failMode closed: refused, and the app is told the store is down.
        let r = post_chat(&c, &closed, &exact(false), &[]).await;
        assert_eq!(r.status(), 503, "{what}");
        assert_eq!(
            header(&r, "x-tollgate-error").as_deref(),
            Some("budget_store_unavailable"),
            "{what}"
        );
        // failMode open: admitted (and counted), the cache a miss.
        let r = post_chat(&c, &open, &cacheable(&format!("question {i}")), &[]).await;
        assert_eq!(r.status(), 200, "{what}");
        assert_eq!(header(&r, "x-tollgate-cache").as_deref(), Some("miss"));
        let m = open.metrics().await;
        assert_eq!(
            metric(
                &m,
                "tollgate_budget_admissions_total",
                &[("outcome", "fail_open")]
            ),
            Some(1.0),
            "{what}"
        );
        for p in [&closed, &open] {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !p.log().contains(says) {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{what}: the log does not say `{says}`:\n{}",
                    p.log()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            no_secret_shown(p, &pki).await;
        }
    }
}

/// A rotated Secret: the password file changes on disk (here from a wrong
/// password to the right one) and the stores connect again with it,
/// without a restart or a config change; what the cache held carries over.
#[tokio::test]
async fn a_password_file_changed_on_disk_is_used_without_a_restart() {
    let pki = Pki::generate();
    let Some(redis) = tls_redis_with_acl(&pki).await else {
        return;
    };
    let mock = exact_mock(0).await;
    let dir = tempfile::tempdir().unwrap();
    let stale = Auth {
        pki: &pki,
        password: "before-the-rotation",
        ca: true,
        client_cert: true,
    };
    let block = redis_block(dir.path(), &redis.url(), &[], "rot", &stale);
    let proxy = ProxyProc::start(&config_on(&mock, &block, "closed", 1.0));
    let hash = proxy.config_hash().await;
    let c = client();
    let r = post_chat(&c, &proxy, &exact(false), &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        header(&r, "x-tollgate-error").as_deref(),
        Some("budget_store_unavailable")
    );

    // The Secret's new content, as the kubelet swaps it in.
    let file = dir.path().join("password-rot");
    let next = dir.path().join("password-rot.next");
    std::fs::write(&next, format!("{PASSWORD}\n")).unwrap();
    std::fs::rename(&next, &file).unwrap();
    wait_for(
        "a request admitted with the new password",
        Duration::from_secs(15),
        || async {
            let r = post_chat(&c, &proxy, &exact(false), &[]).await;
            (r.status() == 200).then_some(())
        },
    )
    .await;
    assert!(
        proxy
            .log()
            .contains("Redis password or TLS files changed on disk; the stores connect again"),
        "{}",
        proxy.log()
    );
    assert_eq!(proxy.config_hash().await, hash, "the same config");
    // The exact cache on the same Redis answers too.
    let q = cacheable("a question after the rotation");
    let first = post_chat(&c, &proxy, &q, &[]).await;
    assert_eq!(header(&first, "x-tollgate-cache").as_deref(), Some("miss"));
    let again = post_chat(&c, &proxy, &q, &[]).await;
    assert_eq!(header(&again, "x-tollgate-cache").as_deref(), Some("hit"));
    no_secret_shown(&proxy, &pki).await;
}

#[tokio::test]
async fn an_unreadable_ca_file_stops_the_proxy_at_start_naming_the_file() {
    let mock = mock().await;
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-ca.pem");
    let block = format!(
        "{{url: 'rediss://127.0.0.1:1', tls: {{caFile: '{}'}}}}",
        missing.display()
    );
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, config_on(&mock, &block, "open", 1.0)).unwrap();
    let out = std::process::Command::new(proxy_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "cannot read the Redis CA file {}",
            missing.display()
        )),
        "{err}"
    );
}

/// A Redis Cluster over TLS with an ACL user: the budget's keys share the
/// policy's slot, and the budget is exact across two proxies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_through_a_tls_redis_cluster() {
    let pki = Pki::generate();
    let Some(cluster) = RedisCluster::start_with(ClusterOptions {
        masters: 3,
        replicas: 0,
        tls: Some(&pki),
        user: Some((USER, PASSWORD)),
    })
    .await
    else {
        return;
    };
    let mock = exact_mock(20).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = Auth {
        pki: &pki,
        password: PASSWORD,
        ca: true,
        client_cert: true,
    };
    let block = redis_block(
        dir.path(),
        &cluster.url(),
        &cluster.other_urls(),
        "tlscluster",
        &auth,
    );
    let cfg = config_on(&mock, &block, "closed", 0.10);
    let proxies: Vec<ProxyProc> = (0..2).map(|_| ProxyProc::start(&cfg)).collect();
    let (ok, refused) = spend_concurrently(&proxies, 30).await;
    assert_eq!((ok, refused), (10, 20), "exactly $0.10 admitted");
    let keys = cluster.keys("{tlscluster}:*").await;
    let nodes: std::collections::BTreeSet<&str> =
        keys.iter().map(|k| k.split_once(' ').unwrap().0).collect();
    assert_eq!(nodes.len(), 1, "{keys:?}");
    let c = client();
    let q = cacheable("a cached answer in a tls cluster");
    let first = post_chat(&c, &proxies[0], &q, &[]).await;
    assert_eq!(header(&first, "x-tollgate-cache").as_deref(), Some("miss"));
    wait_for(
        "a hit on the other proxy",
        Duration::from_secs(10),
        || async {
            let r = post_chat(&c, &proxies[1], &q, &[]).await;
            (header(&r, "x-tollgate-cache").as_deref() == Some("hit")).then_some(())
        },
    )
    .await;
    for p in &proxies {
        no_secret_shown(p, &pki).await;
    }
}

/// Sentinel-managed Redis over TLS only: the master, the replica and three
/// Sentinels serve TLS alone and ask every client for a certificate; the
/// Sentinels reach the master, the replica and each other over TLS. Two
/// proxies with `rediss://` Sentinel URLs and the test CA spend through
/// the master; it is SIGKILLed, the Sentinels promote the replica, and the
/// budget goes on from the spend it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_budget_follows_a_sentinel_failover_over_tls() {
    let pki = Pki::generate();
    let Some(mut sentinel) = RedisSentinel::start_with(SentinelOptions {
        sentinels: 3,
        tls: Some(&pki),
    })
    .await
    else {
        return;
    };
    let auth = Auth {
        pki: &pki,
        password: "",
        ca: true,
        client_cert: true,
    };
    let redis = sentinel.store(&format!(
        "keyPrefix: tlssent, timeout: 1s, tls: {}",
        tls_block(&auth)
    ));
    budget_follows_a_sentinel_failover(&mut sentinel, &redis).await;
}
