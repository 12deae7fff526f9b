//! Route and send: attempts, retries and fallbacks over a plan's targets.
//!
//! The strategy picks the first target among those the circuit breaker
//! admits; each target gets up to `retry.maxAttempts` attempts with
//! exponential backoff and full jitter (at least the provider's
//! `Retry-After`); then the next target in the route's order. A context-length
//! refusal jumps to a target marked `longContext`. Everything stays within
//! `retry.deadline`. Nothing reaches the app until an attempt succeeds — for
//! streams, until the first event has arrived — so a failure before that is
//! invisible to the app; after it, the stream is never switched (see `body`).
//!
//! One attempt ([`one`]) returns the answer as it came; `respond` makes it
//! the app's response.

mod one;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::KeyValue;
use tokio::time::Instant;

use super::exchange::Exchange;
use super::respond::{Answer, Body};
use super::settle::{split_authority, Settle};
use crate::api::Family;
use crate::error::ProxyError;
use crate::routing::balance::{select, Choice};
use crate::routing::breaker::{Admit, State};
use crate::routing::retry::backoff;
use crate::routing::targets::TargetStats;
use crate::routing::Plan;
use crate::state::Shared;
use crate::upstream::UpstreamError;

/// Why an attempt did not produce the answer.
enum Failure {
    /// Worth retrying or falling back; `last` is what the app gets if
    /// nothing better comes.
    Transient {
        last: Last,
        wait: Option<Duration>,
        reason: &'static str,
    },
    /// The prompt is too long for this target.
    ContextLength(Last),
    /// This target cannot serve the request at all (e.g. no credentials).
    Skip(Last),
}

impl Failure {
    /// The attempt's outcome as the attempts metric and the attempt's span
    /// name it.
    fn label(&self) -> &'static str {
        match self {
            Failure::Transient { reason, .. } => reason,
            Failure::ContextLength(_) => "context_length",
            Failure::Skip(_) => "skipped",
        }
    }
}

/// The best answer so far when every attempt fails.
enum Last {
    /// The provider's error answer: status, headers and (part of) its body.
    Upstream {
        head: http::response::Parts,
        body: Bytes,
        api: Family,
    },
    Error(ProxyError),
}

/// Runs the plan; returns the answer for the app.
pub(crate) async fn run(x: &Exchange<'_>, settle: &mut Settle) -> Result<Answer, ProxyError> {
    let plan = x.plan();
    let policy = plan.policy;
    let deadline = x.started + policy.retry.deadline.min(policy.timeouts.total);
    let m = &x.shared.metrics;
    let stats: Vec<_> = plan
        .targets
        .iter()
        .map(|t| x.shared.targets.get(&t.key))
        .collect();
    let mut tried = vec![false; plan.targets.len()];
    let mut last: Option<Last> = None;
    let mut attempted_any = false;
    // Why the next attempt is made, for its span: `first`, `retry`,
    // `fallback`, `long_context`; and what the one before ended with.
    let mut why: &'static str = "first";
    let mut previous: Option<&'static str> = None;

    let mirror = plan.shadow.filter(|s| crate::shadow::sampled(s));
    let mut next = first_target(plan, &stats, x);
    if let Some(i) = next {
        m.selections
            .series(&[plan.label, &plan.targets[i].key])
            .inc();
    }
    while let Some(i) = next {
        tried[i] = true;
        let target = &plan.targets[i];
        let mut jump_long_context = false;
        for n in 1..=policy.retry.max_attempts {
            let admitted = {
                let now = std::time::Instant::now();
                let mut b = stats[i].breaker.lock().expect("lock");
                let a = b.admit(&policy.breaker, now);
                if a == Admit::Probe {
                    transition(x.shared, &stats[i], State::HalfOpen);
                }
                a
            };
            if admitted == Admit::No || Instant::now() >= deadline {
                break;
            }
            attempted_any = true;
            let mut span = settle.attempt_phase(&target.model);
            if span.recording() {
                describe(&mut span, x, target, settle.attempts() + 1, why, previous);
            }
            let result = one::attempt(x, target, &stats[i], deadline, settle, &span).await;
            match &result {
                Ok(answer) => {
                    let status = answer.head.status.as_u16();
                    span.set(KeyValue::new("http.response.status_code", status as i64));
                    if !answer.head.status.is_success() {
                        span.fail(crate::metrics::status_class(status));
                    }
                }
                Err(f) => {
                    span.fail(f.label());
                    previous = Some(f.label());
                }
            }
            drop(span);
            why = "retry";
            match result {
                Ok(mut answer) => {
                    record(x.shared, &stats[i], policy, false);
                    m.attempts
                        .series(&[plan.label, &target.key, "success"])
                        .inc();
                    if let Some(shadow) = mirror {
                        mirror_to(x, shadow, &mut answer, settle);
                    }
                    return Ok(answer);
                }
                Err(Failure::Transient {
                    last: l,
                    wait,
                    reason,
                }) => {
                    record(x.shared, &stats[i], policy, true);
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, reason])
                        .inc();
                    last = Some(l);
                    // No wait for an attempt that will not be made: the
                    // last one, or a target this failure just ejected.
                    if n == policy.retry.max_attempts || ejected(&stats[i], plan) {
                        break;
                    }
                    let pause = backoff(&policy.retry, n, wait);
                    if Instant::now() + pause >= deadline {
                        break;
                    }
                    m.retries
                        .with_label_values(&[plan.label, &target.key, reason])
                        .inc();
                    tokio::time::sleep(pause).await;
                }
                Err(Failure::ContextLength(l)) => {
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, "context_length"])
                        .inc();
                    last = Some(l);
                    jump_long_context = true;
                    break;
                }
                Err(Failure::Skip(l)) => {
                    m.attempts
                        .with_label_values(&[plan.label, &target.key, "skipped"])
                        .inc();
                    last = Some(l);
                    break;
                }
            }
        }
        why = if jump_long_context {
            "long_context"
        } else {
            "fallback"
        };
        next = if jump_long_context {
            let j = (0..plan.targets.len()).find(|&j| !tried[j] && plan.targets[j].long_context);
            if j.is_some() {
                m.fallbacks
                    .with_label_values(&[plan.label, "context_length"])
                    .inc();
            }
            j
        } else {
            let j = (0..plan.targets.len()).find(|&j| !tried[j] && !ejected(&stats[j], plan));
            if j.is_some() && Instant::now() < deadline {
                m.fallbacks
                    .with_label_values(&[plan.label, "target_failed"])
                    .inc();
                j
            } else {
                None
            }
        };
    }

    match last {
        Some(Last::Upstream { head, body, api }) => Ok(one::error_answer(x, head, body, api)),
        Some(Last::Error(e)) => Err(e),
        None if !attempted_any => Err(ProxyError::AllTargetsEjected {
            route: plan.label.to_string(),
        }),
        None => Err(UpstreamError::Timeout {
            provider: plan.label.to_string(),
            timeout: policy.retry.deadline,
        }
        .into()),
    }
}

/// An attempt span's attributes: the target, the attempt's number and why
/// it is made (and how the one before ended).
fn describe(
    span: &mut crate::trace::Phase,
    x: &Exchange<'_>,
    target: &crate::routing::PlanTarget<'_>,
    n: u32,
    why: &'static str,
    previous: Option<&'static str>,
) {
    let provider = &x.rt.config.providers[target.provider];
    span.set(KeyValue::new(
        "gen_ai.request.model",
        target.model.to_string(),
    ));
    span.set(KeyValue::new(
        "gen_ai.provider.name",
        crate::pipeline::settle::gen_ai_provider_name(provider).into_owned(),
    ));
    let (host, port) = split_authority(&provider.base_url.authority);
    span.set(KeyValue::new("server.address", host.to_string()));
    if let Some(p) = port {
        span.set(KeyValue::new("server.port", p as i64));
    }
    span.set(KeyValue::new("tollgate.target", target.key.clone()));
    span.set(KeyValue::new("tollgate.attempt", n as i64));
    span.set(KeyValue::new("tollgate.attempt.reason", why));
    if let Some(p) = previous {
        span.set(KeyValue::new("tollgate.attempt.previous_error", p));
    }
}

/// Sends the request to the route's shadow too, in the background, when
/// the answer has text to compare (a stream or a whole body).
fn mirror_to(
    x: &Exchange<'_>,
    shadow: &tollgate_config::Shadow,
    answer: &mut Answer,
    settle: &Settle,
) {
    if !matches!(answer.body, Body::Whole(_) | Body::Stream { .. }) {
        return;
    }
    let span = match (&x.shared.tracer, settle.trace()) {
        (Some(t), Some(r)) if r.recording() => {
            let op = x.endpoint.operation.otel_name();
            let mut span = t.linked(
                format!("shadow {op} {}", shadow.model),
                opentelemetry::trace::SpanKind::Client,
                Some(r),
            );
            span.set(KeyValue::new("tollgate.route", x.plan().label.to_string()));
            span.set(KeyValue::new("gen_ai.request.model", shadow.model.clone()));
            span
        }
        _ => crate::trace::Phase::OFF,
    };
    let (tx, primary) = tokio::sync::oneshot::channel();
    answer.shadow = Some(tx);
    crate::shadow::spawn(
        &x.shared.mirrors,
        crate::shadow::Mirror {
            req: crate::shadow::RequestCopy::of(x),
            shadow: shadow.clone(),
            primary,
            span,
        },
    );
}

/// The strategy's pick among targets the breaker does not hold out.
fn first_target(plan: &Plan<'_>, stats: &[Arc<TargetStats>], x: &Exchange<'_>) -> Option<usize> {
    let open: Vec<usize> = (0..plan.targets.len())
        .filter(|&i| !ejected(&stats[i], plan))
        .collect();
    if open.is_empty() {
        return None;
    }
    let choices: Vec<Choice<'_>> = open
        .iter()
        .map(|&i| Choice {
            weight: plan.targets[i].weight,
            stats: &stats[i],
        })
        .collect();
    Some(open[select(plan.strategy, plan.label, &choices, &x.shared.targets)])
}

fn ejected(stats: &TargetStats, plan: &Plan<'_>) -> bool {
    stats
        .breaker
        .lock()
        .expect("lock")
        .is_ejected(&plan.policy.breaker, std::time::Instant::now())
}

fn record(
    shared: &Shared,
    stats: &TargetStats,
    policy: &tollgate_config::RoutePolicy,
    failed: bool,
) {
    let changed = stats.breaker.lock().expect("lock").record(
        &policy.breaker,
        std::time::Instant::now(),
        failed,
    );
    if let Some(state) = changed {
        transition(shared, stats, state);
    }
}

fn transition(shared: &Shared, stats: &TargetStats, state: State) {
    let m = &shared.metrics;
    m.circuit_transitions
        .with_label_values(&[&stats.key, state.as_str()])
        .inc();
    m.target_ejected
        .with_label_values(&[&stats.key])
        .set((state != State::Closed) as i64);
    match state {
        State::Open => tracing::warn!(target = %stats.key, "circuit opened: target ejected"),
        State::HalfOpen => tracing::info!(target = %stats.key, "circuit half-open: probing"),
        State::Closed => tracing::info!(target = %stats.key, "circuit closed: target restored"),
    }
}
