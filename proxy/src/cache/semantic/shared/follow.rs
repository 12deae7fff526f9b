//! A follower: reads its streams into the local index on its own Redis
//! connection (a blocking `XREAD` would hold up every call queued behind
//! it on the shared one).
//!
//! It first syncs each stream: reads, with `XRANGE` in pages, every entry
//! after its cursor — for a stream never read, every entry younger than
//! the route's TTL: the warm-up. Then it blocks on `XREAD` from the
//! cursors for what arrives. After a failed call it waits (100 ms,
//! doubling to 5 s, with jitter) and syncs again: from the cursor, which
//! reads what arrived meanwhile; a stream trimmed past the cursor is read
//! from its oldest entry, one gone or made anew (its last id before the
//! cursor) from the start.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tollgate_spend::redis_conn::Conn;

use super::entry::decode;
use super::reply::{entries, Info, Item, RawEntry, RawRead, StreamId};
use super::{Cursors, Stream};
use crate::cache::semantic::index::Index;
use crate::cache::{now_ms, CacheMetrics};

/// How long one `XREAD` waits for entries.
pub(super) const BLOCK: Duration = Duration::from_secs(2);
/// Entries per `XRANGE` page and per `XREAD`.
const PAGE: usize = 1000;

/// Why a follower's call failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum FollowError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis: {0}")]
    Redis(String),
}

impl FollowError {
    fn label(&self) -> &'static str {
        match self {
            FollowError::Timeout(_) => "timeout",
            FollowError::Redis(_) => "error",
        }
    }
}

/// Whether entries come from a warm-up or from following.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Warmup,
    Follow,
}

pub(super) struct Follower {
    pub(super) conn: Conn,
    pub(super) streams: Vec<Arc<Stream>>,
    pub(super) index: Arc<Index>,
    pub(super) cursors: Arc<Cursors>,
    pub(super) metrics: Arc<CacheMetrics>,
    /// Bound on each call: the store's timeout, plus [`BLOCK`].
    pub(super) timeout: Duration,
}

impl Follower {
    /// Follows until `stop`.
    pub(super) async fn run(self, stop: CancellationToken) {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = self.follow() => {}
        }
    }

    async fn follow(&self) {
        let mut failures = 0u32;
        let mut synced = false;
        loop {
            let step = if synced {
                self.read().await
            } else {
                self.sync().await
            };
            match step {
                Ok(()) => {
                    if failures > 0 {
                        tracing::info!("semantic cache: following the shared index again");
                    }
                    synced = true;
                    failures = 0;
                }
                Err(e) => {
                    self.metrics
                        .shared
                        .errors
                        .with_label_values(&[e.label()])
                        .inc();
                    if failures == 0 {
                        tracing::warn!(error = %e, "semantic cache: cannot follow the shared index; inserts stay local, retrying");
                    }
                    failures = failures.saturating_add(1);
                    synced = false;
                    tokio::time::sleep(backoff(failures)).await;
                }
            }
        }
    }

    /// Reads each stream up to its end.
    pub(super) async fn sync(&self) -> Result<(), FollowError> {
        for s in &self.streams {
            self.sync_stream(s).await?;
        }
        Ok(())
    }

    async fn sync_stream(&self, s: &Stream) -> Result<(), FollowError> {
        let started = Instant::now();
        let info = self.info(&s.key).await?;
        let ttl_ms = s.ttl.as_millis() as u64;
        let younger = StreamId::new(now_ms().saturating_sub(ttl_ms), 0);
        let (phase, start) = match self.cursors.get(&s.key) {
            None => (Phase::Warmup, younger),
            Some(c) => {
                let (from, start) = match info {
                    None if c != StreamId::ZERO => {
                        self.cursors.set(&s.key, StreamId::ZERO);
                        ("reset", younger)
                    }
                    Some(i) if i.last < c => {
                        self.cursors.set(&s.key, StreamId::ZERO);
                        ("reset", younger)
                    }
                    Some(i) if i.trimmed_past(c) => ("trimmed", c.next()),
                    _ => ("cursor", c.next()),
                };
                self.metrics.shared.resumes.with_label_values(&[from]).inc();
                (Phase::Follow, start)
            }
        };
        let mut start = start;
        // No graph is started meanwhile (it would take far longer).
        let _warming = self.index.warming();
        loop {
            let page = self.range(&s.key, start).await?;
            let n = page.len();
            let Some((last, _)) = page.last() else {
                break;
            };
            start = last.next();
            self.admit(s, page, phase).await;
            if n < PAGE {
                break;
            }
        }
        // What was there and not read is older than the TTL: follow on
        // after it (after nothing for a stream not there yet).
        self.cursors
            .claim(&s.key, info.map_or(StreamId::ZERO, |i| i.last));
        if phase == Phase::Warmup {
            self.metrics
                .shared
                .warmup_duration
                .observe(started.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// Waits for new entries on every stream.
    async fn read(&self) -> Result<(), FollowError> {
        let mut cmd = redis::cmd("XREAD");
        cmd.arg("COUNT")
            .arg(PAGE)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        for s in &self.streams {
            cmd.arg(&s.key);
        }
        for s in &self.streams {
            let c = self.cursors.get(&s.key).unwrap_or(StreamId::ZERO);
            cmd.arg(c.to_string());
        }
        let raw: RawRead = self.call(cmd).await?;
        for (key, page) in raw.unwrap_or_default() {
            if let Some(s) = self.streams.iter().find(|s| s.key == key) {
                self.admit(s, entries(page), Phase::Follow).await;
            }
        }
        Ok(())
    }

    async fn info(&self, key: &str) -> Result<Option<Info>, FollowError> {
        let exists: bool = self.call(redis::cmd("EXISTS").arg(key).to_owned()).await?;
        if !exists {
            return Ok(None);
        }
        let fields: HashMap<String, redis::Value> = self
            .call(redis::cmd("XINFO").arg("STREAM").arg(key).to_owned())
            .await?;
        Info::parse(&fields)
            .map(Some)
            .ok_or_else(|| FollowError::Redis(format!("XINFO STREAM {key}: no last-generated-id")))
    }

    async fn range(&self, key: &str, start: StreamId) -> Result<Vec<Item>, FollowError> {
        let raw: Vec<RawEntry> = self
            .call(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(start.to_string())
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .to_owned(),
            )
            .await?;
        Ok(entries(raw))
    }

    async fn call<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Result<T, FollowError> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async(&mut conn)).await {
            Err(_) => Err(FollowError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(FollowError::Redis(tollgate_spend::redis_conn::describe(&e))),
            Ok(Ok(v)) => Ok(v),
        }
    }

    /// Puts a page of `s`'s entries into the index (off the async threads:
    /// a large partition's graph takes each vector in turn).
    async fn admit(&self, s: &Stream, page: Vec<Item>, phase: Phase) {
        let (index, cursors, metrics) = (
            self.index.clone(),
            self.cursors.clone(),
            self.metrics.clone(),
        );
        let (key, embedder) = (s.key.clone(), s.embedder);
        let work = move || index_page(&index, &cursors, &metrics, (&key, embedder), page, phase);
        if tokio::task::spawn_blocking(work).await.is_err() {
            tracing::error!("semantic cache: indexing followed entries panicked");
        }
    }
}

/// Indexes the entries of a page of the stream `key` (whose embedder is
/// `embedder`) that no follower of this index has claimed yet, skipping
/// this index's own, expired ones, and any it cannot use.
pub(super) fn index_page(
    index: &Arc<Index>,
    cursors: &Cursors,
    metrics: &CacheMetrics,
    (key, embedder): (&str, [u8; 8]),
    page: Vec<Item>,
    phase: Phase,
) {
    let Some(&(last, _)) = page.last() else {
        return;
    };
    // Another follower of this index (the one a reload replaces) may have
    // read some of these: each entry goes in once.
    let after = cursors.claim(key, last);
    let counter = match phase {
        Phase::Warmup => &metrics.shared.warmup_entries,
        Phase::Follow => &metrics.shared.followed,
    };
    let (now_ms, now) = (now_ms(), Instant::now());
    for (id, bytes) in page {
        if after.is_some_and(|a| id <= a) {
            continue;
        }
        let result = match bytes.and_then(|b| decode(&b, now_ms, now)) {
            None => "invalid",
            Some((meta, _)) if meta.embedder != embedder => "invalid",
            Some((meta, _)) if meta.origin == cursors.origin => "own",
            Some((meta, _)) if meta.expires_ms() <= now_ms => "expired",
            Some((meta, slot)) => {
                index.insert(slot);
                if phase == Phase::Follow {
                    let lag = now_ms.saturating_sub(meta.inserted_ms);
                    metrics.shared.lag.observe(lag as f64 / 1000.0);
                }
                "indexed"
            }
        };
        counter.with_label_values(&[result]).inc();
    }
}

/// The wait after `failures` failed calls in a row: 100 ms doubling to
/// 5 s, give or take a fifth, so that a fleet does not retry in step.
fn backoff(failures: u32) -> Duration {
    let base = 100u64
        .saturating_mul(1 << failures.saturating_sub(1).min(6))
        .min(5000);
    let jitter = rand::random::<u64>() % (base / 5 + 1);
    Duration::from_millis(base - base / 10 + jitter)
}
