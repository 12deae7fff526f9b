//! Sidecar injection: decides whether a new pod gets the proxy, and builds
//! the minimal JSON patch that adds it. Pure, so every rule is unit-tested.
//!
//! A pod is injected when its namespace has `tollgate.dev/injection:
//! enabled` or the pod has `tollgate.dev/inject: "true"` (label or
//! annotation), an `LlmPolicy` of its namespace selects it, and it has not
//! opted out with `tollgate.dev/inject: "false"`. Namespaces the webhooks
//! never see (the operator's own, `kube-system`, the chart's
//! `webhook.excludedNamespaces`) and mirror pods are never injected, and
//! [`eligible`] says so to the status counts too. The proxy runs as a native
//! sidecar (an init container with `restartPolicy: Always`): it starts
//! before the app and stops after it. When the operator is told where
//! sidecars send traces, the container gets the OpenTelemetry variables
//! ([`trace_env`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{Container, Pod, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::conflict::{winner, HASH_ANNOTATION, POLICY_ANNOTATION};
use crate::context::Settings;
use crate::crd::{LlmPolicy, Sidecar};
use crate::reconcile::{config_map_name, CONFIG_MAP_NOT_OWNED};
use crate::render::{render, Rendered, CONFIG_DIR, CONFIG_FILE, STATE_DIR};

pub mod trace_env;

/// Namespace label that turns injection on.
pub const NAMESPACE_LABEL: &str = "tollgate.dev/injection";
/// Pod label or annotation: `"true"` asks for injection, `"false"` refuses it.
pub const POD_INJECT: &str = "tollgate.dev/inject";
/// The injected container's name.
pub const SIDECAR_NAME: &str = "tollgate-proxy";
/// Value of the placeholder API keys (SDKs refuse to start without one).
pub const PLACEHOLDER_KEY: &str = "tollgate-placeholder";

/// What an app container gets from its `envFrom` sources, as read at
/// admission (the webhook reads them: see `server::env_from`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvFrom {
    /// Variable names the sources define (their `prefix` applied).
    pub names: BTreeSet<String>,
    /// Sources that could not be read (`ConfigMap app-env`): any variable
    /// may come from them.
    pub unreadable: Vec<String>,
}

/// [`EnvFrom`] by container name; containers without `envFrom` are absent.
pub type EnvFromByContainer = BTreeMap<String, EnvFrom>;

/// The pod's app containers take variables from `envFrom`.
pub fn has_env_from(pod: &Pod) -> bool {
    pod.spec
        .iter()
        .flat_map(|s| &s.containers)
        .any(|c| c.env_from.as_ref().is_some_and(|e| !e.is_empty()))
}

/// Annotation the kubelet puts on the API copy of a static pod.
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Whether a pod with these labels and annotations, in `namespace`, is one
/// the sidecar is meant for (before any policy is looked at): `Err` names
/// why not. The webhook decides with it, and status counts only these pods
/// as selected, so an opted-out pod never shows as uninjected.
pub fn eligible(
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    excluded_namespaces: &[String],
) -> Result<(), &'static str> {
    let asked = labels
        .get(POD_INJECT)
        .or_else(|| annotations.get(POD_INJECT));
    if asked.map(String::as_str) == Some("false") {
        return Err("opted_out");
    }
    if excluded_namespaces.iter().any(|n| n == namespace) {
        return Err("excluded_namespace");
    }
    if annotations.contains_key(MIRROR_ANNOTATION) {
        return Err("mirror_pod");
    }
    let enabled = namespace_labels.get(NAMESPACE_LABEL).map(String::as_str) == Some("enabled");
    if !enabled && asked.map(String::as_str) != Some("true") {
        return Err("not_enabled");
    }
    Ok(())
}

/// The policy whose sidecar a pod being created in a namespace with
/// `namespace_labels` gets, among the namespace's `policies`, with its
/// rendered config; or why it gets none (for logs and metrics). The patch
/// is [`patch`]'s, once the pod's `envFrom` sources are known.
pub fn choose<'a>(
    pod: &Pod,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    policies: &[&'a LlmPolicy],
    settings: &Settings,
) -> Result<(&'a LlmPolicy, Rendered), &'static str> {
    eligible(
        namespace,
        namespace_labels,
        pod.labels(),
        pod.annotations(),
        &settings.excluded_namespaces,
    )?;
    if pod.annotations().contains_key(POLICY_ANNOTATION) || has_sidecar(pod) {
        return Err("already_injected");
    }
    let policy = winner(policies.iter().copied(), pod.labels()).ok_or("no_policy")?;
    if config_map_not_owned(policy) {
        // Its ConfigMap is someone else's object: the sidecar would read it.
        return Err("config_map_not_owned");
    }
    let rendered =
        render(namespace, &policy.name_any(), &policy.spec).map_err(|_| "invalid_policy")?;
    Ok((policy, rendered))
}

/// The policy's status says its ConfigMap's name is taken by an object it
/// did not create.
fn config_map_not_owned(policy: &LlmPolicy) -> bool {
    policy
        .status
        .iter()
        .flat_map(|s| &s.conditions)
        .any(|c| c.type_ == crate::crd::condition::READY && c.reason == CONFIG_MAP_NOT_OWNED)
}

fn has_sidecar(pod: &Pod) -> bool {
    let spec = pod.spec.as_ref();
    let named = |cs: Option<&Vec<Container>>| {
        cs.is_some_and(|cs| cs.iter().any(|c| c.name == SIDECAR_NAME))
    };
    named(spec.and_then(|s| s.init_containers.as_ref())) || named(spec.map(|s| &s.containers))
}

/// The JSON patch that injects `policy`'s sidecar into `pod`: only `add`
/// operations on what is missing (and `replace` of app env vars when the
/// policy says to override them), with warnings for variables left unset.
///
/// A variable the app sets itself, in `env` or through `envFrom`, is kept
/// unless the policy overrides app values (`overrideAppEnv`, base URLs
/// only: an injected `env` entry wins over `envFrom`); placeholder keys
/// never replace the app's own. When an `envFrom` source could not be read
/// the webhook does not guess: it sets only what overrides anyway, and
/// warns.
pub fn patch(
    pod: &Pod,
    policy: &LlmPolicy,
    r: &Rendered,
    settings: &Settings,
    env_from: &EnvFromByContainer,
) -> (Value, Vec<String>) {
    let mut warnings = Vec::new();
    let mut ops = Vec::new();
    let spec = pod.spec.clone().unwrap_or_default();

    let sidecar = sidecar(policy, r, settings);
    match &spec.init_containers {
        Some(cs) if !cs.is_empty() => {
            ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": sidecar}))
        }
        _ => ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [sidecar]})),
    }

    let mut volumes = volumes(policy, r);
    volumes.extend(settings.sidecar_tracing.as_ref().and_then(|t| t.volume()));
    match &spec.volumes {
        Some(vs) if !vs.is_empty() => {
            for v in volumes {
                ops.push(json!({"op": "add", "path": "/spec/volumes/-", "value": v}));
            }
        }
        _ => ops.push(json!({"op": "add", "path": "/spec/volumes", "value": volumes})),
    }

    let inj = policy.spec.injection.clone().unwrap_or_default();
    let mut wanted: Vec<(&str, String)> = Vec::new();
    if inj.base_urls() {
        wanted.push(("OPENAI_BASE_URL", format!("http://127.0.0.1:{}/v1", r.port)));
        wanted.push(("ANTHROPIC_BASE_URL", format!("http://127.0.0.1:{}", r.port)));
    }
    let placeholders: Vec<(&str, String)> = if inj.placeholder_api_keys() {
        vec![
            ("OPENAI_API_KEY", PLACEHOLDER_KEY.into()),
            ("ANTHROPIC_API_KEY", PLACEHOLDER_KEY.into()),
        ]
    } else {
        vec![]
    };
    for (i, c) in spec.containers.iter().enumerate() {
        if !inj.containers.is_empty() && !inj.containers.contains(&c.name) {
            continue;
        }
        let env = c.env.clone().unwrap_or_default();
        let from = env_from.get(&c.name).cloned().unwrap_or_default();
        let mut adds = Vec::new();
        let mut unset = Vec::new();
        let vars = wanted
            .iter()
            .map(|v| (v, inj.override_app_env()))
            .chain(placeholders.iter().map(|v| (v, false)));
        // Placeholders never replace a key the app set: it may be the app's own.
        for ((name, value), may_replace) in vars {
            match env.iter().position(|e| e.name == *name) {
                // `env` wins over `envFrom`: adding it overrides.
                None if from.names.contains(*name) && !may_replace => {}
                None if !from.unreadable.is_empty() && !may_replace => unset.push(*name),
                None => adds.push(json!({"name": name, "value": value})),
                Some(j) if may_replace && env[j].value.as_deref() != Some(value.as_str()) => ops
                    .push(json!({
                    "op": "replace", "path": format!("/spec/containers/{i}/env/{j}"),
                    "value": {"name": name, "value": value}})),
                Some(_) => {}
            }
        }
        if !unset.is_empty() {
            warnings.push(format!(
                "tollgate: container {:?}: {} not set: envFrom {} could not be read and may set them",
                c.name,
                unset.join(", "),
                from.unreadable.join(", ")
            ));
        }
        if c.env.is_none() && !adds.is_empty() {
            ops.push(
                json!({"op": "add", "path": format!("/spec/containers/{i}/env"), "value": adds}),
            );
        } else {
            for a in adds {
                ops.push(
                    json!({"op": "add", "path": format!("/spec/containers/{i}/env/-"), "value": a}),
                );
            }
        }
    }

    if no_memory_limit(&policy.spec.sidecar.clone().unwrap_or_default()) {
        warnings.push(format!(
            "tollgate: container {SIDECAR_NAME} has no memory limit (LlmPolicy {}, spec.sidecar.resources): set limits.memory",
            policy.name_any()
        ));
    }

    let notes = [
        (POLICY_ANNOTATION, policy.name_any()),
        (HASH_ANNOTATION, r.hash.clone()),
    ];
    if pod.metadata.annotations.is_none() {
        let map: BTreeMap<&str, String> = notes.into_iter().collect();
        ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": map}));
    } else {
        for (k, v) in notes {
            let key = k.replace('~', "~0").replace('/', "~1");
            ops.push(
                json!({"op": "add", "path": format!("/metadata/annotations/{key}"), "value": v}),
            );
        }
    }
    (Value::Array(ops), warnings)
}

fn sidecar(policy: &LlmPolicy, r: &Rendered, settings: &Settings) -> Value {
    let s = policy.spec.sidecar.clone().unwrap_or_default();
    let mut mounts = vec![
        json!({"name": "tollgate-config", "mountPath": CONFIG_DIR, "readOnly": true}),
        json!({"name": "tollgate-state", "mountPath": STATE_DIR}),
    ];
    for v in &r.secrets {
        mounts.push(json!({"name": v.volume, "mountPath": v.mount_path, "readOnly": true}));
    }
    mounts.extend(settings.sidecar_tracing.as_ref().and_then(|t| t.mount()));
    let resources = json!(resources(&s));
    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": r.admin_port}, "periodSeconds": period, "failureThreshold": failures});
    let mut c = json!({
        "name": SIDECAR_NAME,
        "image": s.image.unwrap_or_else(|| settings.proxy_image.clone()),
        "restartPolicy": "Always",
        "args": ["run", "--config", format!("{CONFIG_DIR}/{CONFIG_FILE}")],
        "ports": [{"name": "tollgate-admin", "containerPort": r.admin_port}],
        // The app starts once the proxy can serve (keys readable).
        "startupProbe": probe("/readyz", 1, 120),
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 3),
        "resources": resources,
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    });
    if let Some(p) = s.image_pull_policy {
        c["imagePullPolicy"] = json!(p.as_str());
    }
    if let Some(t) = &settings.sidecar_tracing {
        c["env"] = Value::Array(t.env());
    }
    c
}

/// The sidecar's resources: the policy's own (its sidecar defaults merged),
/// else the chart's defaults: 50m CPU and 64Mi memory requested, 1 CPU and
/// 256Mi limits (under a one-CPU quota the proxy runs one runtime worker,
/// which serves more per CPU-second than one per node core:
/// tests/bench/REPORT-nginx-upstream.md).
pub fn resources(sidecar: &Sidecar) -> ResourceRequirements {
    sidecar.resources.clone().unwrap_or_else(|| {
        let q = |s: &str| Quantity(s.into());
        ResourceRequirements {
            requests: Some([("cpu".into(), q("50m")), ("memory".into(), q("64Mi"))].into()),
            limits: Some([("cpu".into(), q("1")), ("memory".into(), q("256Mi"))].into()),
            ..ResourceRequirements::default()
        }
    })
}

/// The injected sidecar would run without a memory limit: its caches and
/// stream buffers could take the node's memory (a LimitRange's defaults do
/// not reach it: they are applied before the webhook adds the container).
pub fn no_memory_limit(sidecar: &Sidecar) -> bool {
    !resources(sidecar)
        .limits
        .is_some_and(|l| l.contains_key("memory"))
}

fn volumes(policy: &LlmPolicy, r: &Rendered) -> Vec<Value> {
    let mut v = vec![
        json!({"name": "tollgate-config", "configMap": {"name": config_map_name(&policy.name_any())}}),
        json!({"name": "tollgate-state", "emptyDir": {}}),
    ];
    for s in &r.secrets {
        let items: Vec<Value> = s
            .keys
            .iter()
            .map(|k| json!({"key": k, "path": k}))
            .collect();
        v.push(json!({"name": s.volume, "secret": {"secretName": s.secret, "items": items}}));
    }
    v
}

#[cfg(test)]
mod tests;
