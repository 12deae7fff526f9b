//! Black-box: the semantic index shared through Redis — an answer stored
//! through one proxy is a semantic hit on the others within a second, a
//! proxy started later warms up from the stream, an outage leaves every
//! proxy its own index (and inserts) and the followers resume after it, a
//! Redis Cluster holds each stream under its own hash tag, followers go on
//! after a Sentinel failover, and `semantic.shared: false` keeps each index
//! to itself.
//!
//! The mock's `bag-of-words-1` embeddings make "What is a toll road?" and
//! "what is a TOLL road" identical (cosine 1).

mod harness;

use std::time::{Duration, Instant};

use harness::*;
use serde_json::{json, Value};
use tollgate_tests::redis::{Redis, RedisCluster};

fn single(redis: &Redis) -> String {
    format!("{{url: '{}', timeout: 200ms}}", redis.url())
}

fn start(m: &MockServer, store: &str) -> ProxyProc {
    ProxyProc::start(&config(&m.url(), "", &semantic_on_redis(store, "")))
}

struct Answer {
    status: u16,
    cache: Option<String>,
    content: String,
}

async fn ask(proxy: &ProxyProc, text: &str) -> Answer {
    ask_with(proxy, text, &[]).await
}

async fn ask_with(proxy: &ProxyProc, text: &str, headers: &[(&str, &str)]) -> Answer {
    let mut body = chat("faq", text, false);
    body["temperature"] = json!(0);
    let mut req = client()
        .post(format!("{}/v1/chat/completions", proxy.url))
        .json(&body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let cache = resp
        .headers()
        .get("x-tollgate-cache")
        .map(|v| v.to_str().unwrap().to_string());
    let v: Value = resp.json().await.unwrap();
    Answer {
        status,
        cache,
        content: v["choices"][0]["message"]["content"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    }
}

/// A counter of the shared index on `proxy`'s /metrics (0 when absent).
async fn shared(proxy: &ProxyProc, name: &str, label: (&str, &str)) -> f64 {
    let text = proxy.metrics().await;
    metric(
        &text,
        &format!("tollgate_cache_semantic_shared_{name}"),
        &[label],
    )
    .unwrap_or(0.0)
}

/// Entries of other proxies indexed, by following or (when the insert
/// beat the follower's start) by the warm-up.
async fn indexed(proxy: &ProxyProc) -> f64 {
    shared(proxy, "followed_total", ("result", "indexed")).await
        + shared(proxy, "warmup_entries_total", ("result", "indexed")).await
}

/// Waits until `proxy`'s `name{label}` reaches `at_least`.
async fn reaches(
    proxy: &ProxyProc,
    name: &str,
    label: (&str, &str),
    at_least: f64,
    within: Duration,
) {
    wait_for(
        &format!("{name}{label:?} >= {at_least}"),
        within,
        || async { (shared(proxy, name, label).await >= at_least).then_some(()) },
    )
    .await;
}

fn chat_calls(m: &MockServer) -> usize {
    m.requests()
        .iter()
        .filter(|r| r.path == "/v1/chat/completions")
        .count()
}

#[tokio::test]
async fn an_answer_stored_through_one_proxy_is_a_semantic_hit_on_the_others() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let m = mock().await;
    let store = single(&redis);
    let (a, b, c) = (start(&m, &store), start(&m, &store), start(&m, &store));
    let first = ask(&a, "What is a toll road?").await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    // In B's and C's indexes within a second of the insert.
    let stored = Instant::now();
    for p in [&b, &c] {
        wait_for(
            "the other proxies follow the insert",
            Duration::from_secs(1),
            || async { (indexed(p).await >= 1.0).then_some(()) },
        )
        .await;
    }
    eprintln!("followed by B and C within {:?}", stored.elapsed());
    for p in [&b, &c] {
        let hit = ask(p, "what is a TOLL road").await;
        assert_eq!(
            (hit.status, hit.cache.as_deref()),
            (200, Some("semantic-hit"))
        );
        assert_eq!(hit.content, first.content);
    }
    assert_eq!(chat_calls(&m), 1, "one answer from upstream, three served");
    // A's own insert came back from the stream and was not indexed twice.
    wait_for("A skips its own insert", Duration::from_secs(5), || async {
        let own = shared(&a, "followed_total", ("result", "own")).await
            + shared(&a, "warmup_entries_total", ("result", "own")).await;
        (own >= 1.0).then_some(())
    })
    .await;
    let text = a.metrics().await;
    assert_eq!(
        metric(&text, "tollgate_cache_semantic_entries", &[]),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &text,
            "tollgate_cache_semantic_shared_published_total",
            &[("result", "published")]
        ),
        Some(1.0)
    );
    let text = b.metrics().await;
    assert_eq!(
        metric(
            &text,
            "tollgate_cache_semantic_shared_lag_seconds_count",
            &[]
        ),
        metric(
            &text,
            "tollgate_cache_semantic_shared_followed_total",
            &[("result", "indexed")]
        ),
        "a lag for each followed entry"
    );
    // A proxy started later is ready at once and serves it after warming up.
    let d = start(&m, &store);
    let ready = reqwest::get(format!("{}/readyz", d.admin)).await.unwrap();
    assert_eq!(ready.status(), 200);
    reaches(
        &d,
        "warmup_entries_total",
        ("result", "indexed"),
        1.0,
        Duration::from_secs(10),
    )
    .await;
    let late = ask(&d, "what is a toll road").await;
    assert_eq!(late.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(late.content, first.content);
    assert_eq!(chat_calls(&m), 1);
    assert_eq!(
        metric(
            &d.metrics().await,
            "tollgate_cache_semantic_shared_warmup_duration_seconds_count",
            &[]
        ),
        Some(1.0)
    );
}

#[tokio::test]
async fn an_outage_leaves_every_proxy_its_own_index_and_the_followers_resume() {
    let Some(mut redis) = Redis::start().await else {
        return;
    };
    let m = mock().await;
    let store = single(&redis);
    let (a, b) = (start(&m, &store), start(&m, &store));
    assert_eq!(
        ask(&a, "What is a toll road?").await.cache.as_deref(),
        Some("miss")
    );
    wait_for("B follows A", Duration::from_secs(5), || async {
        (indexed(&b).await >= 1.0).then_some(())
    })
    .await;
    // Served on B once: its answer is now in B's memory too.
    assert_eq!(
        ask(&b, "what is a TOLL road").await.cache.as_deref(),
        Some("semantic-hit")
    );

    redis.stop();
    // A inserts and serves locally; B still serves what it has.
    assert_eq!(
        ask(&a, "How tall is Mount Everest?").await.cache.as_deref(),
        Some("miss")
    );
    assert_eq!(
        ask(&a, "how tall is mount everest").await.cache.as_deref(),
        Some("semantic-hit")
    );
    assert_eq!(
        ask(&b, "what is a toll road").await.cache.as_deref(),
        Some("semantic-hit")
    );
    for p in [&a, &b] {
        wait_for(
            "follower errors counted",
            Duration::from_secs(10),
            || async {
                let errors = shared(p, "follower_errors_total", ("reason", "error")).await
                    + shared(p, "follower_errors_total", ("reason", "timeout")).await;
                (errors >= 1.0).then_some(())
            },
        )
        .await;
    }
    // The insert made during the outage stayed local, counted.
    wait_for(
        "the unshared insert counted",
        Duration::from_secs(5),
        || async {
            let local = shared(&a, "published_total", ("result", "error")).await
                + shared(&a, "published_total", ("result", "timeout")).await;
            (local >= 1.0).then_some(())
        },
    )
    .await;

    redis.restart().await;
    for p in [&a, &b] {
        reaches(
            p,
            "follower_resumes_total",
            ("from", "cursor"),
            1.0,
            Duration::from_secs(15),
        )
        .await;
    }
    let before = indexed(&a).await;
    assert_eq!(
        ask(&b, "Who wrote Hamlet?").await.cache.as_deref(),
        Some("miss")
    );
    wait_for("A follows B again", Duration::from_secs(5), || async {
        (indexed(&a).await > before).then_some(())
    })
    .await;
    assert_eq!(
        ask(&a, "who wrote hamlet").await.cache.as_deref(),
        Some("semantic-hit")
    );
    // What A inserted while Redis was gone never reached B.
    assert_eq!(
        ask(&b, "how tall is MOUNT everest").await.cache.as_deref(),
        Some("miss")
    );
}

#[tokio::test]
async fn a_redis_cluster_holds_each_stream_under_its_own_hash_tag() {
    let Some(cluster) = RedisCluster::start(3).await else {
        return;
    };
    let m = mock().await;
    let nodes = cluster
        .other_urls()
        .iter()
        .map(|u| format!("'{u}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let store = format!(
        "{{url: '{}', cluster: true, nodes: [{nodes}], timeout: 2s}}",
        cluster.url()
    );
    let (a, b) = (start(&m, &store), start(&m, &store));
    let first = ask(&a, "What is a toll road?").await;
    wait_for(
        "B follows A on the cluster",
        Duration::from_secs(10),
        || async { (indexed(&b).await >= 1.0).then_some(()) },
    )
    .await;
    let hit = ask(&b, "what is a TOLL road").await;
    assert_eq!(hit.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(hit.content, first.content);
    let keys = cluster.keys("tollgate:semantic:*").await;
    assert_eq!(keys.len(), 1, "{keys:?}");
    let key = keys[0].split_once(' ').unwrap().1;
    assert!(
        key.starts_with("tollgate:semantic:{") && key.ends_with('}'),
        "{key}"
    );
}

/// Sentinel-managed Redis: the followers go on after a failover (the
/// stream was replicated; each connection asks the Sentinel again).
#[tokio::test]
async fn followers_go_on_after_a_sentinel_failover() {
    use tollgate_tests::redis::{RedisSentinel, SENTINEL_MASTER};
    let Some(mut sentinel) = RedisSentinel::start().await else {
        return;
    };
    let m = mock().await;
    let store = format!(
        "{{url: '{}', sentinel: {{masterName: {SENTINEL_MASTER}}}, timeout: 500ms}}",
        sentinel.url()
    );
    let (a, b) = (start(&m, &store), start(&m, &store));
    assert_eq!(
        ask(&a, "What is a toll road?").await.cache.as_deref(),
        Some("miss")
    );
    wait_for("B follows A", Duration::from_secs(5), || async {
        (indexed(&b).await >= 1.0).then_some(())
    })
    .await;
    sentinel.replicate().await;
    sentinel.kill_master().await;
    // After the failover, B's insert reaches A through the new master (an
    // insert made while the master was gone stays local: asked again, as a
    // refresh, until one is shared).
    let before = indexed(&a).await;
    wait_for(
        "A follows an insert on B after the failover",
        Duration::from_secs(20),
        || async {
            ask_with(&b, "Who wrote Hamlet?", &[("x-tollgate-cache", "refresh")]).await;
            (indexed(&a).await > before).then_some(())
        },
    )
    .await;
    // Both serve what they follow: each answer is on the new master. (The
    // first call on a connection that still points at the old master
    // fails and makes it ask the Sentinel again: a miss, which the mock
    // then fails, so that nothing new is stored.)
    for (p, text) in [(&a, "who wrote hamlet"), (&b, "what is a TOLL road")] {
        wait_for(
            "a semantic hit after the failover",
            Duration::from_secs(10),
            || async {
                let asked = ask_with(p, text, &[("x-mock-status", "500")]).await;
                (asked.cache.as_deref() == Some("semantic-hit")).then_some(())
            },
        )
        .await;
    }
}

#[tokio::test]
async fn semantic_shared_false_keeps_each_index_to_itself() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let m = mock().await;
    let cfg = config(
        &m.url(),
        "",
        &semantic_on_redis(&single(&redis), "    shared: false\n"),
    );
    let (a, b) = (ProxyProc::start(&cfg), ProxyProc::start(&cfg));
    assert_eq!(
        ask(&a, "What is a toll road?").await.cache.as_deref(),
        Some("miss")
    );
    // The exact answer is shared as ever (a miss on B fails upstream, so
    // B stores nothing of its own)…
    wait_for(
        "the exact answer in Redis",
        Duration::from_secs(5),
        || async {
            let a = ask_with(&b, "What is a toll road?", &[("x-mock-status", "500")]).await;
            (a.cache.as_deref() == Some("hit")).then_some(())
        },
    )
    .await;
    // …the index is not.
    assert_eq!(
        ask(&b, "what is a TOLL road").await.cache.as_deref(),
        Some("miss")
    );
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let streams: Vec<String> = redis::cmd("KEYS")
        .arg("tollgate:semantic:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(streams.is_empty(), "{streams:?}");
    assert_eq!(
        shared(&a, "published_total", ("result", "published")).await,
        0.0
    );
}
