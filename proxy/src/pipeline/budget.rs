//! Budget admission and settlement of one request.
//!
//! Admission runs after routing, so the reservation prices the dearest
//! model that may serve the request: the prompt's tokens plus the most
//! output any target may produce (`max_tokens` after the route's shaping,
//! times `n`). The prompt is reserved at its upper bound (its texts' UTF-8
//! length), which costs no tokenizer; only when that bound is refused is
//! the prompt tokenized and admission tried again, so a request is refused
//! only when its tokenizer count does not fit either
//! ([`BudgetEngine::admit_bounded`]). A refusal becomes
//! [`ProxyError::Budget`].
//!
//! The [`Hold`] then travels in the request's `Settle` record. When that
//! record is dropped (the last byte went out, the app left, or the request
//! failed) the hold ends exactly once: in place when nothing has to wait
//! (the memory store), otherwise in a spawned task, so the app never waits
//! for the store:
//!
//! - a 2xx answer with the provider's final usage: settled to it;
//! - a 2xx answer without usage, or a stream cut short: the prompt
//!   estimate (or the provider's input count, if it sent one) and the
//!   tokens of the text actually sent, marked estimated;
//! - dropped while a provider was working on it (the app left): the prompt
//!   estimate, marked estimated, because the provider may bill it;
//! - anything else (an error answer, a request that never left): released.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use opentelemetry::KeyValue;
use serde_json::Value;

use super::exchange::Exchange;
use crate::api::request::Payload;
use crate::api::usage::Usage;
use crate::api::{Family, Operation};
use crate::budget::{Admission, AdmitRequest, BudgetEngine, Refused};
use crate::error::ProxyError;
use crate::routing::Plan;

/// Texts longer than this are tokenized on the blocking pool, not on a
/// worker serving requests.
const BLOCKING_TOKENIZE: usize = 32 << 10;

/// Admits a routed request; `None` when no budget or rate limit applies.
pub(crate) async fn admit(x: &mut Exchange<'_>) -> Result<Option<Hold>, ProxyError> {
    let Exchange {
        rt,
        shared,
        endpoint,
        parts,
        body,
        model,
        plan,
        ..
    } = x;
    let (engine, plan) = (&rt.budget, plan.as_ref().expect("routed"));
    // Counting tokens is free at the provider, so it is never limited.
    if engine.is_empty() || endpoint.operation == Operation::CountTokens {
        return Ok(None);
    }
    let v = body.json()?;
    let bound = BudgetEngine::prompt_token_bound(endpoint.family, v);
    let max_output_tokens = max_output(endpoint.operation, v, plan);
    let models: Vec<&str> = plan.targets.iter().map(|t| t.model.as_ref()).collect();
    let req = AdmitRequest {
        headers: &parts.headers,
        requested_model: model,
        models: &models,
        prompt_tokens: bound,
        max_output_tokens,
    };
    let family = endpoint.family;
    let mut counted = None;
    let exact = async {
        let n = prompt_tokens(family, body).await;
        counted = Some(n);
        n
    };
    match engine.admit_bounded(&req, exact).await {
        Ok(admission) => Ok(Some(Hold {
            admission,
            prompt: match counted {
                Some(n) => Prompt::Counted(n),
                None => Prompt::Deferred {
                    family,
                    raw: body.raw().clone(),
                },
            },
            tasks: shared.settlements.clone(),
        })),
        Err(Refused { refusal, headers }) => Err(ProxyError::Budget { refusal, headers }),
    }
}

/// The prompt's tokenizer count, when settlement needs it.
enum Prompt {
    Counted(u64),
    /// Not counted at admission: counted from the request body only if the
    /// provider's usage does not say (the body is shared, not copied).
    Deferred {
        family: Family,
        raw: Bytes,
    },
}

impl Prompt {
    async fn tokens(self) -> u64 {
        match self {
            Prompt::Counted(n) => n,
            Prompt::Deferred { family, raw } => {
                let mut body = Payload::new(raw);
                if body.json().is_err() {
                    return 0;
                }
                prompt_tokens(family, &mut body).await
            }
        }
    }
}

/// The tokenizer's count of the prompt in `body` (already parsed), on
/// the blocking pool when it is long or the tokenizer is not loaded yet.
async fn prompt_tokens(family: Family, body: &mut Payload) -> u64 {
    let model = body
        .parsed()
        .and_then(|v| v.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if body.raw().len() <= BLOCKING_TOKENIZE && BudgetEngine::tokenizer_warm(family, model) {
        return body
            .parsed()
            .map_or(0, |v| BudgetEngine::estimate_prompt_tokens(family, v));
    }
    let Some(v) = body.take() else { return 0 };
    let counted =
        tokio::task::spawn_blocking(move || (BudgetEngine::estimate_prompt_tokens(family, &v), v))
            .await;
    match counted {
        Ok((n, v)) => {
            body.put(v);
            n
        }
        // The value is gone with the task; it is parsed again when needed.
        Err(_) => body.raw().len() as u64 / 4,
    }
}

/// The most output tokens any target of `plan` may produce, after the
/// route's and the target's shaping; `None` when some target is unbounded
/// (the engine then reserves `reservation.defaultMaxOutputTokens`).
fn max_output(op: Operation, v: &Value, plan: &Plan<'_>) -> Option<u64> {
    if op == Operation::Embeddings {
        return Some(0);
    }
    let asked = crate::api::request::asked_max_tokens(v);
    let choices = v.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    let mut worst = asked;
    for (i, t) in plan.targets.iter().enumerate() {
        let mut m = asked;
        for s in [plan.shaping, t.shaping].into_iter().flatten() {
            m = match (m, s.default_max_tokens, s.max_tokens) {
                (Some(c), _, Some(max)) if c > max => Some(max),
                (None, Some(d), _) => Some(d),
                (m, _, _) => m,
            };
        }
        worst = match (i, worst, m) {
            (0, _, m) => m,
            (_, Some(w), Some(m)) => Some(w.max(m)),
            _ => None,
        };
    }
    worst.map(|w| w.saturating_mul(choices))
}

// === impl Hold ===

/// An admitted request's reservation, until the request ends.
pub(crate) struct Hold {
    admission: Admission,
    prompt: Prompt,
    tasks: SettleTasks,
}

/// How a request ended, as far as its budget is concerned.
#[derive(Debug, Default)]
pub(crate) struct Ending {
    /// The upstream model of the last attempt.
    pub served_model: Option<String>,
    /// Usage the provider reported, and whether it is the final figure.
    pub usage: Option<Usage>,
    pub usage_complete: bool,
    /// A 2xx answer from the provider was being sent to the app.
    pub answered: bool,
    /// The request ended while a provider was working on it.
    pub awaiting: bool,
    /// What the app was sent, for an estimate.
    pub text: Option<OutputText>,
    /// The trace's `budget.settle` span, ended when the settlement is.
    pub phase: crate::trace::Phase,
}

/// What the reservation turns into.
#[derive(Debug, PartialEq, Eq)]
enum Settlement {
    Release,
    Settle { usage: Usage, estimated: bool },
}

impl Hold {
    /// `x-tollgate-budget-remaining-*` and `x-ratelimit-*`, plus
    /// `x-tollgate-budget-action` when a downgrade fired.
    pub(crate) fn headers(&self) -> Vec<(HeaderName, HeaderValue)> {
        let mut h = self.admission.headers();
        if self.admission.downgrade_to().is_some() {
            h.push((
                HeaderName::from_static("x-tollgate-budget-action"),
                HeaderValue::from_static("downgrade"),
            ));
        }
        h
    }

    /// The route a `downgrade` budget action chose.
    pub(crate) fn downgrade_to(&self) -> Option<&str> {
        self.admission.downgrade_to()
    }

    /// Settles or releases: in place on a memory store, in the background
    /// otherwise.
    pub(crate) fn finish(self, mut end: Ending) {
        let Hold {
            admission,
            prompt,
            tasks,
        } = self;
        let in_place = admission.settles_in_place();
        let task = async move {
            let model = end.served_model.clone().unwrap_or_default();
            let text_tokens = match &end.text {
                Some(t) if needs_estimate(&end) => t.count(&model).await,
                _ => 0,
            };
            let prompt_tokens = if needs_prompt(&end) {
                prompt.tokens().await
            } else {
                0
            };
            let mut phase = std::mem::take(&mut end.phase);
            match decide(&end, prompt_tokens, || text_tokens) {
                Settlement::Release => {
                    phase.set(KeyValue::new("tollgate.budget.settlement", "released"));
                    admission.release().await
                }
                Settlement::Settle { usage, estimated } => {
                    let how = if estimated { "estimated" } else { "reported" };
                    phase.set(KeyValue::new("tollgate.budget.settlement", how));
                    admission.settle(&model, &usage, estimated).await
                }
            }
            drop(phase);
        };
        if in_place {
            tasks.run_in_place(task);
        } else {
            tasks.spawn(task);
        }
    }
}

/// True when the provider's usage cannot be settled as it is.
fn needs_estimate(end: &Ending) -> bool {
    end.served_model.is_some() && end.answered && !(end.usage.is_some() && end.usage_complete)
}

/// True when [`decide`] uses the prompt's count: the provider's usage
/// has no input figure and the request is charged an estimate.
fn needs_prompt(end: &Ending) -> bool {
    if end.served_model.is_none() {
        return false;
    }
    if end.answered {
        needs_estimate(end) && end.usage.is_none_or(|u| u.input == 0)
    } else {
        end.awaiting
    }
}

fn decide(end: &Ending, prompt_tokens: u64, text_tokens: impl FnOnce() -> u64) -> Settlement {
    if end.served_model.is_none() {
        return Settlement::Release;
    }
    if end.answered {
        if let (Some(usage), true) = (end.usage, end.usage_complete) {
            return Settlement::Settle {
                usage,
                estimated: false,
            };
        }
        let reported = end.usage.unwrap_or_default();
        let input = if reported.input > 0 {
            reported.input
        } else {
            prompt_tokens
        };
        return Settlement::Settle {
            usage: Usage {
                input,
                output: reported.output.max(text_tokens()),
                ..reported
            },
            estimated: true,
        };
    }
    if end.awaiting {
        return Settlement::Settle {
            usage: Usage {
                input: prompt_tokens,
                ..Usage::default()
            },
            estimated: true,
        };
    }
    Settlement::Release
}

mod output;
mod tasks;
#[cfg(test)]
mod tests;

pub(crate) use output::OutputText;
pub(crate) use tasks::SettleTasks;
