//! Warm-up of the shared semantic index from Redis, against a real
//! `redis-server` (on PATH; not run in CI): 100,000 entries shaped like
//! MiniLM's (384 dimensions, one partition, a short prompt's guard
//! profile) are written to a route's stream, then a replica made with the
//! proxy's own config and connection code reads them. Printed: the bytes
//! Redis holds per entry, the time until every entry is in the replica's
//! index (searchable, by exact scan) and the warm-up duration metric, then
//! the time until the partition's HNSW graph, held back during the
//! warm-up, is built in the background.
//!
//! The replica runs on one core: the process pins itself to CPU 0 with
//! `taskset` once `redis-server` (its child, left on every core) is up.
//!
//! `cargo bench -p tollgate-proxy --bench semantic_warmup [-- ENTRIES]`;
//! `TOLLGATE_BENCH_NO_GRAPH=1` skips waiting for the graph.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_proxy::cache::semantic::index::{Query, Slot};
use tollgate_proxy::cache::semantic::shared::entry::{encode, Meta};
use tollgate_proxy::cache::semantic::shared::{embedder_id, streams, Owner};
use tollgate_proxy::cache::semantic::Profile;
use tollgate_proxy::cache::{CacheMetrics, Key, ResponseCache};
use tollgate_tests::redis::Redis;

#[path = "cache/data.rs"]
#[allow(dead_code)]
mod data;

use data::{Rng, Source};

const DIMS: usize = 384;

fn config(url: &str, entries: usize) -> tollgate_config::Config {
    tollgate_config::from_yaml_str(&format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nmetadata: {{name: bench}}\nproviders:\n  - {{name: openai, type: openai, passthrough: true, models: [m, e]}}\nrouting:\n  routes:\n    - {{name: faq, targets: [{{provider: openai, model: m}}]}}\ncache:\n  ttl: 1h\n  maxEntries: {entries}\n  store: {{type: redis, redis: {{url: '{url}', timeout: 2s}}}}\n  semantic:\n    embedders: [{{name: small, provider: openai, model: e}}]\n  routes:\n    - {{name: faq, semantic: {{}}}}\n"
    ))
    .expect("bench config")
}

fn main() {
    let entries: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(100_000);
    let setup = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let Some(redis) = setup.block_on(Redis::start()) else {
        eprintln!("semantic_warmup: redis-server not found, skipped");
        return;
    };
    let cfg = config(&redis.url(), entries);
    let owner = Owner {
        policy: "bench",
        providers: &cfg.providers,
    };
    let stream = streams(&cfg.cache, owner, "tollgate").remove(0);
    let identity = cfg.cache.semantic.embedders[0].identity(&cfg.providers);
    assert_eq!(stream.embedder, embedder_id(&identity));
    let part = Key([7; 32]);
    let profile = Profile::of(["How do I reverse a list in Python 3?"]);
    let source = Source::latent(DIMS, 64, 0.7, &mut Rng::new(7));
    let mut rng = Rng::new(42);
    let probe = source.draw(&mut rng);

    // Write the stream as publishing proxies would (in pipelines of 1,000).
    let started = Instant::now();
    let bytes_written = setup.block_on(async {
        let client = redis::Client::open(redis.url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let mut total = 0usize;
        for chunk in (0..entries).collect::<Vec<_>>().chunks(1000) {
            let mut pipe = redis::pipe();
            for &i in chunk {
                let query = if i == entries / 2 {
                    probe.clone()
                } else {
                    source.draw(&mut rng)
                };
                let slot = Slot {
                    part,
                    key: Key([(i % 251) as u8; 32]),
                    query: query.into_boxed_slice(),
                    context: None,
                    profile: profile.clone(),
                    expires: Instant::now() + Duration::from_secs(3600),
                    text: None,
                };
                let meta = Meta {
                    origin: 1,
                    inserted_ms: now_ms,
                    ttl_ms: 3_600_000,
                    embedder: stream.embedder,
                };
                let e = encode(&meta, &slot);
                total += e.len();
                pipe.cmd("XADD").arg(&stream.key).arg("*").arg("e").arg(e).ignore();
            }
            let () = pipe.query_async(&mut conn).await.unwrap();
        }
        let used: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&stream.key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut conn)
            .await
            .unwrap();
        eprintln!(
            "wrote {entries} entries in {:.1?}: {} bytes each encoded, Redis holds {} bytes per entry ({:.1} MiB)",
            started.elapsed(),
            total / entries,
            used as usize / entries,
            used as f64 / (1 << 20) as f64
        );
        total
    });
    drop(setup);
    let _ = bytes_written;

    // One core from here on (redis-server keeps its own).
    let pinned = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", "0", &std::process::id().to_string()])
        .output()
        .is_ok_and(|o| o.status.success());
    eprintln!(
        "replica pinned to CPU 0: {}",
        if pinned { "yes" } else { "no (taskset failed)" }
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let metrics = Arc::new(CacheMetrics::new());
        let started = Instant::now();
        let cache = ResponseCache::new(&cfg.cache, owner, None, metrics.clone())
            .await
            .unwrap();
        let index = cache.semantic().index().clone();
        while index.len() < entries {
            assert!(
                started.elapsed() < Duration::from_secs(600),
                "warm-up stuck at {}",
                index.len()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let warm = started.elapsed();
        let found = |threshold| {
            index
                .search(&Query {
                    part: &part,
                    query: &probe,
                    threshold,
                    limit: 8,
                })
                .len()
        };
        let t = Instant::now();
        let hits = found(0.999);
        let scan = t.elapsed();
        eprintln!(
            "warm-up of {entries} entries on one core: in the index after {warm:.2?} (metric: {:.2}s over {} stream); a lookup meanwhile (exact scan) {scan:.1?}, found {hits}",
            metrics.shared.warmup_duration.get_sample_sum(),
            metrics.shared.warmup_duration.get_sample_count(),
        );
        if std::env::var_os("TOLLGATE_BENCH_NO_GRAPH").is_some() {
            return;
        }
        while index.graph_points(&part).is_none() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let t = Instant::now();
        let hits = found(0.999);
        eprintln!(
            "graph of {} points built {:.1?} after the warm-up ended; a lookup through it {:.1?}, found {hits}",
            index.graph_points(&part).unwrap(),
            started.elapsed() - warm,
            t.elapsed()
        );
    });
}
