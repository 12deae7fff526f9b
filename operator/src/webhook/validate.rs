//! Deep checks of an `LlmPolicy` that CEL cannot make: the spec renders into
//! a config the proxy accepts (regexes compile, prices and durations are
//! sane, references resolve, the config fits in a ConfigMap), and it
//! declares no field the CRD's schema lacks ([`unknown_fields`]: the API
//! server prunes those before the webhook sees them, unless the installed
//! CRD is older than the operator).
//!
//! Warnings admit the policy and reach the client (kubectl prints them):
//! budgets counted per pod ([`crate::sharing`]), a semantic cache route
//! whose threshold is below 0.9 (`LOW_THRESHOLD`), a sidecar without a memory
//! limit, and ([`namespace_warnings`]) no PII filtering in a namespace
//! labelled [`PERSONAL_DATA_LABEL`].
//!
//! Secrets are not looked up here: a policy may be created before its
//! Secrets (GitOps applies them in any order). Status reports a missing
//! Secret or key (`Ready=False`, `SecretMissing`) until it exists.

use std::collections::BTreeMap;

use kube::ResourceExt;

use crate::crd::{Cache, LlmPolicy, Pii, PiiAction};
use crate::render::render;
use crate::sharing;
use crate::webhook::mutate::no_memory_limit;

mod fields;
#[cfg(test)]
mod tests;

pub use fields::unknown_fields;

/// Every problem with `policy`, empty when it is valid.
pub fn problems(policy: &LlmPolicy) -> Vec<String> {
    let ns = policy.namespace().unwrap_or_else(|| "default".into());
    match render(&ns, &policy.name_any(), &policy.spec) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// The webhook's answer for `policy` as the operator applies it (its
/// sidecar defaults merged, its namespace set): `Ok` with the warnings it
/// is admitted with, or `Err` with the message it is denied with. The
/// dry-run CLI prints the same message ([`crate::dry_run`]). Warnings that
/// depend on the namespace are [`namespace_warnings`]'.
pub fn verdict(policy: &LlmPolicy) -> Result<Vec<String>, String> {
    let problems = problems(policy);
    if problems.is_empty() {
        Ok(warnings(policy))
    } else {
        Err(problems.join("; "))
    }
}

/// What the client should know about an admitted `policy`, empty when
/// nothing. Each is one line of plain ASCII without quotes, under 256
/// characters: it travels in a `Warning` header, which the API server may
/// cut beyond that.
pub(crate) fn warnings(policy: &LlmPolicy) -> Vec<String> {
    let mut out: Vec<String> = sharing::warning(&policy.spec).into_iter().collect();
    out.extend(low_thresholds(policy.spec.cache.as_ref()));
    if no_memory_limit(&policy.spec.sidecar.clone().unwrap_or_default()) {
        out.push(NO_MEMORY_LIMIT.into());
    }
    out
}

const NO_MEMORY_LIMIT: &str = "spec.sidecar.resources: no memory limit (set by neither the policy nor the operator's sidecar defaults): the sidecar's caches and buffers may take the node's memory; set spec.sidecar.resources.limits.memory";

/// Namespace label saying the namespace's workloads handle personal data:
/// `"true"`. A policy there without PII filtering is admitted with a warning.
pub const PERSONAL_DATA_LABEL: &str = "tollgate.dev/personal-data";

/// The warnings for `policy` that depend on its namespace, whose labels
/// are `namespace_labels`.
pub fn namespace_warnings(
    policy: &LlmPolicy,
    namespace_labels: &BTreeMap<String, String>,
) -> Vec<String> {
    if namespace_labels
        .get(PERSONAL_DATA_LABEL)
        .map(String::as_str)
        != Some("true")
    {
        return vec![];
    }
    unfiltered(policy.spec.pii.as_ref())
        .map(|why| {
            format!("{why} although the namespace is labelled {PERSONAL_DATA_LABEL}=true: personal data in prompts reaches the providers unchanged")
        })
        .into_iter()
        .collect()
}

/// Why `pii` lets every value through, or `None` when some type is masked,
/// hashed, pseudonymized or blocked.
fn unfiltered(pii: Option<&Pii>) -> Option<&'static str> {
    let Some(p) = pii else {
        return Some("spec.pii: no PII filtering (the section is not set)");
    };
    if p.enabled == Some(false) {
        return Some("spec.pii.enabled: PII filtering is off");
    }
    let default = p.action.unwrap_or(PiiAction::Mask);
    let builtin = tollgate_config::Builtin::ALL.iter().any(|b| {
        let own = p.entities.get(b.name());
        own.and_then(|e| e.enabled) != Some(false)
            && own.and_then(|e| e.action).unwrap_or(default) != PiiAction::Audit
    });
    let custom = p
        .custom
        .iter()
        .any(|c| c.action.unwrap_or(default) != PiiAction::Audit);
    (!builtin && !custom).then_some("spec.pii: every entity type is audited only or off")
}

/// A semantic threshold below this serves near-miss prompts often (see
/// tests/semantic/REPORT.md): admitted, with a warning.
pub(crate) const LOW_THRESHOLD: f64 = 0.9;

/// A warning for each semantic cache route of `cache` whose threshold, its
/// own or the `cache.semantic` default (0.95), is below [`LOW_THRESHOLD`].
fn low_thresholds(cache: Option<&Cache>) -> Vec<String> {
    let Some(cache) = cache else { return vec![] };
    let default = cache
        .semantic
        .as_ref()
        .and_then(|s| s.threshold)
        .unwrap_or(0.95);
    let mut out = Vec::new();
    for (i, r) in cache.routes.iter().enumerate() {
        let Some(sem) = &r.semantic else { continue };
        if sem.enabled == Some(false) {
            continue;
        }
        let (t, at) = match sem.threshold {
            Some(t) => (t, format!("spec.cache.routes[{i}].semantic.threshold")),
            None => (default, "spec.cache.semantic.threshold".to_string()),
        };
        if t < LOW_THRESHOLD {
            out.push(format!(
                "{at}: {t} is below {LOW_THRESHOLD}: near-miss prompts (another number, a negation, for/against) are likely to share answers; measure with tollgate-proxy calibrate and keep verify on"
            ));
        }
    }
    out
}
