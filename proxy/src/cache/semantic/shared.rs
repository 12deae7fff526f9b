//! The shared semantic index: the proxies of a policy learn from each
//! other's inserts through Redis, and a new proxy starts warm.
//!
//! On a route whose cache store is Redis (unless `semantic.shared: false`),
//! each insert into the local index is also appended, once its answer is
//! in Redis, to a Redis stream of the policy, route and embedder
//! ([`Stream`]): the vectors as `f32` bytes, the partition, the guard's
//! profile, the answer's exact-cache key, the insert time and TTL, and the
//! index that wrote it ([`entry`]). Every proxy keeps its own in-memory
//! index for sub-millisecond lookups and follows its routes' streams in
//! the background ([`follow`]): first what they hold (the warm-up; the
//! proxy is ready before it ends), then what arrives. Its own inserts come
//! back and are skipped. The answer stays in the exact cache: a followed
//! entry whose answer has expired there is a miss, and is dropped.
//!
//! A stream is trimmed to about `maxEntries` entries and to the route's
//! TTL at each insert, and expires a TTL after its last insert. While
//! Redis is down inserts stay local and followers retry; they resume after
//! the last entry they read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::{CancellationToken, DropGuard};
use tollgate_config::{Cache as CacheConfig, Provider, RedisStore};
use tollgate_spend::redis_conn::Conn;
use tollgate_spend::RedisSecrets;

pub mod entry;
mod follow;
mod metrics;
pub(crate) mod reply;
#[cfg(test)]
mod tests;

pub use metrics::SharedMetrics;

use self::follow::Follower;
use self::reply::StreamId;
use super::index::Index;
use crate::cache::{now_ms, CacheError, CacheMetrics};

/// Whose streams: the policy (the config's name) and the providers that
/// the embedders' identities name.
#[derive(Clone, Copy)]
pub struct Owner<'a> {
    pub policy: &'a str,
    pub providers: &'a [Provider],
}

/// One route's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub route: String,
    /// `{prefix}:semantic:{<hash of policy, route, embedder>}`: a hash tag
    /// of its own, so streams spread over a Redis Cluster.
    pub key: String,
    /// The first bytes of the SHA-256 of the embedder's identity: entries
    /// of another embedder are never read into this route's partitions.
    pub embedder: [u8; 8],
    pub ttl: Duration,
}

/// The streams of `cfg`'s shared routes.
pub fn streams(cfg: &CacheConfig, owner: Owner<'_>, prefix: &str) -> Vec<Stream> {
    cfg.routes
        .iter()
        .filter_map(|(route, rc)| {
            let rs = rc.semantic.as_ref().filter(|s| rc.enabled && s.shared)?;
            let identity = cfg.semantic.embedders[rs.embedder].identity(owner.providers);
            let mut h = Sha256::new();
            for part in [
                "tollgate-semantic-stream-v1",
                owner.policy,
                route,
                &identity,
            ] {
                // Length-prefixed, so no two triples concatenate alike.
                h.update((part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
            let hash = h.finalize();
            Some(Stream {
                route: route.clone(),
                key: format!("{prefix}:semantic:{{{}}}", hex::encode(&hash[..16])),
                embedder: embedder_id(&identity),
                ttl: rc.ttl,
            })
        })
        .collect()
}

pub fn embedder_id(identity: &str) -> [u8; 8] {
    let d = Sha256::digest(identity.as_bytes());
    d[..8].try_into().expect("eight bytes")
}

/// Who an index is, and how far it has read each stream. Kept with the
/// index across reloads, so that a new follower resumes where the last
/// stopped; an index made afresh gets new ones and warms up afresh.
pub struct Cursors {
    /// Written into each entry this index publishes, so that it skips them
    /// when they come back.
    origin: u64,
    read: Mutex<HashMap<String, StreamId>>,
}

impl Cursors {
    pub fn new() -> Arc<Cursors> {
        Arc::new(Cursors {
            origin: rand::random(),
            read: Mutex::default(),
        })
    }

    pub(crate) fn origin(&self) -> u64 {
        self.origin
    }

    fn get(&self, key: &str) -> Option<StreamId> {
        self.read.lock().expect("cursors").get(key).copied()
    }

    fn set(&self, key: &str, id: StreamId) {
        self.read
            .lock()
            .expect("cursors")
            .insert(key.to_string(), id);
    }

    /// Moves `key`'s cursor to `last` (never back) and returns where it
    /// was: the entries up to `last` after that are the caller's to index,
    /// so that two followers of one index (across a reload) never index
    /// one entry twice.
    fn claim(&self, key: &str, last: StreamId) -> Option<StreamId> {
        let mut read = self.read.lock().expect("cursors");
        let before = read.get(key).copied();
        if before.is_none_or(|b| b < last) {
            read.insert(key.to_string(), last);
        }
        before
    }
}

/// An insert to append to its route's stream.
pub struct Publish {
    pub(crate) stream: Arc<Stream>,
    pub(crate) bytes: Vec<u8>,
}

/// The Redis connection the cache uses, and what it was made from.
pub(crate) struct Link<'a> {
    pub(crate) settings: &'a RedisStore,
    pub(crate) secrets: &'a RedisSecrets,
    pub(crate) conn: &'a Conn,
}

/// The shared routes' streams and their followers, which stop when this
/// is dropped (with the last runtime holding it).
pub struct Sharing {
    settings: RedisStore,
    secrets: RedisSecrets,
    streams: Vec<Arc<Stream>>,
    max_len: u64,
    conn: Conn,
    index: Arc<Index>,
    metrics: Arc<CacheMetrics>,
    _stop: DropGuard,
}

impl Sharing {
    /// Follows `streams` into `index`; `previous`'s sharing when nothing
    /// it depends on changed (its followers go on).
    pub(crate) fn start(
        streams: Vec<Stream>,
        max_len: u64,
        link: Link<'_>,
        index: &Arc<Index>,
        cursors: &Arc<Cursors>,
        metrics: &Arc<CacheMetrics>,
        previous: Option<&Arc<Sharing>>,
    ) -> Result<Arc<Sharing>, CacheError> {
        if let Some(p) = previous {
            let same = p.settings == *link.settings
                && p.secrets == *link.secrets
                && p.max_len == max_len
                && Arc::ptr_eq(&p.index, index)
                && p.streams.iter().map(|s| &**s).eq(streams.iter());
            if same {
                return Ok(p.clone());
            }
        }
        let streams: Vec<Arc<Stream>> = streams.into_iter().map(Arc::new).collect();
        let stop = CancellationToken::new();
        // A follower's own connection, whose calls may block for BLOCK.
        let mut follow = link.settings.clone();
        follow.timeout = link.settings.timeout + follow::BLOCK;
        // One XREAD covers every stream, except in a cluster, where each
        // stream (its own hash tag) may live on another node.
        let groups: Vec<Vec<Arc<Stream>>> = if link.settings.cluster {
            streams.iter().map(|s| vec![s.clone()]).collect()
        } else {
            vec![streams.clone()]
        };
        for group in groups.into_iter().filter(|g| !g.is_empty()) {
            let conn = tollgate_spend::redis_conn::connect_lazy(&follow, link.secrets)
                .map_err(CacheError::RedisConfig)?;
            let follower = Follower {
                conn,
                streams: group,
                index: index.clone(),
                cursors: cursors.clone(),
                metrics: metrics.clone(),
                timeout: follow.timeout,
            };
            tokio::spawn(follower.run(stop.clone()));
        }
        Ok(Arc::new(Sharing {
            settings: link.settings.clone(),
            secrets: link.secrets.clone(),
            streams,
            max_len,
            conn: link.conn.clone(),
            index: index.clone(),
            metrics: metrics.clone(),
            _stop: stop.drop_guard(),
        }))
    }

    /// The stream of `route`, if it is shared.
    pub(crate) fn stream(&self, route: &str) -> Option<&Arc<Stream>> {
        self.streams.iter().find(|s| s.route == route)
    }

    /// Appends an insert to its stream (after its answer is in Redis),
    /// trimming the stream to `maxEntries` and the TTL; a failure leaves
    /// the insert local, counted.
    pub(crate) async fn publish(&self, p: Publish) {
        let ttl_ms = p.stream.ttl.as_millis().max(1) as u64;
        let key = &p.stream.key;
        let pipe = redis::pipe()
            .cmd("XADD")
            .arg(key)
            .arg("MAXLEN")
            .arg("~")
            .arg(self.max_len)
            .arg("*")
            .arg("e")
            .arg(&p.bytes)
            .ignore()
            .cmd("XTRIM")
            .arg(key)
            .arg("MINID")
            .arg("~")
            .arg(now_ms().saturating_sub(ttl_ms))
            .ignore()
            .cmd("PEXPIRE")
            .arg(key)
            .arg(ttl_ms)
            .ignore()
            .to_owned();
        let mut conn = self.conn.clone();
        let timeout = self.settings.timeout;
        let result = match tokio::time::timeout(timeout, pipe.query_async::<()>(&mut conn)).await {
            Ok(Ok(())) => "published",
            Ok(Err(e)) => {
                tracing::warn!(error = %tollgate_spend::redis_conn::describe(&e), "semantic cache: cannot share an insert through Redis; it stays local");
                "error"
            }
            Err(_) => {
                tracing::warn!(
                    ?timeout,
                    "semantic cache: sharing an insert through Redis timed out; it stays local"
                );
                "timeout"
            }
        };
        self.metrics
            .shared
            .published
            .with_label_values(&[result])
            .inc();
    }
}
