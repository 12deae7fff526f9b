//! What the webhooks decide from: a namespace's labels and its policies,
//! from the watch caches while they are current ([`crate::cache`]), else
//! read from the API server.
//!
//! A current cache can still be a moment behind a write made just before a
//! pod: the write's watch event is on its way while the API server already
//! calls the webhook, and for longer after an API server restart, whose
//! watch caches start empty. Injecting from such a cache at worst gives the
//! pod the policy's previous version. Not injecting would leave the pod
//! without its sidecar for its whole life. So a "no" from the caches for a
//! reason a late event explains (the namespace not enabled yet, no policy
//! selecting the pod yet) is checked against a live read before the pod is
//! admitted as it is. With the chart's webhook configuration the API server
//! calls the webhook only for pods of enabled namespaces and pods that ask
//! for injection, so the check costs a list of the namespace's policies per
//! pod no policy selects, and nothing for the pods that are injected.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use tracing::{debug, info, warn};

use super::mutate::choose;
use super::server::Unavailable;
use crate::context::{Context, Settings};
use crate::crd::LlmPolicy;
use crate::render::Rendered;

/// How long a live read may take (the API server's webhook timeout is
/// longer).
const LIVE_READ: Duration = Duration::from_secs(3);

/// Reasons [`choose`] gives that a cache a moment behind would give too.
const MAY_BE_LATE: [&str; 2] = ["not_enabled", "no_policy"];

/// [`choose`] for `pod` in `ns`, with the policy owned: from the watch
/// caches while they are current and do not say "no" for a reason in
/// [`MAY_BE_LATE`], else from a live read; [`Unavailable`] when that read
/// fails (the API server then applies the webhook's failurePolicy: the pod
/// is never admitted without its sidecar by mistake).
pub(crate) async fn decide(
    ctx: &Context,
    ns: &str,
    pod: &Pod,
) -> Result<Result<(LlmPolicy, Rendered), &'static str>, Unavailable> {
    if ctx.stores.synced() {
        let (labels, policies) = cached(ctx, ns);
        match decide_from(pod, ns, &labels, &policies, &ctx.settings) {
            Err(why) if MAY_BE_LATE.contains(&why) => {
                debug!(namespace = %ns, reason = why, "not injected per the watch caches: checking live");
            }
            decided => return Ok(decided),
        }
    }
    let (labels, policies) = tokio::time::timeout(LIVE_READ, live(ctx, ns))
        .await
        .map_err(|_| Unavailable(format!("live read took over {LIVE_READ:?}")))?
        .map_err(|e| Unavailable(e.to_string()))?;
    if !ctx.stores.synced() {
        info!(namespace = %ns, "admission decided from a live read (watch caches stale)");
    }
    Ok(decide_from(pod, ns, &labels, &policies, &ctx.settings))
}

fn decide_from(
    pod: &Pod,
    ns: &str,
    labels: &BTreeMap<String, String>,
    policies: &[LlmPolicy],
    settings: &Settings,
) -> Result<(LlmPolicy, Rendered), &'static str> {
    let refs: Vec<&LlmPolicy> = policies.iter().collect();
    choose(pod, ns, labels, &refs, settings).map(|(p, r)| (p.clone(), r))
}

/// The namespace's labels and its policies (as the operator injects them)
/// in the watch caches.
fn cached(ctx: &Context, ns: &str) -> (BTreeMap<String, String>, Vec<LlmPolicy>) {
    let policies = ctx
        .stores
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .map(|p| ctx.settings.effective(&p))
        .collect();
    (cached_labels(ctx, ns), policies)
}

fn cached_labels(ctx: &Context, ns: &str) -> BTreeMap<String, String> {
    ctx.stores
        .namespaces
        .get(&ObjectRef::new(ns))
        .map(|n| n.labels().clone())
        .unwrap_or_default()
}

/// [`cached`], read from the API server.
async fn live(
    ctx: &Context,
    ns: &str,
) -> Result<(BTreeMap<String, String>, Vec<LlmPolicy>), kube::Error> {
    let labels = live_labels(ctx, ns).await?;
    let policies: Api<LlmPolicy> = Api::namespaced(ctx.client.clone(), ns);
    let list = policies.list(&ListParams::default()).await?;
    let policies = list
        .items
        .iter()
        .map(|p| ctx.settings.effective(p))
        .collect();
    Ok((labels, policies))
}

/// A namespace's labels, read from the API server: a list by name (the
/// chart grants `list` on namespaces, not `get`); empty for a namespace
/// that does not exist.
async fn live_labels(ctx: &Context, ns: &str) -> Result<BTreeMap<String, String>, kube::Error> {
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let by_name = ListParams::default().fields(&format!("metadata.name={ns}"));
    let list = namespaces.list_metadata(&by_name).await?;
    Ok(list
        .items
        .into_iter()
        .next()
        .map(|n| n.labels().clone())
        .unwrap_or_default())
}

/// The labels of the namespace `ns`, from the watch cache while it is
/// current, else read live; `None` when that read fails too (the warnings
/// that need them are then left out: they never decide an admission).
pub(crate) async fn namespace_labels(ctx: &Context, ns: &str) -> Option<BTreeMap<String, String>> {
    if ctx.stores.synced() {
        return Some(cached_labels(ctx, ns));
    }
    match tokio::time::timeout(LIVE_READ, live_labels(ctx, ns)).await {
        Ok(Ok(labels)) => Some(labels),
        Ok(Err(e)) => {
            warn!(namespace = %ns, error = %e, "cannot read the namespace's labels: its warnings are left out");
            None
        }
        Err(_) => {
            warn!(namespace = %ns, "reading the namespace's labels took over {LIVE_READ:?}: its warnings are left out");
            None
        }
    }
}

#[cfg(test)]
mod tests;
