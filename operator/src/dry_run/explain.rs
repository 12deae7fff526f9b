//! `tollgate-operator explain-pod`: which policy selects a pod, whether the
//! injection webhook would inject it and why not, and what the injection
//! adds. The decision is the webhook's own ([`choose`], which runs
//! [`eligible`](crate::webhook::mutate::eligible) and the conflict
//! resolution of [`crate::conflict`]); what it adds is read back from the
//! webhook's JSON [`patch`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Pod;
use kube::core::Selector;
use kube::ResourceExt;
use serde_json::Value;

use crate::conflict::{pod_counts, selects, winner, PodInfo, WonBy, POLICY_ANNOTATION};
use crate::context::Settings;
use crate::crd::LlmPolicy;
use crate::webhook::mutate::{
    choose, has_env_from, patch, EnvFromByContainer, NAMESPACE_LABEL, POD_INJECT, SIDECAR_NAME,
};
use crate::webhook::validate::verdict;

/// What `explain-pod` prints.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Explanation {
    /// The policy whose sidecar the pod would get.
    pub injected_by: Option<String>,
    /// The webhook's reason for not injecting (`opted_out`, `no_policy`,
    /// ...: the `result` its logs and spans carry).
    pub skipped: Option<&'static str>,
    pub text: String,
}

/// Explains `pod` in its namespace (`namespace` flag, else the pod's, else
/// `default`) with that namespace's labels, among `policies` (those of
/// other namespaces are left out, as the webhook never sees them), for an
/// operator configured by `settings`.
pub fn explain(
    pod: &Pod,
    namespace: Option<&str>,
    namespace_labels: &BTreeMap<String, String>,
    policies: &[LlmPolicy],
    settings: &Settings,
) -> Explanation {
    let ns = super::namespace(namespace, pod.namespace().as_deref());
    let mut t = String::new();
    let _ = writeln!(t, "Pod {ns}/{}", pod.name_any());
    let _ = writeln!(t, "  labels: {}", pairs(pod.labels()));
    if !pod.annotations().is_empty() {
        let _ = writeln!(t, "  annotations: {}", pairs(pod.annotations()));
    }

    // As the webhook sees them: this namespace's, sidecar defaults merged.
    let mut mine = Vec::new();
    for p in policies {
        match p.namespace() {
            Some(other) if other != ns => {
                let _ = writeln!(
                    t,
                    "  (LlmPolicy {other}/{} left out: not in namespace {ns})",
                    p.name_any()
                );
            }
            _ => {
                let mut p = p.clone();
                p.metadata.namespace = Some(ns.clone());
                mine.push(settings.effective(&p));
            }
        }
    }
    let refs: Vec<&LlmPolicy> = mine.iter().collect();
    selection(&mut t, pod, &ns, &refs);

    let mut out = Explanation::default();
    match choose(pod, &ns, namespace_labels, &refs, settings) {
        Err(reason) => {
            out.skipped = Some(reason);
            let why = why_not(reason, pod, &ns, &refs);
            let _ = writeln!(t, "Not injected: {why}");
        }
        Ok((policy, rendered)) => {
            out.injected_by = Some(policy.name_any());
            let _ = writeln!(
                t,
                "Injected with LlmPolicy {}'s sidecar: {}",
                policy.name_any(),
                why_eligible(pod, &ns)
            );
            // Offline, no envFrom source can be read: as for sources the
            // webhook finds defining nothing.
            let (ops, warnings) =
                patch(pod, policy, &rendered, settings, &EnvFromByContainer::new());
            summarize(&mut t, pod, &ops);
            for w in warnings {
                let _ = writeln!(t, "  warning: {w}");
            }
            if has_env_from(pod) {
                let _ = writeln!(t, "  note: envFrom sources are not read offline; the webhook does not add a variable they define (unless overrideAppEnv)");
            }
        }
    }
    out.text = t;
    out
}

/// Which policies select the pod, by which selector, and which one wins.
fn selection(t: &mut String, pod: &Pod, ns: &str, policies: &[&LlmPolicy]) {
    if policies.is_empty() {
        let _ = writeln!(t, "Policies of {ns}: none");
        return;
    }
    let _ = writeln!(t, "Policies of {ns}:");
    let won = winner(policies.iter().copied(), pod.labels());
    let info = PodInfo {
        name: pod.name_any(),
        labels: pod.labels().clone(),
        annotations: pod.annotations().clone(),
        eligible: true,
    };
    let mut undated = false;
    for p in policies {
        let selector = selector(p);
        let verdict = if !selects(p, pod.labels()) {
            "does not select it".to_string()
        } else if won.is_some_and(|w| w.name_any() == p.name_any()) {
            "selects it (the winner)".to_string()
        } else {
            undated |= p.metadata.creation_timestamp.is_none();
            // The conflict code's own reason, as status reports it.
            let counts = pod_counts(p, policies, std::slice::from_ref(&info));
            match counts.lost_to.iter().next() {
                Some((w, WonBy::Age)) => format!("selects it, but {w} is older and wins"),
                Some((w, WonBy::Name)) => {
                    format!("selects it, but {w} wins (same creation second: its name sorts first)")
                }
                None => "selects it, but is being deleted".to_string(),
            }
        };
        let _ = writeln!(t, "  {}: {verdict} (podSelector: {selector})", p.name_any());
    }
    if undated {
        let _ = writeln!(t, "  note: a policy without metadata.creationTimestamp (not read from a cluster) counts as newest; in the cluster the oldest wins");
    }
}

/// A policy's `podSelector` as `kubectl get -l` takes it.
fn selector(p: &LlmPolicy) -> String {
    match Selector::try_from(p.spec.pod_selector.clone()) {
        Ok(s) if s.selects_all() => "{} (every pod)".into(),
        Ok(s) => s.to_string(),
        Err(e) => format!("invalid ({e}): matches nothing"),
    }
}

fn pairs(m: &BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "(none)".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where the pod's `tollgate.dev/inject` comes from: label, then annotation
/// (the order [`eligible`](crate::webhook::mutate::eligible) reads them in).
fn inject_source(pod: &Pod) -> Option<(&'static str, &str)> {
    pod.labels()
        .get(POD_INJECT)
        .map(|v| ("label", v.as_str()))
        .or_else(|| {
            pod.annotations()
                .get(POD_INJECT)
                .map(|v| ("annotation", v.as_str()))
        })
}

fn why_eligible(pod: &Pod, ns: &str) -> String {
    match inject_source(pod) {
        Some((from, "true")) => format!("the pod asks for it ({from} {POD_INJECT}=true)"),
        // `eligible` passed: the namespace has injection enabled.
        _ => format!("namespace {ns} has {NAMESPACE_LABEL}=enabled"),
    }
}

/// The webhook's reason in words.
fn why_not(reason: &'static str, pod: &Pod, ns: &str, policies: &[&LlmPolicy]) -> String {
    match reason {
        "opted_out" => {
            let from = inject_source(pod).map_or("label", |s| s.0);
            format!("opted out ({from} {POD_INJECT}=false)")
        }
        "excluded_namespace" => format!(
            "namespace {ns} is excluded (--excluded-namespace): the webhooks are not called for it"
        ),
        "mirror_pod" => "a mirror pod (the kubelet's copy of a static pod)".into(),
        "not_enabled" => format!(
            "injection is not enabled: namespace {ns} lacks {NAMESPACE_LABEL}=enabled (--namespace-labels) and the pod does not ask with {POD_INJECT}=true"
        ),
        "already_injected" => format!(
            "already injected (a {SIDECAR_NAME} container or a {POLICY_ANNOTATION} annotation)"
        ),
        "no_policy" => format!("no LlmPolicy of {ns} selects it"),
        "config_map_not_owned" => "the winning policy's status says its ConfigMap name is taken by an object it did not create".into(),
        "invalid_policy" => match winner(policies.iter().copied(), pod.labels()) {
            Some(p) => {
                let denial = verdict(p).err().unwrap_or_default();
                format!("LlmPolicy {ns}/{} is invalid: {denial}", p.name_any())
            }
            None => "the winning policy is invalid".into(),
        },
        other => other.to_string(),
    }
}

/// What the webhook's JSON patch adds, in words: the sidecar, its volumes,
/// the app containers' variables (names only) and the annotations.
fn summarize(t: &mut String, pod: &Pod, ops: &Value) {
    let containers: Vec<String> = pod
        .spec
        .iter()
        .flat_map(|s| &s.containers)
        .map(|c| c.name.clone())
        .collect();
    let mut env: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut annotations = Vec::new();
    for op in ops.as_array().into_iter().flatten() {
        let path = op["path"].as_str().unwrap_or_default();
        let value = &op["value"];
        let many = |v: &Value| match v {
            Value::Array(a) => a.clone(),
            v => vec![v.clone()],
        };
        if path.starts_with("/spec/initContainers") {
            for c in many(value) {
                sidecar(t, &c);
            }
        } else if path.starts_with("/spec/volumes") {
            for v in many(value) {
                let _ = writeln!(
                    t,
                    "  volume {}: {}",
                    v["name"].as_str().unwrap_or("?"),
                    source(&v)
                );
            }
        } else if let Some(rest) = path.strip_prefix("/spec/containers/") {
            let i: usize = rest
                .split('/')
                .next()
                .and_then(|i| i.parse().ok())
                .unwrap_or(0);
            let replaced = op["op"] == "replace";
            for e in many(value) {
                let name = e["name"].as_str().unwrap_or("?");
                env.entry(i).or_default().push(if replaced {
                    format!("{name} (replaces the app's value)")
                } else {
                    name.to_string()
                });
            }
        } else if let Some(key) = path.strip_prefix("/metadata/annotations/") {
            let key = key.replace("~1", "/").replace("~0", "~");
            annotations.push(format!("{key}={}", value.as_str().unwrap_or_default()));
        } else if path == "/metadata/annotations" {
            for (k, v) in value.as_object().into_iter().flatten() {
                annotations.push(format!("{k}={}", v.as_str().unwrap_or_default()));
            }
        }
    }
    for (i, names) in env {
        let c = containers.get(i).map_or("?", String::as_str);
        let _ = writeln!(t, "  env of container {c}: {}", names.join(", "));
    }
    if !annotations.is_empty() {
        let _ = writeln!(t, "  annotations: {}", annotations.join(", "));
    }
}

fn sidecar(t: &mut String, c: &Value) {
    let _ = writeln!(
        t,
        "  sidecar: init container {} (restartPolicy {}), image {}",
        c["name"].as_str().unwrap_or("?"),
        c["restartPolicy"].as_str().unwrap_or("?"),
        c["image"].as_str().unwrap_or("?"),
    );
    let ports: Vec<String> = c["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} {}",
                p["name"].as_str().unwrap_or("?"),
                p["containerPort"]
            )
        })
        .collect();
    if !ports.is_empty() {
        let _ = writeln!(t, "    ports: {}", ports.join(", "));
    }
    let env: Vec<&str> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["name"].as_str())
        .collect();
    if !env.is_empty() {
        let _ = writeln!(t, "    env: {}", env.join(", "));
    }
    for m in c["volumeMounts"].as_array().into_iter().flatten() {
        let ro = if m["readOnly"] == true {
            " (read-only)"
        } else {
            ""
        };
        let _ = writeln!(
            t,
            "    mounts {} at {}{ro}",
            m["name"].as_str().unwrap_or("?"),
            m["mountPath"].as_str().unwrap_or("?")
        );
    }
}

/// A volume's source in words (a Secret's keys, never values).
fn source(v: &Value) -> String {
    if let Some(cm) = v.get("configMap") {
        format!("ConfigMap {}", cm["name"].as_str().unwrap_or("?"))
    } else if let Some(s) = v.get("secret") {
        let keys: Vec<&str> = s["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["key"].as_str())
            .collect();
        format!(
            "Secret {}, keys {}",
            s["secretName"].as_str().unwrap_or("?"),
            keys.join(", ")
        )
    } else if v.get("emptyDir").is_some() {
        "emptyDir".into()
    } else {
        v.to_string()
    }
}
