//! Deep checks of an `LlmPolicy` that CEL cannot make: the spec renders into
//! a config the proxy accepts (regexes compile, prices and durations are
//! sane, sections are well-formed, the config fits in a ConfigMap).
//!
//! Warnings admit the policy and reach the client (kubectl prints them):
//! budgets counted per pod ([`crate::sharing`]), and a semantic cache
//! route whose threshold is below [`LOW_THRESHOLD`].
//!
//! Secrets are not looked up here: a policy may be created before its
//! Secrets (GitOps applies them in any order). Status reports a missing
//! Secret or key (`Ready=False`, `SecretMissing`) until it exists.

use kube::ResourceExt;

use crate::crd::LlmPolicy;
use crate::render::render;
use crate::sharing;

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
/// dry-run CLI prints the same message ([`crate::dry_run`]).
pub fn verdict(policy: &LlmPolicy) -> Result<Vec<String>, String> {
    let problems = problems(policy);
    if problems.is_empty() {
        Ok(warnings(policy))
    } else {
        Err(problems.join("; "))
    }
}

/// What the client should know about an admitted `policy`, empty when
/// nothing.
pub(crate) fn warnings(policy: &LlmPolicy) -> Vec<String> {
    let mut out: Vec<String> = sharing::warning(&policy.spec).into_iter().collect();
    out.extend(low_thresholds(policy.spec.cache.as_ref()));
    out
}

/// A semantic threshold below this serves near-miss prompts often (see
/// tests/semantic/REPORT.md): admitted, with a warning.
pub(crate) const LOW_THRESHOLD: f64 = 0.9;

/// A warning for each semantic cache route of `cache` (the spec's
/// free-form section, as the proxy reads it) whose threshold, its own or
/// the `cache.semantic` default (0.95), is below [`LOW_THRESHOLD`].
fn low_thresholds(cache: Option<&serde_json::Value>) -> Vec<String> {
    let Some(cache) = cache else { return vec![] };
    let default = cache
        .pointer("/semantic/threshold")
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.95);
    let routes = cache.get("routes").and_then(|r| r.as_array());
    let mut out = Vec::new();
    for (i, r) in routes.into_iter().flatten().enumerate() {
        let Some(sem) = r.get("semantic") else {
            continue;
        };
        if sem.get("enabled").and_then(|e| e.as_bool()) == Some(false) {
            continue;
        }
        let (t, at) = match sem.get("threshold").and_then(|t| t.as_f64()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_low_semantic_threshold_is_a_warning_naming_its_field() {
        assert!(low_thresholds(None).is_empty());
        let ok = json!({"routes": [{"name": "faq", "semantic": {"embedder": "e"}}]});
        assert!(low_thresholds(Some(&ok)).is_empty(), "the 0.95 default");
        let own = json!({"routes": [
            {"name": "faq", "semantic": {"threshold": 0.85}},
            {"name": "off", "semantic": {"threshold": 0.5, "enabled": false}},
            {"name": "plain"}
        ]});
        let w = low_thresholds(Some(&own));
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].starts_with("spec.cache.routes[0].semantic.threshold: 0.85 is below 0.9"),
            "{}",
            w[0]
        );
        assert!(
            w[0].len() < 256 && !w[0].contains('"'),
            "a Warning header value"
        );
        let inherited =
            json!({"semantic": {"threshold": 0.8}, "routes": [{"name": "faq", "semantic": {}}]});
        let w = low_thresholds(Some(&inherited));
        assert_eq!(w.len(), 1);
        assert!(
            w[0].starts_with("spec.cache.semantic.threshold: 0.8 "),
            "{}",
            w[0]
        );
    }
}
