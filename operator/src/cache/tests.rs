//! The list-then-watch loop against a scripted API server: when a cache
//! counts as current, and that every end of a watch is followed by a fresh
//! list, never a resume (kube-runtime's `watcher` fails both).

use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::reflector::ObjectRef;
use serde_json::{json, Value};

use super::*;
use crate::fake_api::{until, Events, FakeApi, Pending};

fn namespace(name: &str, version: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace",
           "metadata": {"name": name, "resourceVersion": version}})
}

fn list(names: &[&str], version: &str) -> Value {
    let items: Vec<Value> = names.iter().map(|n| namespace(n, version)).collect();
    json!({"apiVersion": "v1", "kind": "NamespaceList",
           "metadata": {"resourceVersion": version}, "items": items})
}

/// The next request, which must be a list; the cache is not current
/// while it is unanswered.
async fn list_request(api: &mut FakeApi, synced: &Synced) -> Pending {
    let req = api.next().await;
    assert!(!req.is_watch(), "a list, not {}", req.uri);
    assert!(!synced.get(), "current before its list is answered");
    req
}

/// The next request, which must be the watch from `version`; the cache is
/// not current while it is unanswered (a restarted API server holds it
/// until its own watch cache is filled).
async fn watch_request(api: &mut FakeApi, synced: &Synced, version: &str) -> Pending {
    let req = api.next().await;
    assert!(req.is_watch(), "a watch, not {}", req.uri);
    assert!(
        req.query().contains(&format!("resourceVersion={version}&"))
            || req.query().ends_with(&format!("resourceVersion={version}")),
        "{}",
        req.uri
    );
    assert!(!synced.get(), "current before its watch is open");
    req
}

async fn started(api: &mut FakeApi) -> (Store<Namespace>, Synced, Events) {
    let (store, synced, fut) = cache("test", Api::<Namespace>::all(api.client.clone()));
    tokio::spawn(fut);
    list_request(api, &synced).await.json(list(&["a"], "10"));
    let events = watch_request(api, &synced, "10").await.watch();
    until("current once the watch is open", || synced.get()).await;
    assert!(store.get(&ObjectRef::new("a")).is_some());
    (store, synced, events)
}

#[tokio::test]
async fn current_from_the_open_watch_that_follows_a_list() {
    let mut api = FakeApi::start().await;
    let (store, synced, events) = started(&mut api).await;
    events.send("ADDED", namespace("b", "11"));
    until("b in the store", || {
        store.get(&ObjectRef::new("b")).is_some()
    })
    .await;
    events.send("DELETED", namespace("a", "12"));
    until("a gone", || store.get(&ObjectRef::new("a")).is_none()).await;
    assert!(synced.get());
}

/// A way a watch ends, named.
type End = (&'static str, fn(Events));

#[tokio::test]
async fn every_end_of_a_watch_is_followed_by_a_fresh_list() {
    let ends: [End; 3] = [
        ("ended by the server", drop),
        ("connection cut", Events::cut),
        ("410 Gone", |e: Events| {
            e.send(
                "ERROR",
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                       "message": "too old resource version: 10 (20)", "reason": "Expired", "code": 410}),
            )
        }),
    ];
    for (how, end) in ends {
        let mut api = FakeApi::start().await;
        let (store, synced, events) = started(&mut api).await;
        end(events);
        until(how, || !synced.get()).await;
        // A list, held: the cache stays stale, and keeps its last state.
        let req = list_request(&mut api, &synced).await;
        assert!(store.get(&ObjectRef::new("a")).is_some(), "{how}");
        req.json(list(&["b"], "20"));
        let watch = watch_request(&mut api, &synced, "20").await;
        // The new list is in whole, the old state gone.
        assert!(store.get(&ObjectRef::new("a")).is_none(), "{how}");
        assert!(store.get(&ObjectRef::new("b")).is_some(), "{how}");
        let _events = watch.watch();
        until("current again", || synced.get()).await;
    }
}

#[tokio::test]
async fn a_list_in_pages_is_swapped_in_once_complete() {
    let mut api = FakeApi::start().await;
    let (store, synced, fut) = cache("test", Api::<Namespace>::all(api.client.clone()));
    tokio::spawn(fut);
    let mut first = list(&["a"], "");
    first["metadata"] = json!({"continue": "page-2"});
    list_request(&mut api, &synced).await.json(first);
    let req = list_request(&mut api, &synced).await;
    assert!(req.query().contains("continue=page-2"), "{}", req.uri);
    assert!(store.state().is_empty(), "a partial list is never served");
    req.json(list(&["b"], "10"));
    let _events = watch_request(&mut api, &synced, "10").await.watch();
    until("current", || synced.get()).await;
    assert_eq!(store.state().len(), 2);
}
