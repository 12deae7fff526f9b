//! The shared index: entries in bytes and back, streams' names, which
//! entries a follower indexes (its own and claimed ones not), and, against
//! a real `redis-server`, replicas that see each other's inserts, a new one
//! that warms up, and followers that resume after a stream was trimmed
//! past them or made anew.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tollgate_tests::redis::Redis;

use super::entry::{decode, encode, Meta};
use super::follow::{index_page, Follower, Phase};
use super::reply::{Info, StreamId};
use super::*;
use crate::cache::semantic::index::{Query, Slot};
use crate::cache::semantic::vector::normalized;
use crate::cache::semantic::{Probe, Profile};
use crate::cache::{Entry, Key, ResponseCache};

const HOUR: Duration = Duration::from_secs(3600);

fn vector(seed: u32, dims: usize) -> Vec<f32> {
    let raw = (0..dims)
        .map(|i| ((seed as f32 + 1.0) * (i as f32 + 0.5)).sin())
        .collect();
    normalized(raw).unwrap()
}

fn slot(key: u8, v: Vec<f32>) -> Slot {
    Slot {
        part: Key([9; 32]),
        key: Key([key; 32]),
        query: v.into_boxed_slice(),
        context: None,
        profile: Profile::of(["Is 7 a prime number?"]),
        expires: Instant::now() + HOUR,
        text: None,
    }
}

fn meta(origin: u64) -> Meta {
    Meta {
        origin,
        inserted_ms: now_ms(),
        ttl_ms: 3_600_000,
        embedder: [1; 8],
    }
}

#[test]
fn an_entry_reads_back_as_written() {
    let mut s = slot(3, vector(1, 384));
    s.context = Some(vector(2, 384).into_boxed_slice());
    s.text = Some(Arc::from("Is 7 a prime number?"));
    s.profile = Profile::of(["Be brief.", "Did Alice call Bob before 9 or after?"]);
    let m = meta(42);
    let bytes = encode(&m, &s);
    // f32 vectors and a short profile: about 4 bytes a dimension.
    assert!(bytes.len() < 2 * 384 * 4 + 400, "{}", bytes.len());
    let now = Instant::now();
    let (back, b) = decode(&bytes, m.inserted_ms + 1000, now).unwrap();
    assert_eq!(back, m);
    assert_eq!((b.part, b.key), (s.part, s.key));
    assert_eq!(b.query, s.query);
    assert_eq!(b.context, s.context);
    assert_eq!(b.profile, s.profile);
    assert_eq!(b.text, s.text);
    // The TTL runs from the insert, not from the arrival.
    let left = b.expires - now;
    assert!(left <= HOUR - Duration::from_millis(999) && left > HOUR - Duration::from_secs(2));
}

#[test]
fn damaged_or_foreign_entries_are_not_read() {
    let bytes = encode(&meta(1), &slot(1, vector(1, 16)));
    let (now_ms, now) = (now_ms(), Instant::now());
    // Every truncation, and a byte more.
    for n in 0..bytes.len() {
        assert!(decode(&bytes[..n], now_ms, now).is_none(), "{n} bytes");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(decode(&longer, now_ms, now).is_none());
    // Another version.
    let mut v2 = bytes.clone();
    v2[0] = 2;
    assert!(decode(&v2, now_ms, now).is_none());
    // A length far beyond the bytes allocates nothing and fails.
    let mut huge = bytes.clone();
    let at = 2 + 8 * 3 + 8 + 64;
    huge[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(decode(&huge, now_ms, now).is_none());
    // A vector with a NaN could never be similar.
    let mut nan = slot(1, vector(1, 16));
    nan.query[3] = f32::NAN;
    assert!(decode(&encode(&meta(1), &nan), now_ms, now).is_none());
    // A TTL beyond any config's is cut to 30 days.
    let mut m = meta(1);
    m.ttl_ms = u64::MAX;
    let (_, s) = decode(&encode(&m, &slot(1, vector(1, 16))), now_ms, now).unwrap();
    assert!(s.expires - now <= Duration::from_secs(30 * 86_400));
}

fn config(yaml_cache: &str) -> tollgate_config::Config {
    tollgate_config::from_yaml_str(&format!(
        "apiVersion: tollgate.dev/v1alpha1\nkind: ProxyConfig\nmetadata: {{name: team-a}}\nproviders:\n  - {{name: openai, type: openai, passthrough: true, models: [m, e]}}\nrouting:\n  routes:\n    - {{name: faq, targets: [{{provider: openai, model: m}}]}}\n    - {{name: chat, targets: [{{provider: openai, model: m}}]}}\n    - {{name: private, targets: [{{provider: openai, model: m}}]}}\ncache:\n  ttl: 10m\n{yaml_cache}  semantic:\n    embedders:\n      - {{name: small, provider: openai, model: e}}\n      - {{name: other, provider: openai, model: e, dimensions: 64}}\n  routes:\n    - {{name: faq, semantic: {{embedder: small}}}}\n    - {{name: chat, ttl: 1m, semantic: {{embedder: other}}}}\n    - {{name: private, semantic: {{embedder: small, shared: false}}}}\n"
    ))
    .unwrap()
}

fn store(url: &str) -> String {
    format!("  store: {{type: redis, redis: {{url: '{url}', keyPrefix: tg, timeout: 500ms}}}}\n")
}

fn owner(c: &tollgate_config::Config) -> Owner<'_> {
    Owner {
        policy: c.name.as_deref().unwrap_or(""),
        providers: &c.providers,
    }
}

#[test]
fn each_shared_route_has_its_own_stream_and_hash_tag() {
    let c = config(&store("redis://127.0.0.1:1"));
    let s = streams(&c.cache, owner(&c), "tg");
    let routes: Vec<&str> = s.iter().map(|s| s.route.as_str()).collect();
    assert_eq!(routes, ["chat", "faq"], "the unshared route has none");
    for st in &s {
        assert!(st.key.starts_with("tg:semantic:{") && st.key.ends_with('}'));
    }
    assert_ne!(s[0].key, s[1].key);
    assert_ne!(s[0].embedder, s[1].embedder, "two embedders");
    assert_eq!(
        (s[0].ttl, s[1].ttl),
        (Duration::from_secs(60), Duration::from_secs(600))
    );
    // Another policy: other streams.
    let mut other = c.clone();
    other.name = Some("team-b".into());
    let t = streams(&other.cache, owner(&other), "tg");
    assert!(s.iter().zip(&t).all(|(a, b)| a.key != b.key));
}

/// A page of entries of the stream `k`, ids 1-0, 2-0, ….
fn page(entries: &[(u64, u8)]) -> Vec<reply::Item> {
    entries
        .iter()
        .enumerate()
        .map(|(i, (origin, key))| {
            let id = StreamId::new(i as u64 + 1, 0);
            (
                id,
                Some(encode(&meta(*origin), &slot(*key, vector(*key as u32, 32)))),
            )
        })
        .collect()
}

#[test]
fn a_follower_skips_its_own_inserts_and_what_another_claimed() {
    let index = Index::new(100, 1000);
    let cursors = Cursors::new();
    let metrics = CacheMetrics::new();
    let me = cursors.origin();
    let entries = page(&[(me, 1), (7, 2), (me, 3), (7, 4)]);
    index_page(
        &index,
        &cursors,
        &metrics,
        ("k", [1; 8]),
        entries.clone(),
        Phase::Follow,
    );
    assert_eq!(index.len(), 2, "only the other proxy's two");
    let followed = |r: &str| metrics.shared.followed.with_label_values(&[r]).get();
    assert_eq!((followed("indexed"), followed("own")), (2, 2));
    assert_eq!(metrics.shared.lag.get_sample_count(), 2);
    // The same page again (a second follower across a reload): claimed.
    index_page(
        &index,
        &cursors,
        &metrics,
        ("k", [1; 8]),
        entries,
        Phase::Follow,
    );
    assert_eq!(index.len(), 2);
    // Another embedder's entries, or expired ones, never go in.
    let mut old = meta(7);
    old.inserted_ms -= 4_000_000;
    old.embedder = [2; 8];
    let foreign = vec![
        (StreamId::new(10, 0), page(&[(7, 5)])[0].1.clone()),
        (
            StreamId::new(11, 0),
            Some(encode(&old, &slot(6, vector(6, 32)))),
        ),
        (StreamId::new(12, 0), Some(b"not an entry".to_vec())),
        (StreamId::new(13, 0), None),
    ];
    index_page(
        &index,
        &cursors,
        &metrics,
        ("k", [2; 8]),
        foreign,
        Phase::Warmup,
    );
    let warm = |r: &str| metrics.shared.warmup_entries.with_label_values(&[r]).get();
    assert_eq!((warm("invalid"), warm("expired")), (3, 1));
    assert_eq!(index.len(), 2);
    assert_eq!(
        metrics.shared.lag.get_sample_count(),
        2,
        "no lag for warm-ups"
    );
}

#[test]
fn a_cursor_no_longer_in_the_stream_was_trimmed_past() {
    let at = |ms| StreamId::new(ms, 0);
    let info = |first: Option<u64>| Info {
        last: at(100),
        first: first.map(at),
    };
    assert!(info(Some(50)).trimmed_past(at(30)));
    assert!(!info(Some(50)).trimmed_past(at(50)));
    assert!(!info(Some(50)).trimmed_past(at(70)));
    assert!(!info(None).trimmed_past(at(30)), "empty: nothing to miss");
    assert_eq!(
        StreamId::parse("1700000000000-3"),
        Some(StreamId::new(1_700_000_000_000, 3))
    );
    assert_eq!(StreamId::new(5, u64::MAX).next(), StreamId::new(6, 0));
}

// === against a real redis-server ===

/// A replica: a cache on `url` with the test config.
async fn replica(url: &str) -> (Arc<ResponseCache>, Arc<CacheMetrics>) {
    let c = config(&store(url));
    let m = Arc::new(CacheMetrics::new());
    let cache = ResponseCache::new(&c.cache, owner(&c), None, m.clone())
        .await
        .unwrap();
    (cache, m)
}

/// A probe of the route `faq` as an embedding would make it.
fn probe(cache: &ResponseCache, v: Vec<f32>) -> Probe {
    let c = cache.config();
    let route = *c.semantic_for(Some("faq")).unwrap();
    Probe {
        part: Key([9; 32]),
        text: None,
        query: v,
        context: None,
        profile: Profile::of(["Is 7 a prime number?"]),
        stream: cache
            .semantic()
            .sharing
            .as_ref()
            .and_then(|s| s.stream("faq").cloned()),
        route,
    }
}

fn answer() -> Entry {
    Entry {
        body: bytes::Bytes::from_static(br#"{"choices":[]}"#),
        usage: Default::default(),
        target: "openai/m".into(),
        stored_at_ms: now_ms(),
    }
}

fn finds(cache: &ResponseCache, v: &[f32]) -> bool {
    !cache
        .semantic()
        .index()
        .search(&Query {
            part: &Key([9; 32]),
            query: v,
            threshold: 0.99,
            limit: 8,
        })
        .is_empty()
}

async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_follow_each_other_and_a_new_one_warms_up() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (a, ma) = replica(&redis.url()).await;
    let (b, mb) = replica(&redis.url()).await;
    let v = vector(1, 64);
    assert!(a.put(Key([1; 32]), answer(), HOUR, Some(probe(&a, v.clone()))));
    assert!(finds(&a, &v), "indexed locally at once");
    until("B follows A's insert", || finds(&b, &v)).await;
    // (By its warm-up, if its follower had not started before the insert.)
    until("A's own insert came back and was skipped", || {
        ma.shared.followed.with_label_values(&["own"]).get()
            + ma.shared.warmup_entries.with_label_values(&["own"]).get()
            == 1
    })
    .await;
    assert_eq!(a.semantic().index().len(), 1);
    until("A counts its publish", || {
        ma.shared.published.with_label_values(&["published"]).get() == 1
    })
    .await;
    let followed = mb.shared.followed.with_label_values(&["indexed"]).get();
    let warmed = mb
        .shared
        .warmup_entries
        .with_label_values(&["indexed"])
        .get();
    assert_eq!(followed + warmed, 1);
    assert_eq!(mb.shared.lag.get_sample_count(), followed);
    // B's answer comes from Redis: the exact entry A stored.
    let key = b.semantic().find(&probe(&b, v.clone()))[0].key;
    assert!(matches!(
        b.fetch(&key).await,
        crate::cache::Fetched::Found(_)
    ));
    // A replica started later reads the stream first.
    let (c, mc) = replica(&redis.url()).await;
    until("C warms up", || finds(&c, &v)).await;
    assert_eq!(
        mc.shared
            .warmup_entries
            .with_label_values(&["indexed"])
            .get(),
        1
    );
    assert_eq!(
        mc.shared.warmup_duration.get_sample_count(),
        2,
        "one per stream"
    );
    // A route with `shared: false` publishes nothing.
    let private = *c.config().semantic_for(Some("private")).unwrap();
    assert!(!private.shared);
    assert!(c
        .semantic()
        .sharing
        .as_ref()
        .unwrap()
        .stream("private")
        .is_none());
}

/// A follower of the stream `faq` on its own connection, and the stream.
fn follower(redis: &Redis) -> (Follower, Arc<Stream>) {
    let c = config(&store(&redis.url()));
    let stream = Arc::new(
        streams(&c.cache, owner(&c), "tg")
            .into_iter()
            .find(|s| s.route == "faq")
            .unwrap(),
    );
    let tollgate_config::CacheStore::Redis(settings) = &c.cache.store else {
        panic!("a Redis store");
    };
    let conn = tollgate_spend::redis_conn::connect_lazy(settings, &Default::default()).unwrap();
    let f = Follower {
        conn,
        streams: vec![stream.clone()],
        index: Index::new(1000, 1000),
        cursors: Cursors::new(),
        metrics: Arc::new(CacheMetrics::new()),
        timeout: Duration::from_secs(5),
    };
    (f, stream)
}

async fn add(conn: &mut ::redis::aio::MultiplexedConnection, key: &str, n: u8, embedder: [u8; 8]) {
    for i in 0..n {
        let mut m = meta(7);
        m.embedder = embedder;
        let bytes = encode(&m, &slot(i, vector(u32::from(i) + 100, 32)));
        let _: String = ::redis::cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("e")
            .arg(bytes)
            .query_async(conn)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_follower_resumes_after_a_trim_and_rewarms_a_stream_made_anew() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let mut conn = ::redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let (f, s) = follower(&redis);
    let resumes = |from: &str| f.metrics.shared.resumes.with_label_values(&[from]).get();
    add(&mut conn, &s.key, 3, s.embedder).await;
    f.sync().await.unwrap();
    assert_eq!(f.index.len(), 3, "warmed up");
    // While it is away: 20 more, all but the last 5 trimmed.
    add(&mut conn, &s.key, 20, s.embedder).await;
    let _: u64 = ::redis::cmd("XTRIM")
        .arg(&s.key)
        .arg("MAXLEN")
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    f.sync().await.unwrap();
    assert_eq!(resumes("trimmed"), 1);
    assert_eq!(f.index.len(), 3 + 5, "the 5 kept");
    // Caught up: the next sync resumes from its cursor and reads nothing.
    f.sync().await.unwrap();
    assert_eq!((resumes("cursor"), f.index.len()), (1, 8));
    // The stream made anew (its ids below the cursor): read from its start.
    let _: u64 = ::redis::cmd("DEL")
        .arg(&s.key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let later = StreamId::new(now_ms() + 3_600_000, 0);
    f.cursors.set(&s.key, later);
    add(&mut conn, &s.key, 2, s.embedder).await;
    f.sync().await.unwrap();
    assert_eq!(resumes("reset"), 1);
    assert_eq!(f.index.len(), 10);
    assert!(f.cursors.get(&s.key).unwrap() < later);
}

#[tokio::test]
async fn a_reload_keeps_the_followers_unless_what_they_follow_changed() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let c = config(&store(&redis.url()));
    let m = Arc::new(CacheMetrics::new());
    let a = ResponseCache::new(&c.cache, owner(&c), None, m.clone())
        .await
        .unwrap();
    let sharing = |r: &ResponseCache| r.semantic().sharing.clone().unwrap();
    let same = ResponseCache::new(&c.cache, owner(&c), Some(&a), m.clone())
        .await
        .unwrap();
    assert!(Arc::ptr_eq(&sharing(&a), &sharing(&same)));
    // Another policy name: other streams, other followers, the same index
    // (and cursors, so nothing is read twice).
    let mut renamed = c.clone();
    renamed.name = Some("team-b".into());
    let b = ResponseCache::new(&renamed.cache, owner(&renamed), Some(&same), m.clone())
        .await
        .unwrap();
    assert!(!Arc::ptr_eq(&sharing(&same), &sharing(&b)));
    assert!(Arc::ptr_eq(same.semantic().index(), b.semantic().index()));
    assert!(Arc::ptr_eq(&same.semantic().cursors, &b.semantic().cursors));
    // The memory store: nothing shared (the old followers stop with the
    // last runtime holding them).
    let memory = config("");
    let local = ResponseCache::new(&memory.cache, owner(&memory), Some(&b), m)
        .await
        .unwrap();
    assert!(local.semantic().sharing.is_none());
}
