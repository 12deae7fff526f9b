//! Watch caches that know whether they are current.
//!
//! kube-runtime's reflector keeps serving its last state while its watch
//! reconnects after an error (an API server restart, a network cut, a 403
//! while the restarted server's authorizer warms up), and says nothing when
//! it resumes. The webhooks must not decide from such a state: a namespace
//! enabled or a policy created meanwhile would be missed and the pod admitted
//! without its sidecar. Here a watch error marks the cache stale and starts a
//! fresh watch, whose complete initial list (swapped in whole at `InitDone`)
//! marks it current again.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Future, StreamExt};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

/// Backoff between watch attempts after an error: short, so a stale cache
/// (webhooks answer from live reads, `/readyz` fails) does not last.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Whether a cache holds a complete list and its watch has seen no error
/// since.
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
    let flag = synced.clone();
    let fut = async move {
        let mut backoff = BACKOFF_MIN;
        loop {
            let mut events = watcher(api.clone(), watcher::Config::default())
                .modify(strip)
                .boxed();
            while let Some(event) = events.next().await {
                match event {
                    Ok(event) => {
                        writer.apply_watcher_event(&event);
                        if matches!(event, watcher::Event::InitDone) {
                            if !flag.get() {
                                info!(cache = what, "watch cache synced");
                            }
                            flag.set(true);
                            backoff = BACKOFF_MIN;
                        }
                    }
                    Err(e) => {
                        if flag.get() {
                            warn!(cache = what, error = %e, "watch failed: cache stale until a fresh list");
                        }
                        flag.set(false);
                        break;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    };
    (store, synced, fut)
}

/// Cached objects without `managedFields`: nothing here reads them, and
/// they are most of a small object's size.
pub(crate) fn strip<K: Resource>(o: &mut K) {
    o.meta_mut().managed_fields = None;
}
