//! Workloads of a policy whose pods the API server refuses under the
//! namespace's Pod Security level. Such pods never exist, so nothing of
//! them reaches the pod watch: the only trace is the controller's
//! `FailedCreate` Event on the ReplicaSet (Job, StatefulSet, DaemonSet).
//! The injected sidecar itself meets `restricted`; the refusal names what
//! in the app's spec does not.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Event;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Client};

use crate::conflict::selects;
use crate::crd::LlmPolicy;

/// Only refusals seen this recently count: a controller that keeps failing
/// keeps refreshing its Event (with backoff, at most minutes apart).
pub const RECENT: Duration = Duration::from_secs(600);

/// The field selector of the Events that can report a refusal (also the
/// controller's watch, so a refusal triggers a reconcile).
pub const FAILED_CREATE: &str = "reason=FailedCreate";

/// A workload whose pods are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// `Kind/name`.
    pub workload: String,
    /// The API server's reason, from the Event.
    pub message: String,
}

/// Recent Pod Security refusals among `events`, one per workload (the
/// latest), sorted; pure.
pub fn pod_security_refusals(events: &[Event], now: Timestamp) -> Vec<(String, String, String)> {
    let mut latest: BTreeMap<(String, String), (Timestamp, String)> = BTreeMap::new();
    for e in events {
        let message = e.message.clone().unwrap_or_default();
        if e.reason.as_deref() != Some("FailedCreate") || !message.contains("violates PodSecurity")
        {
            continue;
        }
        let Some(at) = e
            .last_timestamp
            .as_ref()
            .map(|t| t.0)
            .or_else(|| e.event_time.as_ref().map(|t| t.0))
            .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
        else {
            continue;
        };
        let age: Duration = now.duration_since(at).try_into().unwrap_or_default();
        if age > RECENT {
            continue;
        }
        let o = &e.involved_object;
        let key = (
            o.kind.clone().unwrap_or_default(),
            o.name.clone().unwrap_or_default(),
        );
        match latest.get(&key) {
            Some((t, _)) if *t >= at => {}
            _ => {
                latest.insert(key, (at, message));
            }
        }
    }
    latest
        .into_iter()
        .map(|((kind, name), (_, message))| (kind, name, message))
        .collect()
}

/// The workloads of `policy` (their pod template matches its selector)
/// whose pods were recently refused by Pod Security.
pub async fn refused(
    client: &Client,
    ns: &str,
    policy: &LlmPolicy,
    now: Timestamp,
) -> Result<Vec<Refused>, kube::Error> {
    let events: Api<Event> = Api::namespaced(client.clone(), ns);
    let events = events
        .list(&ListParams::default().fields(FAILED_CREATE))
        .await?
        .items;
    let mut out = Vec::new();
    for (kind, name, message) in pod_security_refusals(&events, now) {
        let Some(labels) = template_labels(client, ns, &kind, &name).await? else {
            continue;
        };
        if selects(policy, &labels) {
            out.push(Refused {
                workload: format!("{kind}/{name}"),
                message,
            });
        }
    }
    Ok(out)
}

/// The pod template labels of a pod-creating workload; `None` for other
/// kinds and workloads that are gone.
async fn template_labels(
    client: &Client,
    ns: &str,
    kind: &str,
    name: &str,
) -> Result<Option<BTreeMap<String, String>>, kube::Error> {
    let labels = match kind {
        "ReplicaSet" => Api::<ReplicaSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec?.template?.metadata?.labels),
        "Job" => Api::<Job>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec?.template.metadata?.labels),
        "StatefulSet" => Api::<StatefulSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec?.template.metadata?.labels),
        "DaemonSet" => Api::<DaemonSet>::namespaced(client.clone(), ns)
            .get_opt(name)
            .await?
            .and_then(|w| w.spec?.template.metadata?.labels),
        _ => return Ok(None),
    };
    Ok(Some(labels.unwrap_or_default()))
}

#[cfg(test)]
mod tests;
