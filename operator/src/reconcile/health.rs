//! Whether a policy's sidecars can run: the Secrets and keys its config
//! mounts exist, and the injected pods' sidecars are running. A policy naming
//! an image that does not exist, or a Secret key nobody created, otherwise
//! shows only as pods stuck in `ImagePullBackOff` or `ContainerCreating`;
//! here it becomes a condition, an Event and a metric on the policy.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::core::Selector;
use kube::{Api, Client, ResourceExt};

use crate::conflict::POLICY_ANNOTATION;
use crate::crd::LlmPolicy;
use crate::render::SecretVolume;
use crate::secrets;
use crate::webhook::mutate::SIDECAR_NAME;

/// How long a new pod's sidecar may take to start before it counts as not
/// starting (image pulls and volume mounts included).
pub const STARTUP_GRACE: Duration = Duration::from_secs(90);

/// A pod whose sidecar is not running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unhealthy {
    pub pod: String,
    /// `ImagePullFailed`, `SidecarFailing` or `SidecarNotStarting`.
    pub reason: &'static str,
    /// What the kubelet says, or what to look at.
    pub message: String,
}

/// What a reconcile found about the policy's ability to run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Referenced Secrets or keys that do not exist, one sentence each.
    pub secrets: Vec<String>,
    /// Injected pods whose sidecar is not running, sorted by pod name.
    pub sidecars: Vec<Unhealthy>,
    /// Some injected pod is still within its start-up grace: look again.
    pub starting: bool,
    /// Workloads of the policy whose pods Pod Security refuses.
    pub refused: Vec<super::refusals::Refused>,
}

/// Checks each mounted Secret has every key the config reads. A missing key
/// would leave every new pod waiting on its volume mount. A read refused
/// (403) is retried for [`secrets::GRANT_WAIT`]: the RoleBinding that grants
/// it may have just been created and not yet reached the cache of the API
/// server that answers (the reconcile waits for it on the one that answered
/// [`secrets::await_grant`]; with several API servers, another may lag).
pub async fn secret_problems(client: &Client, ns: &str, want: &[SecretVolume]) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + secrets::GRANT_WAIT;
    let names: Vec<String> = want.iter().map(|s| s.secret.clone()).collect();
    loop {
        match secrets::keys(client, ns, &names).await {
            Ok(found) => return missing(ns, want, &found),
            Err(kube::Error::Api(e)) if e.code == 403 && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return vec![format!("cannot read Secrets in {ns}: {e}")],
        }
    }
}

/// One sentence per Secret that does not exist or key it lacks; pure.
fn missing(
    ns: &str,
    want: &[SecretVolume],
    found: &BTreeMap<String, Option<BTreeSet<String>>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for s in want {
        match found.get(&s.secret) {
            Some(Some(keys)) => out.extend(
                s.keys
                    .iter()
                    .filter(|k| !keys.contains(*k))
                    .map(|k| format!("Secret {ns}/{} has no key {k:?}", s.secret)),
            ),
            _ => out.push(format!("Secret {ns}/{} does not exist", s.secret)),
        }
    }
    out
}

/// The policy's pods, full objects (the watch cache holds metadata only).
pub async fn pods(client: &Client, ns: &str, policy: &LlmPolicy) -> Result<Vec<Pod>, kube::Error> {
    let Ok(sel) = Selector::try_from(policy.spec.pod_selector.clone()) else {
        return Ok(vec![]);
    };
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    Ok(api
        .list(&ListParams::default().labels(&sel.to_string()))
        .await?
        .items)
}

/// The injected pods of `policy` whose sidecar is not running; pure.
pub fn assess(pods: &[Pod], policy: &str, now: Timestamp) -> (Vec<Unhealthy>, bool) {
    let mut out = Vec::new();
    let mut starting = false;
    let no_status = PodStatus::default();
    for pod in pods {
        if pod.annotations().get(POLICY_ANNOTATION).map(String::as_str) != Some(policy)
            || pod.metadata.deletion_timestamp.is_some()
        {
            continue;
        }
        let status = pod.status.as_ref().unwrap_or(&no_status);
        if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
            continue;
        }
        let sidecar = status
            .init_container_statuses
            .iter()
            .flatten()
            .find(|c| c.name == SIDECAR_NAME);
        let waiting = sidecar.and_then(|c| c.state.as_ref()?.waiting.clone());
        let reason = waiting
            .as_ref()
            .and_then(|w| w.reason.clone())
            .unwrap_or_default();
        let said = waiting
            .as_ref()
            .and_then(|w| w.message.clone())
            .unwrap_or_else(|| reason.clone());
        let kind = match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                Some(("ImagePullFailed", said))
            }
            "CrashLoopBackOff"
            | "RunContainerError"
            | "CreateContainerError"
            | "CreateContainerConfigError"
            | "StartError" => Some(("SidecarFailing", said)),
            _ => {
                let started = sidecar.is_some_and(|c| c.started == Some(true));
                if started {
                    None
                } else if age(pod, now) < STARTUP_GRACE {
                    starting = true;
                    None
                } else {
                    let state = if reason.is_empty() {
                        "not started".to_string()
                    } else {
                        reason
                    };
                    Some((
                        "SidecarNotStarting",
                        format!(
                            "{state} after {}s; see the pod's events (volume mounts, startup probe)",
                            age(pod, now).as_secs()
                        ),
                    ))
                }
            }
        };
        if let Some((reason, message)) = kind {
            out.push(Unhealthy {
                pod: pod.name_any(),
                reason,
                message,
            });
        }
    }
    out.sort_by(|a, b| a.pod.cmp(&b.pod));
    (out, starting)
}

fn age(pod: &Pod, now: Timestamp) -> Duration {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .and_then(|t| now.duration_since(t.0).try_into().ok())
        .unwrap_or_default()
}

/// Pods per reason, for `tollgate_operator_unhealthy_sidecars`.
pub fn by_reason(sidecars: &[Unhealthy]) -> BTreeMap<&'static str, i64> {
    let mut n = BTreeMap::new();
    for s in sidecars {
        *n.entry(s.reason).or_default() += 1;
    }
    n
}

/// Every reason `assess` gives, so the metric's series exist from the start.
pub const REASONS: [&str; 3] = ["ImagePullFailed", "SidecarFailing", "SidecarNotStarting"];

#[cfg(test)]
mod tests;
