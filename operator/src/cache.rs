//! Watch caches that know whether they are current.
//!
//! The webhooks decide from these caches, so "current" must mean that the
//! cache holds a complete list and is receiving every change made since.
//! kube-runtime's `watcher` cannot say that. It reports its list done
//! (`InitDone`) before the watch that follows is open, and it resumes an
//! ended watch from its last resourceVersion without yielding anything:
//! kube-client even ends a watch quietly on the unexpected EOF a killed API
//! server leaves. After an API server restart either hides a gap. The list
//! is served from etcd while the new server's watch cache is still filling,
//! and the watch that follows is held by the server until that cache is
//! ready; or the watch resumes on the new server without an error. A
//! namespace enabled or a policy created meanwhile is missing from a cache
//! that counts as current, and its pod would be admitted without the
//! sidecar.
//!
//! So the caches run their own list-then-watch loop. A cache is current
//! from the moment the watch that follows a complete list is open (the API
//! server answers a watch request once it has registered the watch) until
//! that watch ends, for any reason: an error, the server ending it, an idle
//! connection. Every end is followed by a fresh list, swapped into the
//! store whole, never by a resume. While a cache is not current the pod
//! webhook reads live and `/readyz` fails. A watch lasts at most 290 s, so
//! each cache lists again about every five minutes, for the few
//! milliseconds a list takes.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{Future, StreamExt};
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::runtime::reflector::{self, store::Writer, Store};
use kube::runtime::watcher::Event;
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tracing::{debug, info, warn};

/// Backoff between watch attempts after an error: short, so a stale cache
/// (webhooks answer from live reads, `/readyz` fails) does not last.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long the API server keeps a watch open (kube-runtime's default).
const WATCH_TIMEOUT: u32 = 290;
/// A watch silent for longer than its timeout is on a dead connection.
const IDLE: Duration = Duration::from_secs(WATCH_TIMEOUT as u64 + 5);
/// A watch that ends sooner than this after its list (a server shutting
/// down) is not listed again at once, so the loop never spins.
const SHORT: Duration = Duration::from_secs(1);
/// Objects per list page.
const PAGE: u32 = 500;

/// Whether a cache holds a complete list and is watching for changes since.
#[derive(Clone, Debug, Default)]
pub struct Synced(Arc<AtomicBool>);

impl Synced {
    /// A flag that is already set (tests and benchmarks that fill a store
    /// by hand).
    pub fn already() -> Self {
        Synced(Arc::new(AtomicBool::new(true)))
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn set(&self, v: bool) {
        self.0.store(v, Ordering::Release)
    }
}

/// Why a list or a watch failed.
#[derive(Debug, thiserror::Error)]
enum Failed {
    #[error("list: {0}")]
    List(#[source] kube::Error),
    #[error("list: no resourceVersion in the answer")]
    NoVersion,
    #[error("watch: {0}")]
    Watch(#[source] kube::Error),
    #[error("watch: the API server ended it: {0} ({1})")]
    Ended(String, u16),
}

/// A store of every `K` `api` lists, the flag saying whether it is
/// current, and the future that feeds both (run it as a task).
pub fn cache<K>(
    what: &'static str,
    api: Api<K>,
) -> (Store<K>, Synced, impl Future<Output = ()> + Send + 'static)
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + Hash + Clone + Send + Sync,
{
    let (store, mut writer) = reflector::store::<K>();
    let synced = Synced::default();
    let current = synced.clone();
    let fut = async move {
        let mut backoff = BACKOFF_MIN;
        // Whether the last attempt failed (or none was made): the next
        // sync is worth a log line, a routine re-list is not.
        let mut failing = true;
        loop {
            let started = Instant::now();
            let ended = list_then_watch(&api, &mut writer, &current, what, failing).await;
            current.set(false);
            match ended {
                Ok(()) if started.elapsed() >= SHORT => {
                    debug!(cache = what, "watch ended: listing again");
                    failing = false;
                    backoff = BACKOFF_MIN;
                    continue;
                }
                Ok(()) => debug!(cache = what, "watch ended at once"),
                Err(e) => {
                    if !failing {
                        warn!(cache = what, error = %e, "watch cache stale until a fresh list");
                    } else {
                        debug!(cache = what, error = %e, "watch cache still stale");
                    }
                    failing = true;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    };
    (store, synced, fut)
}

/// One complete list into `writer` (swapped in whole), then the watch from
/// its resourceVersion, with `current` set while that watch is open. `Ok`
/// when the watch ends without an error (the server's timeout or shutdown,
/// an idle connection).
async fn list_then_watch<K>(
    api: &Api<K>,
    writer: &mut Writer<K>,
    current: &Synced,
    what: &'static str,
    announce: bool,
) -> Result<(), Failed>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Eq + Hash + Clone,
{
    writer.apply_watcher_event(&Event::Init);
    let mut lp = ListParams::default().limit(PAGE);
    let version = loop {
        let page = api.list(&lp).await.map_err(Failed::List)?;
        for mut o in page.items {
            strip(&mut o);
            writer.apply_watcher_event(&Event::InitApply(o));
        }
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => {
                break page
                    .metadata
                    .resource_version
                    .filter(|v| !v.is_empty())
                    .ok_or(Failed::NoVersion)?
            }
        }
    };
    writer.apply_watcher_event(&Event::InitDone);
    let wp = WatchParams::default().timeout(WATCH_TIMEOUT);
    let mut events = api
        .watch(&wp, &version)
        .await
        .map_err(Failed::Watch)?
        .boxed();
    // Answered: the server has registered the watch, so every change after
    // the list reaches the store from here on.
    current.set(true);
    if announce {
        info!(cache = what, "watch cache synced");
    }
    loop {
        let Ok(Some(event)) = tokio::time::timeout(IDLE, events.next()).await else {
            return Ok(());
        };
        match event.map_err(Failed::Watch)? {
            WatchEvent::Added(mut o) | WatchEvent::Modified(mut o) => {
                strip(&mut o);
                writer.apply_watcher_event(&Event::Apply(o));
            }
            WatchEvent::Deleted(o) => writer.apply_watcher_event(&Event::Delete(o)),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(s) => return Err(Failed::Ended(s.message, s.code)),
        }
    }
}

/// Cached objects without `managedFields`: nothing here reads them, and
/// they are most of a small object's size.
pub(crate) fn strip<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}

#[cfg(test)]
mod tests;
