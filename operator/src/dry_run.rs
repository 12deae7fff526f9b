//! The dry-run CLI (`tollgate-operator render`, `explain-pod`): what the
//! operator and its webhooks would do with manifests from files, without a
//! cluster. Each answer comes from the code the running operator uses —
//! [`crate::render`] and [`crate::webhook::validate`] for a policy's
//! config, [`crate::webhook::mutate`] and [`crate::conflict`] for a pod —
//! so, given the same objects and flags, a dry run decides as they do.
//!
//! What a file cannot tell is said in the output: Secret values (never
//! read; only the paths the sidecar reads and the Secret keys behind them),
//! the operator's own flags (passed as the same flags, e.g.
//! `--sidecar-defaults`), creation times missing from hand-written
//! manifests (which decide conflicts), and the keys of an app's `envFrom`
//! sources.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use crate::crd::LlmPolicy;

pub mod config;
pub mod explain;
#[cfg(test)]
mod tests;

/// The namespace of an object whose manifest names none, and no
/// `--namespace` was given (as kubectl does).
pub const DEFAULT_NAMESPACE: &str = "default";

/// Why the input cannot be used (as opposed to a policy the webhook denies).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_name}: document {doc}: {message}")]
    Parse {
        source_name: String,
        doc: usize,
        message: String,
    },
    #[error("{0}: no {1} in it")]
    Missing(String, &'static str),
    #[error("{0}: {1} Pods in it; explain one at a time")]
    SeveralPods(String, usize),
    #[error("--namespace-labels: `{0}` is not key=value")]
    Label(String),
}

/// Reads `path`, or stdin for `-`.
pub fn read(path: &Path) -> Result<String, Error> {
    let err = |source| Error::Read {
        path: path.display().to_string(),
        source,
    };
    if path == Path::new("-") {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s).map_err(err)?;
        Ok(s)
    } else {
        std::fs::read_to_string(path).map_err(err)
    }
}

/// The objects of a (multi-document) YAML text, the items of a `kind: List`
/// (`kubectl get -o yaml`) spread out, with their 1-based document numbers.
/// Empty documents (a stray `---`, only comments) are skipped and not
/// counted; an error's line is the file's.
fn objects(source_name: &str, text: &str) -> Result<Vec<(usize, Value)>, Error> {
    let mut out = Vec::new();
    let mut bytes = text.as_bytes();
    let docs = serde_saphyr::read_with_options(&mut bytes, tollgate_config::yaml::options());
    for (i, doc) in docs.enumerate() {
        let v: Value = doc.map_err(|e| Error::Parse {
            source_name: source_name.into(),
            doc: i + 1,
            message: tollgate_config::yaml::message(&e),
        })?;
        if v.get("kind").and_then(Value::as_str) == Some("List") {
            let items = v.get("items").and_then(Value::as_array);
            out.extend(
                items
                    .into_iter()
                    .flatten()
                    .map(|item| (i + 1, item.clone())),
            );
        } else {
            out.push((i + 1, v));
        }
    }
    Ok(out)
}

fn kind(v: &Value) -> &str {
    v.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// A manifest's `kind name` for notes about skipped objects.
fn describe(v: &Value) -> String {
    let name = v
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)");
    format!(
        "{} {name}",
        if kind(v).is_empty() {
            "(no kind)"
        } else {
            kind(v)
        }
    )
}

/// Deserializes one object, naming the field path of a type error.
fn typed<T: serde::de::DeserializeOwned>(
    source_name: &str,
    doc: usize,
    v: Value,
) -> Result<T, Error> {
    serde_path_to_error::deserialize(v).map_err(|e| Error::Parse {
        source_name: source_name.into(),
        doc,
        message: format!("{}: {}", e.path(), e.inner()),
    })
}

/// A policy's spec names only fields the CRD declares: the API server
/// refuses any other (`kubectl apply`'s default `--validate=strict`) or
/// drops it, and its typed form here would drop it silently.
fn declared(source_name: &str, doc: usize, v: &Value) -> Result<(), Error> {
    let Some(spec) = v.get("spec") else {
        return Ok(());
    };
    let unknown = crate::webhook::validate::unknown_fields(spec);
    if unknown.is_empty() {
        return Ok(());
    }
    Err(Error::Parse {
        source_name: source_name.into(),
        doc,
        message: format!(
            "{} (not in the LlmPolicy CRD: the API server refuses or drops it)",
            unknown.join(", ")
        ),
    })
}

/// The `LlmPolicy` objects in `text`, and a note for each other object,
/// which is skipped (a file may hold a policy with its Secret).
pub fn policies(source_name: &str, text: &str) -> Result<(Vec<LlmPolicy>, Vec<String>), Error> {
    let mut policies = Vec::new();
    let mut notes = Vec::new();
    for (doc, v) in objects(source_name, text)? {
        if kind(&v) == "LlmPolicy" {
            declared(source_name, doc, &v)?;
            policies.push(typed(source_name, doc, v)?);
        } else {
            notes.push(format!(
                "{source_name}: document {doc}: skipped {}, not an LlmPolicy",
                describe(&v)
            ));
        }
    }
    if policies.is_empty() {
        return Err(Error::Missing(source_name.into(), "LlmPolicy"));
    }
    Ok((policies, notes))
}

/// Workload kinds whose `spec.template` is the pod they create.
const WORKLOADS: &[&str] = &[
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
];

/// The one Pod in `text`: a `Pod`, or the pod template of a workload
/// (`Deployment`, `StatefulSet`, `DaemonSet`, `ReplicaSet`, `Job`,
/// `CronJob`), which takes the workload's namespace.
pub fn pod(source_name: &str, text: &str) -> Result<Pod, Error> {
    let mut pods = Vec::new();
    for (doc, v) in objects(source_name, text)? {
        let template = match kind(&v) {
            "Pod" => Some(v.clone()),
            k if WORKLOADS.contains(&k) => v.get("spec").and_then(|s| s.get("template")).cloned(),
            "CronJob" => v
                .get("spec")
                .and_then(|s| s.get("jobTemplate"))
                .and_then(|j| j.get("spec"))
                .and_then(|s| s.get("template"))
                .cloned(),
            _ => None,
        };
        let Some(template) = template else { continue };
        let mut pod: Pod = typed(source_name, doc, template)?;
        if pod.metadata.namespace.is_none() {
            pod.metadata.namespace = v
                .get("metadata")
                .and_then(|m| m.get("namespace"))
                .and_then(Value::as_str)
                .map(String::from);
        }
        if pod.metadata.name.is_none() {
            pod.metadata.name = v
                .get("metadata")
                .and_then(|m| m.get("name"))
                .and_then(Value::as_str)
                .map(|n| format!("{n} (template)"));
        }
        pods.push(pod);
    }
    match pods.len() {
        0 => Err(Error::Missing(source_name.into(), "Pod or pod template")),
        1 => Ok(pods.pop().expect("one pod")),
        n => Err(Error::SeveralPods(source_name.into(), n)),
    }
}

/// `k=v,k2=v2` (as `kubectl label` takes them) into a map.
pub fn labels(s: &str) -> Result<BTreeMap<String, String>, Error> {
    s.split(',')
        .map(str::trim)
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().into(), v.trim().into())),
            _ => Err(Error::Label(kv.into())),
        })
        .collect()
}

/// The namespace an object is looked at in: `--namespace`, else its own,
/// else [`DEFAULT_NAMESPACE`].
pub fn namespace(flag: Option<&str>, own: Option<&str>) -> String {
    flag.or(own).unwrap_or(DEFAULT_NAMESPACE).to_string()
}
