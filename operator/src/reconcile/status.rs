//! The status a reconcile writes, as a pure function of what it found.

use k8s_openapi::jiff::Timestamp;

use super::health::Health;
use crate::conflict::{PodCounts, WonBy};
use crate::crd::{condition, LlmPolicyStatus};
use crate::sharing::Sharing;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// What happened to the spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Rendered, valid, and applied to the ConfigMap.
    Applied { hash: String },
    /// Refused, with every problem.
    Invalid(String),
    /// Valid, but the ConfigMap's name is taken by an object this policy
    /// did not create (why, for status); nothing was written.
    NotWritten(String),
}

/// `Ready` and `Conflicted` reason of [`Outcome::NotWritten`].
pub const CONFIG_MAP_NOT_OWNED: &str = "ConfigMapNotOwned";

/// The new status. Transition times of unchanged conditions and the last
/// good config hash are kept from `prev`.
pub fn build_status(
    prev: &LlmPolicyStatus,
    generation: Option<i64>,
    outcome: &Outcome,
    counts: &PodCounts,
    config_map: &str,
    now: Timestamp,
) -> LlmPolicyStatus {
    let mut c = Conditions {
        prev: &prev.conditions,
        out: Vec::new(),
        generation,
        now,
    };
    let short = |h: &str| h.chars().take(12).collect::<String>();
    let lost = !counts.lost_to.is_empty();
    let lost_msg = || {
        let names: Vec<String> = counts
            .lost_to
            .iter()
            .map(|(n, by)| match by {
                WonBy::Age => format!("{n} (older)"),
                WonBy::Name => format!("{n} (created in the same second, wins the tie by name)"),
            })
            .collect();
        format!(
            "policy {} selects some of the same pods and wins them (the oldest policy wins, then the first by name)",
            names.join(", ")
        )
    };
    match outcome {
        Outcome::Applied { hash } => {
            c.set(
                condition::ACCEPTED,
                true,
                "Valid",
                format!("rendered config {} is valid", short(hash)),
            );
            let (ready, reason, message) = if lost && counts.matched == 0 {
                (false, "Conflicted", lost_msg())
            } else {
                (true, "ConfigApplied", format!(
                    "ConfigMap {config_map} holds config {}; {} of {} selected pods run the sidecar",
                    short(hash), counts.injected, counts.matched))
            };
            c.set(condition::READY, ready, reason, message);
        }
        Outcome::NotWritten(why) => {
            c.set(
                condition::ACCEPTED,
                true,
                "Valid",
                "the spec renders into a valid config".into(),
            );
            c.set(condition::READY, false, CONFIG_MAP_NOT_OWNED, why.clone());
        }
        Outcome::Invalid(e) => {
            c.set(condition::ACCEPTED, false, "InvalidSpec", e.clone());
            let message = match &prev.config_hash {
                Some(h) => format!(
                    "spec is invalid; ConfigMap {config_map} keeps the last valid config {}",
                    short(h)
                ),
                None => "spec is invalid; no config was rendered".into(),
            };
            c.set(condition::READY, false, "InvalidSpec", message);
        }
    }
    if let Outcome::NotWritten(why) = outcome {
        c.set(
            condition::CONFLICTED,
            true,
            CONFIG_MAP_NOT_OWNED,
            why.clone(),
        );
    } else if lost {
        c.set(condition::CONFLICTED, true, "OlderPolicyWins", lost_msg());
    } else {
        c.set(
            condition::CONFLICTED,
            false,
            "NoConflict",
            "no other policy wins pods this one selects".into(),
        );
    }
    let config_hash = match outcome {
        Outcome::Applied { hash } => Some(hash.clone()),
        Outcome::Invalid(_) => prev.config_hash.clone(),
        Outcome::NotWritten(_) => None,
    };
    LlmPolicyStatus {
        conditions: c.out,
        observed_generation: generation,
        config_hash,
        config_map: Some(config_map.into()),
        matched_pods: Some(counts.matched),
        injected_pods: Some(counts.injected),
        uninjected_pods: Some(counts.uninjected.len() as u32),
        uninjected_pod_names: counts.uninjected.iter().take(10).cloned().collect(),
        spend: prev.spend.clone(),
        budgets: prev.budgets.clone(),
    }
}

/// Adds what `health` found to a valid policy's status: `Ready` turns False
/// (`SecretMissing`) while a Secret or key the sidecar mounts does not exist,
/// and `SidecarsReady` says whether every injected pod's sidecar runs.
pub fn apply_health(
    status: &mut LlmPolicyStatus,
    prev: &LlmPolicyStatus,
    health: &Health,
    now: Timestamp,
) {
    let mut c = Conditions::amend(status, prev, now);
    let ready = c
        .out
        .iter()
        .any(|c| c.type_ == condition::READY && c.status == "True");
    if ready && !health.secrets.is_empty() {
        c.set(
            condition::READY,
            false,
            "SecretMissing",
            format!(
                "{}; pods injected now cannot start their sidecar (create it, and the policy turns Ready)",
                health.secrets.join("; ")
            ),
        );
    }
    match health.sidecars.first() {
        None => c.set(
            condition::SIDECARS_READY,
            true,
            "Running",
            "every injected pod runs its sidecar".into(),
        ),
        Some(first) => {
            let names: Vec<&str> = health
                .sidecars
                .iter()
                .take(5)
                .map(|u| u.pod.as_str())
                .collect();
            let more = health.sidecars.len().saturating_sub(names.len());
            c.set(
                condition::SIDECARS_READY,
                false,
                first.reason,
                format!(
                    "{} pod(s) without a running sidecar: {}{} ({}: {})",
                    health.sidecars.len(),
                    names.join(", "),
                    if more > 0 {
                        format!(" and {more} more")
                    } else {
                        String::new()
                    },
                    first.pod,
                    first.message
                ),
            );
        }
    }
    match health.refused.first() {
        None => c.set(
            condition::PODS_ADMITTED,
            true,
            "Admitted",
            "no selected workload has its pods refused by Pod Security".into(),
        ),
        Some(first) => {
            let names: Vec<&str> = health.refused.iter().map(|r| r.workload.as_str()).collect();
            c.set(
                condition::PODS_ADMITTED,
                false,
                "PodSecurityRejected",
                format!(
                    "the namespace's Pod Security level refuses the pods of {} ({}: {}); the injected sidecar meets `restricted`, so the app's own spec needs changing",
                    names.join(", "),
                    first.workload,
                    first.message
                ),
            );
        }
    }
    status.conditions = c.out;
}

/// Adds `BudgetsShared` to a valid policy's status: True (`SharedStore`)
/// when its budgets and rate limits are counted in Redis, False
/// (`PerPodStore`) when each sidecar counts its own; none without budgets
/// (`sharing` is `None`).
pub(crate) fn apply_budgets(
    status: &mut LlmPolicyStatus,
    prev: &LlmPolicyStatus,
    sharing: Option<Sharing>,
    now: Timestamp,
) {
    let mut c = Conditions::amend(status, prev, now);
    match sharing {
        Some(s) => c.set(
            condition::BUDGETS_SHARED,
            s.shared(),
            s.reason(),
            s.message().into(),
        ),
        None => c.out.retain(|c| c.type_ != condition::BUDGETS_SHARED),
    }
    status.conditions = c.out;
}

/// An invalid spec changes nothing the sidecars run: they keep the last
/// valid config, and with it the store its budgets are counted in, so its
/// `BudgetsShared` stays as it was.
pub(crate) fn keep_budgets(status: &mut LlmPolicyStatus, prev: &LlmPolicyStatus) {
    status
        .conditions
        .retain(|c| c.type_ != condition::BUDGETS_SHARED);
    let kept = prev
        .conditions
        .iter()
        .find(|c| c.type_ == condition::BUDGETS_SHARED);
    status.conditions.extend(kept.cloned());
}

/// Conditions being written, with the ones they replace.
struct Conditions<'a> {
    prev: &'a [Condition],
    out: Vec<Condition>,
    generation: Option<i64>,
    now: Timestamp,
}

impl<'a> Conditions<'a> {
    /// Conditions to add to `status`'s (taken out of it; put back by the
    /// caller), with `prev`'s transition times.
    fn amend(status: &mut LlmPolicyStatus, prev: &'a LlmPolicyStatus, now: Timestamp) -> Self {
        Conditions {
            prev: &prev.conditions,
            out: std::mem::take(&mut status.conditions),
            generation: status.observed_generation,
            now,
        }
    }

    /// Adds (or replaces) a condition, keeping its transition time when its
    /// status did not change.
    fn set(&mut self, type_: &str, status: bool, reason: &str, message: String) {
        self.out.retain(|c| c.type_ != type_);
        let status = if status { "True" } else { "False" }.to_string();
        let last_transition_time = self
            .prev
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or(Time(self.now));
        self.out.push(Condition {
            type_: type_.into(),
            status,
            reason: reason.into(),
            message,
            observed_generation: self.generation,
            last_transition_time,
        });
    }
}

#[cfg(test)]
mod tests;
