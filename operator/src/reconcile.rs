//! Reconcile one `LlmPolicy`: render it, server-side apply the owned
//! ConfigMap, and write status (conditions, config hash, pod counts) and
//! Events. An invalid spec is reported and then left alone until it
//! changes; API errors requeue with exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::conflict::{pod_counts, PodCounts, PodInfo};
use crate::context::Context;
use crate::crd::{condition, LlmPolicy, LlmPolicyStatus};
use crate::render::{render, Rendered, CONFIG_FILE};

pub mod health;
pub mod refusals;
pub mod spend;
mod status;
pub use status::{apply_health, build_status, Outcome};

/// Field manager of everything the operator writes.
pub const MANAGER: &str = "tollgate-operator";
/// Label on the ConfigMaps the operator owns.
pub const POLICY_LABEL: &str = "tollgate.dev/policy";
/// How often a healthy policy is reconciled without a trigger (pod counts
/// are also refreshed by pod events).
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a policy with a missing Secret or a sidecar not (yet) running is
/// looked at again: Secrets are not watched, and a start-up grace ends
/// without any event.
const RECHECK: Duration = Duration::from_secs(30);

/// The ConfigMap a policy renders to.
pub fn config_map_name(policy: &str) -> String {
    format!("tollgate-{policy}")
}

/// Why a reconcile failed (an invalid spec is not a failure: it is status).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("LlmPolicy {0} has no namespace")]
    NoNamespace(String),
    #[error("apply ConfigMap {namespace}/{name}: {source}")]
    ConfigMap {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("update status of LlmPolicy {namespace}/{name}: {source}")]
    Status {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
}

impl Error {
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::NoNamespace(_) => "no_namespace",
            Error::ConfigMap { .. } => "config_map",
            Error::Status { .. } => "status",
        }
    }
}

#[instrument(skip_all, fields(policy = %policy.name_any(), namespace = policy.namespace().unwrap_or_default()))]
pub async fn reconcile(policy: Arc<LlmPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[] as &[&str])
        .start_timer();
    let name = policy.name_any();
    let ns = policy
        .namespace()
        .ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let cm_name = config_map_name(&name);

    let mut spent = None;
    let mut health = health::Health::default();
    let now = Timestamp::now();
    let outcome = match render(&ns, &name, &ctx.settings.effective(&policy).spec) {
        Ok(r) => {
            apply_config_map(&ctx, &policy, &ns, &cm_name, &r).await?;
            health.secrets = health::secret_problems(&ctx.client, &ns, &r.secrets).await;
            match refusals::refused(&ctx.client, &ns, &policy, now).await {
                Ok(refused) => health.refused = refused,
                Err(e) => warn!(error = %e, "cannot read FailedCreate events"),
            }
            spent = Some(
                spend::spend_status(&ctx.client, &ctx.metrics, &ns, &policy.spec, &r.config).await,
            );
            Outcome::Applied { hash: r.hash }
        }
        Err(e) => Outcome::Invalid(e.to_string()),
    };
    let counts = counts(&ctx, &policy, &ns);
    if counts.injected > 0 {
        match health::pods(&ctx.client, &ns, &policy).await {
            Ok(pods) => (health.sidecars, health.starting) = health::assess(&pods, &name, now),
            // Pod status is extra information: the reconcile goes on without it.
            Err(e) => warn!(error = %e, "cannot list pods for sidecar health"),
        }
    }
    let prev = policy.status.clone().unwrap_or_default();
    let mut status = build_status(
        &prev,
        policy.metadata.generation,
        &outcome,
        &counts,
        &cm_name,
        now,
    );
    if matches!(outcome, Outcome::Applied { .. }) {
        apply_health(&mut status, &prev, &health, now);
    }
    // An invalid spec keeps the last spend read; a valid one without a
    // Redis store has none.
    let redis = matches!(spent, Some(Some(_)));
    if let Some(s) = spent {
        (status.spend, status.budgets) = s.unwrap_or_default();
    }
    if status != prev {
        let api: Api<LlmPolicy> = Api::namespaced(ctx.client.clone(), &ns);
        let body =
            json!({"apiVersion": "tollgate.dev/v1alpha1", "kind": "LlmPolicy", "status": status});
        api.patch_status(
            &name,
            &PatchParams::apply(MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
        .map_err(|source| Error::Status {
            namespace: ns.clone(),
            name: name.clone(),
            source,
        })?;
        publish_events(&ctx, &policy, &prev, &status).await;
    }
    ctx.failures.lock().unwrap().remove(&format!("{ns}/{name}"));
    ctx.metrics
        .uninjected_pods
        .with_label_values(&[&ns, &name])
        .set(counts.uninjected.len() as i64);
    let unhealthy = health::by_reason(&health.sidecars);
    for reason in health::REASONS {
        ctx.metrics
            .unhealthy_sidecars
            .with_label_values(&[&ns, &name, reason])
            .set(unhealthy.get(reason).copied().unwrap_or(0));
    }
    ctx.metrics
        .refused_workloads
        .with_label_values(&[&ns, &name])
        .set(health.refused.len() as i64);
    refresh_policy_gauge(&ctx);
    match outcome {
        Outcome::Applied { .. } => {
            ctx.metrics.reconciles.with_label_values(&["success"]).inc();
            let mut next = if redis { spend::REFRESH } else { RESYNC };
            if health.starting
                || !health.sidecars.is_empty()
                || !health.secrets.is_empty()
                || !health.refused.is_empty()
            {
                next = next.min(RECHECK);
            }
            Ok(Action::requeue(next))
        }
        Outcome::Invalid(e) => {
            warn!(error = %e, "invalid spec");
            ctx.metrics.reconciles.with_label_values(&["invalid"]).inc();
            // Nothing to retry until the spec changes (a change triggers a reconcile).
            Ok(Action::await_change())
        }
    }
}

/// Requeue with exponential backoff: 1 s, 2 s, 4 s, ... up to 5 min.
pub fn error_policy(policy: Arc<LlmPolicy>, err: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics.reconciles.with_label_values(&["error"]).inc();
    let key = format!(
        "{}/{}",
        policy.namespace().unwrap_or_default(),
        policy.name_any()
    );
    let n = {
        let mut f = ctx.failures.lock().unwrap();
        let n = f.entry(key).or_insert(0);
        *n += 1;
        *n
    };
    let delay = backoff(n);
    warn!(error = %err, reason = err.metric_label(), attempt = n, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The delay after `n` consecutive failures.
pub fn backoff(n: u32) -> Duration {
    Duration::from_secs(1u64 << n.saturating_sub(1).min(8)).min(Duration::from_secs(300))
}

async fn apply_config_map(
    ctx: &Context,
    policy: &LlmPolicy,
    ns: &str,
    cm_name: &str,
    r: &Rendered,
) -> Result<(), Error> {
    let owner = policy
        .controller_owner_ref(&())
        .expect("a stored policy has a uid");
    let cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(cm_name.into()),
            namespace: Some(ns.into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
                (POLICY_LABEL.into(), policy.name_any()),
            ])),
            annotations: Some(BTreeMap::from([(
                crate::conflict::HASH_ANNOTATION.into(),
                r.hash.clone(),
            )])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(CONFIG_FILE.into(), r.yaml.clone())])),
        ..Default::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    api.patch(
        cm_name,
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&cm),
    )
    .await
    .map_err(|source| Error::ConfigMap {
        namespace: ns.into(),
        name: cm_name.into(),
        source,
    })?;
    Ok(())
}

fn counts(ctx: &Context, policy: &LlmPolicy, ns: &str) -> PodCounts {
    let policies: Vec<Arc<LlmPolicy>> = ctx
        .stores
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .collect();
    let mut refs: Vec<&LlmPolicy> = policies.iter().map(|p| p.as_ref()).collect();
    if !refs.iter().any(|p| p.name_any() == policy.name_any()) {
        refs.push(policy);
    }
    let pods = ctx.stores.pods.read().unwrap().clone();
    let pods: Vec<PodInfo> = pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .map(|p| PodInfo {
            name: p.name_any(),
            labels: p.labels().clone(),
            annotations: p.annotations().clone(),
        })
        .collect();
    pod_counts(policy, &refs, &pods)
}

/// `tollgate_operator_policies{condition,status}` from every stored policy.
fn refresh_policy_gauge(ctx: &Context) {
    let mut n: BTreeMap<(String, String), i64> = BTreeMap::new();
    for p in ctx.stores.policies.state() {
        for c in p.status.iter().flat_map(|s| &s.conditions) {
            *n.entry((c.type_.clone(), c.status.clone())).or_default() += 1;
        }
    }
    ctx.metrics.policies.reset();
    for ((t, s), v) in n {
        ctx.metrics.policies.with_label_values(&[&t, &s]).set(v);
    }
}

async fn publish_events(
    ctx: &Context,
    policy: &LlmPolicy,
    prev: &LlmPolicyStatus,
    now: &LlmPolicyStatus,
) {
    let find = |s: &LlmPolicyStatus, t: &str| s.conditions.iter().find(|c| c.type_ == t).cloned();
    let mut events = Vec::new();
    let accepted = find(now, condition::ACCEPTED);
    if let Some(c) = &accepted {
        let before = find(prev, condition::ACCEPTED);
        if c.status == "False"
            && before.as_ref().map(|b| (&b.status, &b.message)) != Some((&c.status, &c.message))
        {
            events.push((EventType::Warning, "InvalidSpec", c.message.clone()));
        }
    }
    if now.config_hash.is_some() && now.config_hash != prev.config_hash {
        events.push((
            EventType::Normal,
            "ConfigUpdated",
            format!(
                "ConfigMap {} holds config {}",
                now.config_map.clone().unwrap_or_default(),
                now.config_hash.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some(c) = find(now, condition::READY) {
        let before = find(prev, condition::READY).map(|b| b.message);
        if c.reason == "SecretMissing" && before.as_ref() != Some(&c.message) {
            events.push((EventType::Warning, "SecretMissing", c.message.clone()));
        }
    }
    if let Some(c) = find(now, condition::SIDECARS_READY) {
        let before = find(prev, condition::SIDECARS_READY).map(|b| (b.status, b.reason));
        if c.status == "False" && before != Some((c.status.clone(), c.reason.clone())) {
            // The condition's reason is one of health::REASONS (the Event
            // needs it as a static string).
            if let Some(reason) = health::REASONS.into_iter().find(|r| *r == c.reason) {
                events.push((EventType::Warning, reason, c.message.clone()));
            }
        }
    }
    if let Some(c) = find(now, condition::PODS_ADMITTED) {
        let before = find(prev, condition::PODS_ADMITTED).map(|b| b.message);
        if c.status == "False" && before.as_ref() != Some(&c.message) {
            events.push((EventType::Warning, "PodSecurityRejected", c.message.clone()));
        }
    }
    if let Some(c) = find(now, condition::CONFLICTED) {
        let before = find(prev, condition::CONFLICTED).map(|b| b.message);
        if c.status == "True" && before.as_ref() != Some(&c.message) {
            events.push((EventType::Warning, "Conflicted", c.message.clone()));
        }
    }
    if events.is_empty() {
        return;
    }
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter());
    let reference = policy.object_ref(&());
    for (type_, reason, note) in events {
        info!(reason, %note, "event");
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            warn!(error = %e, reason, "cannot publish event");
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
