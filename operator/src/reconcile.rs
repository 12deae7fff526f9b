//! Reconcile one `LlmPolicy`: render it, server-side apply the owned
//! ConfigMap, and write status (conditions, config hash, pod counts) and
//! Events. An invalid spec is reported and then left alone until it
//! changes; API errors requeue with exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::jiff::Timestamp;
use kube::api::{ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use tracing::field::Empty;
use tracing::{info, instrument, warn, Span};

use crate::conflict::{pod_counts, PodCounts, PodInfo};
use crate::context::Context;
use crate::crd::{condition, LlmPolicy, LlmPolicyStatus};
use crate::render::{render, Rendered, CONFIG_FILE};
use crate::secrets;
use crate::sharing::Sharing;
use crate::telemetry::record_trace_id;
use crate::webhook::mutate::eligible;

mod events;
pub mod health;
pub mod refusals;
pub mod spend;
mod status;
use status::{apply_budgets, keep_budgets};
pub use status::{apply_health, build_status, Outcome, CONFIG_MAP_NOT_OWNED};

/// Field manager of everything the operator writes.
pub const MANAGER: &str = "tollgate-operator";
/// Label on the ConfigMaps the operator owns.
pub const POLICY_LABEL: &str = "tollgate.dev/policy";
/// How often a healthy policy is reconciled without a trigger (pod counts
/// are also refreshed by pod events).
const RESYNC: Duration = Duration::from_secs(300);
/// How soon a policy with a missing Secret, a ConfigMap name taken by
/// another object, or a sidecar not (yet) running is looked at again: a
/// foreign ConfigMap is not watched, a start-up grace ends without any
/// event, and the Secret watch may not be running yet (a RoleBinding just
/// created) — this is its backstop.
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
    #[error("apply the RoleBinding granting Secret reads in {namespace}: {source}")]
    RoleBinding {
        namespace: String,
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
            Error::RoleBinding { .. } => "role_binding",
            Error::Status { .. } => "status",
        }
    }
}

/// Reconciles one policy in a `reconcile` span (exported as a trace when
/// export is on) whose `result` is `success`, `invalid` or `error`.
#[instrument(skip_all, fields(
    policy = %policy.name_any(),
    namespace = policy.namespace().unwrap_or_default(),
    result = Empty,
    error = Empty,
    trace_id = Empty,
    otel.status_code = Empty,
))]
pub async fn reconcile(policy: Arc<LlmPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    let span = Span::current();
    record_trace_id(&span);
    let _timer = ctx
        .metrics
        .reconcile_duration
        .with_label_values(&[] as &[&str])
        .start_timer();
    let done = apply(&policy, &ctx).await;
    match &done {
        Ok((_, result)) => {
            ctx.metrics.reconciles.with_label_values(&[result]).inc();
            span.record("result", *result);
        }
        // Counted by `error_policy`.
        Err(e) => {
            span.record("result", "error");
            span.record("error", e.metric_label());
            span.record("otel.status_code", "ERROR");
        }
    }
    done.map(|(action, _)| action)
}

/// The reconcile itself: the next action and the result it is counted as.
async fn apply(
    policy: &Arc<LlmPolicy>,
    ctx: &Arc<Context>,
) -> Result<(Action, &'static str), Error> {
    let name = policy.name_any();
    let ns = policy
        .namespace()
        .ok_or_else(|| Error::NoNamespace(name.clone()))?;
    let cm_name = config_map_name(&name);

    let mut spent = None;
    let mut health = health::Health::default();
    let now = Timestamp::now();
    let policies = namespace_policies(ctx, policy, &ns);
    // As rendered and injected: sidecar defaults and the default store applied.
    let effective = ctx.settings.effective(policy);
    let outcome = match render(&ns, &name, &effective.spec) {
        Ok(r) => {
            let not_owned = write_config_map(ctx, policy, &ns, &cm_name, &r).await?;
            // Secret reads in this namespace: granted, then watched.
            if let Some(access) = &ctx.settings.secret_access {
                let owners: Vec<&LlmPolicy> = policies.iter().map(|p| p.as_ref()).collect();
                secrets::bind(&ctx.client, access, &ns, &owners)
                    .await
                    .map_err(|source| Error::RoleBinding {
                        namespace: ns.clone(),
                        source,
                    })?;
            }
            let watches = ctx.secret_watches.lock().unwrap().upgrade();
            if let Some(watches) = watches {
                watches
                    .ensure(&ns, ctx.settings.secret_access.is_some())
                    .await;
            }
            health.secrets = health::secret_problems(&ctx.client, &ns, &r.secrets).await;
            match refusals::refused(&ctx.client, &ns, policy, now).await {
                Ok(refused) => health.refused = refused,
                Err(e) => warn!(error = %e, "cannot read FailedCreate events"),
            }
            spent = Some(
                spend::spend_status(&ctx.client, &ctx.metrics, &ns, &effective.spec, &r.config)
                    .await,
            );
            match not_owned {
                None => Outcome::Applied { hash: r.hash },
                Some(reason) => Outcome::NotWritten(reason),
            }
        }
        Err(e) => Outcome::Invalid(e.to_string()),
    };
    let counts = counts(ctx, policy, &policies, &ns);
    if counts.injected > 0 {
        match health::pods(&ctx.client, &ns, policy).await {
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
    if matches!(outcome, Outcome::Invalid(_)) {
        keep_budgets(&mut status, &prev);
    } else {
        apply_health(&mut status, &prev, &health, now);
        apply_budgets(&mut status, &prev, Sharing::of(&effective.spec), now);
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
        events::publish_events(ctx, policy, &prev, &status).await;
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
    ctx.metrics
        .missing_secrets
        .with_label_values(&[&ns, &name])
        .set(health.secrets.len() as i64);
    refresh_policy_gauge(ctx);
    match outcome {
        Outcome::Applied { .. } | Outcome::NotWritten(_) => {
            let mut next = if redis { spend::REFRESH } else { RESYNC };
            if health.starting
                || matches!(outcome, Outcome::NotWritten(_))
                || !health.sidecars.is_empty()
                || !health.secrets.is_empty()
                || !health.refused.is_empty()
            {
                next = next.min(RECHECK);
            }
            Ok((Action::requeue(next), "success"))
        }
        Outcome::Invalid(e) => {
            warn!(error = %e, "invalid spec");
            // Nothing to retry until the spec changes (a change triggers a reconcile).
            Ok((Action::await_change(), "invalid"))
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

/// Writes the policy's ConfigMap, unless an object of that name exists that
/// this policy did not create: then nothing is written (never adopted, never
/// overwritten, so never garbage-collected with the policy) and the reason
/// is returned for status.
async fn write_config_map(
    ctx: &Context,
    policy: &LlmPolicy,
    ns: &str,
    cm_name: &str,
    r: &Rendered,
) -> Result<Option<String>, Error> {
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
            owner_references: Some(vec![owner.clone()]),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(CONFIG_FILE.into(), r.yaml.clone())])),
        ..Default::default()
    };
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    let err = |source| Error::ConfigMap {
        namespace: ns.into(),
        name: cm_name.into(),
        source,
    };
    match api.get_metadata_opt(cm_name).await.map_err(err)? {
        // New: created, not applied, so a ConfigMap someone creates in the
        // meantime is refused (409) rather than taken over.
        None => match api.create(&PostParams::default(), &cm).await {
            Ok(_) => Ok(None),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(Some(not_owned(ns, cm_name, None))),
            Err(e) => Err(err(e)),
        },
        Some(found) => {
            let ours = found
                .owner_references()
                .iter()
                .any(|o| o.uid == owner.uid && o.controller == Some(true));
            if !ours {
                return Ok(Some(not_owned(ns, cm_name, Some(found.owner_references()))));
            }
            // Ours: apply, which also reverts hand edits.
            api.patch(
                cm_name,
                &PatchParams::apply(MANAGER).force(),
                &Patch::Apply(&cm),
            )
            .await
            .map_err(err)?;
            Ok(None)
        }
    }
}

/// Why the policy's ConfigMap name is taken.
fn not_owned(
    ns: &str,
    cm_name: &str,
    owners: Option<&[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference]>,
) -> String {
    let by = match owners.and_then(|o| o.iter().find(|o| o.controller == Some(true))) {
        Some(o) if o.kind == "LlmPolicy" => {
            format!(
                "it belongs to an earlier LlmPolicy {} (uid {}) still being garbage-collected",
                o.name, o.uid
            )
        }
        Some(o) => format!("it belongs to {} {}", o.kind, o.name),
        None => "this policy did not create it".into(),
    };
    format!(
        "ConfigMap {ns}/{cm_name} already exists and {by}: the operator never takes over or overwrites it, and injects no pods for this policy; rename or delete that ConfigMap"
    )
}

/// The policies of `ns` in the cache, `policy` included even when the cache
/// does not hold it yet.
fn namespace_policies(ctx: &Context, policy: &Arc<LlmPolicy>, ns: &str) -> Vec<Arc<LlmPolicy>> {
    let mut policies: Vec<Arc<LlmPolicy>> = ctx
        .stores
        .policies
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .collect();
    if !policies.iter().any(|p| p.name_any() == policy.name_any()) {
        policies.push(policy.clone());
    }
    policies
}

/// What `policy` sees of its namespace's pods, among the namespace's
/// `policies`.
fn counts(ctx: &Context, policy: &LlmPolicy, policies: &[Arc<LlmPolicy>], ns: &str) -> PodCounts {
    let refs: Vec<&LlmPolicy> = policies.iter().map(|p| p.as_ref()).collect();
    let ns_labels = ctx
        .stores
        .namespaces
        .get(&ObjectRef::new(ns))
        .map(|n| n.labels().clone())
        .unwrap_or_default();
    let pods = ctx.stores.pods.read().unwrap().clone();
    let pods: Vec<PodInfo> = pods
        .state()
        .into_iter()
        .filter(|p| p.namespace().as_deref() == Some(ns))
        .map(|p| PodInfo {
            name: p.name_any(),
            eligible: eligible(
                ns,
                &ns_labels,
                p.labels(),
                p.annotations(),
                &ctx.settings.excluded_namespaces,
            )
            .is_ok(),
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
