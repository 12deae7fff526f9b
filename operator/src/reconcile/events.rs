//! The Events a reconcile publishes when a policy's status changes.

use super::*;

use crate::sharing::PER_POD_BUDGETS;

pub(super) async fn publish_events(
    ctx: &Context,
    policy: &LlmPolicy,
    prev: &LlmPolicyStatus,
    now: &LlmPolicyStatus,
) {
    let events = due(prev, now);
    if events.is_empty() {
        return;
    }
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter());
    let reference = policy.object_ref(&());
    for (type_, reason, note) in events {
        info!(reason, %note, "event");
        let ev = Event {
            type_,
            reason: reason.into(),
            note: Some(truncate(&note, 1000)),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&ev, &reference).await {
            warn!(error = %e, reason, "cannot publish event");
        }
    }
}

/// The Events the change from `prev` to `now` calls for: (type, reason, note).
fn due(prev: &LlmPolicyStatus, now: &LlmPolicyStatus) -> Vec<(EventType, &'static str, String)> {
    let find = |s: &LlmPolicyStatus, t: &str| s.conditions.iter().find(|c| c.type_ == t).cloned();
    let mut events = Vec::new();
    let accepted = find(now, condition::ACCEPTED);
    if let Some(c) = &accepted {
        let before = find(prev, condition::ACCEPTED);
        if c.status == "False"
            && before.as_ref().map(|b| (&b.status, &b.message)) != Some((&c.status, &c.message))
        {
            events.push((EventType::Warning, "InvalidSpec", c.message.clone()));
        }
    }
    if now.config_hash.is_some() && now.config_hash != prev.config_hash {
        events.push((
            EventType::Normal,
            "ConfigUpdated",
            format!(
                "ConfigMap {} holds config {}",
                now.config_map.clone().unwrap_or_default(),
                now.config_hash.clone().unwrap_or_default()
            ),
        ));
    }
    if let Some(c) = find(now, condition::READY) {
        let before = find(prev, condition::READY).map(|b| b.message);
        if c.reason == "SecretMissing" && before.as_ref() != Some(&c.message) {
            events.push((EventType::Warning, "SecretMissing", c.message.clone()));
        }
    }
    if let Some(c) = find(now, condition::SIDECARS_READY) {
        let before = find(prev, condition::SIDECARS_READY).map(|b| (b.status, b.reason));
        if c.status == "False" && before != Some((c.status.clone(), c.reason.clone())) {
            // The condition's reason is one of health::REASONS (the Event
            // needs it as a static string).
            if let Some(reason) = health::REASONS.into_iter().find(|r| *r == c.reason) {
                events.push((EventType::Warning, reason, c.message.clone()));
            }
        }
    }
    if let Some(c) = find(now, condition::PODS_ADMITTED) {
        let before = find(prev, condition::PODS_ADMITTED).map(|b| b.message);
        if c.status == "False" && before.as_ref() != Some(&c.message) {
            events.push((EventType::Warning, "PodSecurityRejected", c.message.clone()));
        }
    }
    if let Some(c) = find(now, condition::CONFLICTED) {
        let before = find(prev, condition::CONFLICTED).map(|b| b.message);
        if c.status == "True" && before.as_ref() != Some(&c.message) {
            let reason = if c.reason == CONFIG_MAP_NOT_OWNED {
                CONFIG_MAP_NOT_OWNED
            } else {
                "Conflicted"
            };
            events.push((EventType::Warning, reason, c.message.clone()));
        }
    }
    if let Some(c) = find(now, condition::BUDGETS_SHARED) {
        let before = find(prev, condition::BUDGETS_SHARED).map(|b| b.status);
        if c.status == "False" && before.as_deref() != Some("False") {
            events.push((EventType::Warning, PER_POD_BUDGETS, c.message.clone()));
        }
    }
    events
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests;
