//! Sidecar injection: decides whether a new pod gets the proxy, and builds
//! the minimal JSON patch that adds it. Pure, so every rule is unit-tested.
//!
//! A pod is injected when its namespace has `tollgate.dev/injection:
//! enabled` or the pod has `tollgate.dev/inject: "true"` (label or
//! annotation), an `LlmPolicy` of its namespace selects it, and it has not
//! opted out with `tollgate.dev/inject: "false"`. The proxy runs as a native
//! sidecar (an init container with `restartPolicy: Always`): it starts
//! before the app and stops after it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::ResourceExt;
use serde_json::{json, Value};

use crate::conflict::{winner, HASH_ANNOTATION, POLICY_ANNOTATION};
use crate::crd::LlmPolicy;
use crate::reconcile::config_map_name;
use crate::render::{render, Rendered, CONFIG_DIR, CONFIG_FILE, STATE_DIR};

/// Namespace label that turns injection on.
pub const NAMESPACE_LABEL: &str = "tollgate.dev/injection";
/// Pod label or annotation: `"true"` asks for injection, `"false"` refuses it.
pub const POD_INJECT: &str = "tollgate.dev/inject";
/// The injected container's name.
pub const SIDECAR_NAME: &str = "tollgate-proxy";
/// Value of the placeholder API keys (SDKs refuse to start without one).
pub const PLACEHOLDER_KEY: &str = "tollgate-placeholder";

/// Why a pod was or was not injected.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Not injected; the reason is for logs and metrics.
    Skip(&'static str),
    /// Injected by `policy`; `patch` is a JSON patch (RFC 6902).
    Inject { policy: String, patch: Value },
}

fn flag(pod: &Pod, key: &str) -> Option<String> {
    pod.labels()
        .get(key)
        .or_else(|| pod.annotations().get(key))
        .cloned()
}

/// Decides for a pod being created in a namespace with `namespace_labels`,
/// among the namespace's `policies`.
pub fn decide(
    pod: &Pod,
    namespace: &str,
    namespace_labels: &BTreeMap<String, String>,
    policies: &[&LlmPolicy],
    default_image: &str,
) -> Decision {
    let asked = flag(pod, POD_INJECT);
    if asked.as_deref() == Some("false") {
        return Decision::Skip("opted_out");
    }
    let enabled = namespace_labels.get(NAMESPACE_LABEL).map(String::as_str) == Some("enabled");
    if !enabled && asked.as_deref() != Some("true") {
        return Decision::Skip("not_enabled");
    }
    if pod.annotations().contains_key(POLICY_ANNOTATION) || has_sidecar(pod) {
        return Decision::Skip("already_injected");
    }
    let Some(policy) = winner(policies.iter().copied(), pod.labels()) else {
        return Decision::Skip("no_policy");
    };
    let Ok(rendered) = render(namespace, &policy.name_any(), &policy.spec) else {
        return Decision::Skip("invalid_policy");
    };
    Decision::Inject {
        policy: policy.name_any(),
        patch: patch(pod, policy, &rendered, default_image),
    }
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
/// policy says to override them).
pub fn patch(pod: &Pod, policy: &LlmPolicy, r: &Rendered, default_image: &str) -> Value {
    let mut ops = Vec::new();
    let spec = pod.spec.clone().unwrap_or_default();

    let sidecar = sidecar(policy, r, default_image);
    match &spec.init_containers {
        Some(cs) if !cs.is_empty() => {
            ops.push(json!({"op": "add", "path": "/spec/initContainers/0", "value": sidecar}))
        }
        _ => ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": [sidecar]})),
    }

    let volumes = volumes(policy, r);
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
        let mut adds = Vec::new();
        let vars = wanted
            .iter()
            .map(|v| (v, inj.override_app_env()))
            .chain(placeholders.iter().map(|v| (v, false)));
        // Placeholders never replace a key the app set: it may be the app's own.
        for ((name, value), may_replace) in vars {
            match env.iter().position(|e| e.name == *name) {
                None => adds.push(json!({"name": name, "value": value})),
                Some(j) if may_replace && env[j].value.as_deref() != Some(value.as_str()) => ops
                    .push(json!({
                    "op": "replace", "path": format!("/spec/containers/{i}/env/{j}"),
                    "value": {"name": name, "value": value}})),
                Some(_) => {}
            }
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
    Value::Array(ops)
}

fn sidecar(policy: &LlmPolicy, r: &Rendered, default_image: &str) -> Value {
    let s = policy.spec.sidecar.clone().unwrap_or_default();
    let mut mounts = vec![
        json!({"name": "tollgate-config", "mountPath": CONFIG_DIR, "readOnly": true}),
        json!({"name": "tollgate-state", "mountPath": STATE_DIR}),
    ];
    for v in &r.secrets {
        mounts.push(json!({"name": v.volume, "mountPath": v.mount_path, "readOnly": true}));
    }
    let resources = s.resources.map(|r| json!(r)).unwrap_or_else(
        || json!({"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}),
    );
    let probe = |path: &str, period: u32, failures: u32| json!({"httpGet": {"path": path, "port": r.admin_port}, "periodSeconds": period, "failureThreshold": failures});
    let mut c = json!({
        "name": SIDECAR_NAME,
        "image": s.image.unwrap_or_else(|| default_image.to_string()),
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
    c
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
