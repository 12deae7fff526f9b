//! Whether a policy's budgets and rate limits are shared by the pods it
//! selects. The memory store (the default) counts in each sidecar, saved to
//! the pod's own `emptyDir`: every replica enforces the full limits on its
//! own, and a pod's spend goes with the pod (a rollout, an eviction, a
//! reschedule). Only the Redis store shares counters. The reconcile reports
//! this as the `BudgetsShared` condition (with a `PerPodBudgets` Event when
//! it turns False) and the validating webhook as an admission warning.

use crate::crd::{BudgetStoreType, LlmPolicySpec};

/// `BudgetsShared=True` reason.
pub(crate) const SHARED_STORE: &str = "SharedStore";
/// `BudgetsShared=False` reason.
pub(crate) const PER_POD_STORE: &str = "PerPodStore";
/// Reason of the Warning Event published when `BudgetsShared` turns False.
pub(crate) const PER_POD_BUDGETS: &str = "PerPodBudgets";

/// Where a policy's budgets and rate limits are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sharing {
    /// In Redis, shared by every selected pod's sidecar.
    Shared,
    /// In each sidecar's memory: per pod.
    PerPod,
}

impl Sharing {
    /// Where `spec` counts its budgets and rate limits; `None` when it has
    /// neither (prices alone count nothing).
    pub(crate) fn of(spec: &LlmPolicySpec) -> Option<Sharing> {
        let b = spec.budgets.as_ref()?;
        if b.limits.is_empty() && b.rate_limits.is_empty() {
            return None;
        }
        // The store `render` writes: memory unless `type: redis`.
        match b.store.as_ref().and_then(|s| s.kind).unwrap_or_default() {
            BudgetStoreType::Redis => Some(Sharing::Shared),
            BudgetStoreType::Memory => Some(Sharing::PerPod),
        }
    }

    /// The condition's status.
    pub(crate) fn shared(self) -> bool {
        self == Sharing::Shared
    }

    /// The condition's reason.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Sharing::Shared => SHARED_STORE,
            Sharing::PerPod => PER_POD_STORE,
        }
    }

    /// The condition's message.
    pub(crate) fn message(self) -> &'static str {
        match self {
            Sharing::Shared => {
                "budgets and rate limits are counted in Redis: every selected pod's sidecar shares the same counters, and spend is kept across rollouts"
            }
            Sharing::PerPod => {
                "budgets and rate limits are counted per pod (memory store): each replica enforces the full limits on its own, so n replicas may spend up to n times each limit, and a pod's spend is lost when the pod goes (rollout, eviction, reschedule; only a restart of its sidecar keeps it); set spec.budgets.store to redis to share them"
            }
        }
    }
}

/// The validating webhook's warning for a policy whose budgets are counted
/// per pod. The API server passes it to the client (kubectl prints it) and
/// may cut a warning beyond 256 characters: this one is shorter, plain
/// ASCII and without quotes (it travels in a `Warning` header).
pub fn warning(spec: &LlmPolicySpec) -> Option<String> {
    (Sharing::of(spec)? == Sharing::PerPod).then(|| PER_POD_WARNING.to_string())
}

const PER_POD_WARNING: &str = "spec.budgets: no shared store (spec.budgets.store is memory): each replica enforces the full limits on its own and spend is lost when a pod goes; use a Redis store for budgets across replicas";

#[cfg(test)]
mod tests;
