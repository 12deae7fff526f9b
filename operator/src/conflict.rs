//! Which policy a pod belongs to, and what each policy sees of its pods.
//! Pure functions over the watched state, so conflict resolution is
//! deterministic and unit-tested: among the policies of a pod's namespace
//! whose selector matches it, the oldest wins, then the first by name.

use std::collections::BTreeMap;

use kube::core::{Selector, SelectorExt};
use kube::ResourceExt;

use crate::crd::LlmPolicy;

/// Pod annotation naming the policy whose sidecar was injected.
pub const POLICY_ANNOTATION: &str = "tollgate.dev/policy";
/// Pod annotation with the config hash at injection time.
pub const HASH_ANNOTATION: &str = "tollgate.dev/config-hash";

/// The parts of a pod the operator looks at (a metadata-only watch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// The pod is one the webhook injects when a policy selects it (see
    /// [`crate::webhook::mutate::eligible`]); others (opted out, excluded
    /// namespaces, injection not enabled) are not counted at all.
    pub eligible: bool,
}

/// Does the policy's `podSelector` match these labels? An unparsable
/// selector matches nothing.
pub fn selects(policy: &LlmPolicy, labels: &BTreeMap<String, String>) -> bool {
    match Selector::try_from(policy.spec.pod_selector.clone()) {
        Ok(sel) => sel.matches(labels),
        Err(_) => false,
    }
}

/// Orders policies: older first, then by name. Policies without a
/// creation time (not yet stored) sort last.
fn age_key(p: &LlmPolicy) -> (bool, Option<k8s_openapi::jiff::Timestamp>, String) {
    let created = p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    (created.is_none(), created, p.name_any())
}

/// The policy that wins a pod with these labels, among `policies` (all of
/// the pod's namespace).
pub fn winner<'a, I>(policies: I, labels: &BTreeMap<String, String>) -> Option<&'a LlmPolicy>
where
    I: IntoIterator<Item = &'a LlmPolicy>,
{
    policies
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && selects(p, labels))
        .min_by_key(|p| age_key(p))
}

/// Why another policy wins a pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WonBy {
    /// It was created earlier.
    Age,
    /// Created in the same second (creation times have second precision):
    /// its name sorts first.
    Name,
}

/// What one policy sees of the pods in its namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodCounts {
    /// Pods the policy selects and wins.
    pub matched: u32,
    /// Of those, pods running its sidecar.
    pub injected: u32,
    /// Of those, pods without it, sorted.
    pub uninjected: Vec<String>,
    /// Policies that win pods this one also selects, and how they win.
    pub lost_to: BTreeMap<String, WonBy>,
}

/// Counts `policy`'s pods among `pods`, given every policy of the namespace.
pub fn pod_counts(policy: &LlmPolicy, policies: &[&LlmPolicy], pods: &[PodInfo]) -> PodCounts {
    let me = policy.name_any();
    let mut c = PodCounts::default();
    for pod in pods {
        if !pod.eligible || !selects(policy, &pod.labels) {
            continue;
        }
        match winner(policies.iter().copied(), &pod.labels) {
            Some(w) if w.name_any() != me => {
                let by = if age_key(w).1 == age_key(policy).1 {
                    WonBy::Name
                } else {
                    WonBy::Age
                };
                c.lost_to.insert(w.name_any(), by);
            }
            _ => {
                c.matched += 1;
                if pod.annotations.get(POLICY_ANNOTATION) == Some(&me) {
                    c.injected += 1;
                } else {
                    c.uninjected.push(pod.name.clone());
                }
            }
        }
    }
    c.uninjected.sort();
    c
}

#[cfg(test)]
mod tests;
