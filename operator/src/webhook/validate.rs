//! Deep checks of an `LlmPolicy` that CEL cannot make: the spec renders into
//! a config the proxy accepts (regexes compile, prices and durations are
//! sane, sections are well-formed, the config fits in a ConfigMap).
//!
//! Warnings admit the policy and reach the client (kubectl prints them):
//! budgets counted per pod ([`crate::sharing`]).
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
    sharing::warning(&policy.spec).into_iter().collect()
}
