//! Deep checks of an `LlmPolicy` that CEL cannot make: the spec renders into
//! a config the proxy accepts (regexes compile, prices and durations are
//! sane, sections are well-formed, the config fits in a ConfigMap).
//!
//! Secrets are not looked up here: a policy may be created before its
//! Secrets (GitOps applies them in any order). Status reports a missing
//! Secret or key (`Ready=False`, `SecretMissing`) until it exists.

use kube::ResourceExt;

use crate::crd::LlmPolicy;
use crate::render::render;

/// Every problem with `policy`, empty when it is valid.
pub fn problems(policy: &LlmPolicy) -> Vec<String> {
    let ns = policy.namespace().unwrap_or_else(|| "default".into());
    match render(&ns, &policy.name_any(), &policy.spec) {
        Ok(_) => vec![],
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}
