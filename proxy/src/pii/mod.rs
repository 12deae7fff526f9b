//! PII filtering and prompt guard.
//!
//! Before a request leaves the pod, every text the app sent (system prompt,
//! message parts, tool descriptions, tool-call arguments, tool results) is
//! scanned once, in the app's own API, before any translation:
//!
//! - [`recognize`] finds personal data and secrets, with validators and
//!   context words;
//! - [`actions`] masks, hashes, pseudonymizes, blocks or only counts each
//!   finding, per entity type;
//! - [`guard`] looks for prompt-injection markers in user input and, apart,
//!   in tool results;
//! - [`request`] walks the request JSON of both APIs.
//!
//! On the way back, [`response`] restores pseudonyms (and optionally
//! scans) whole answers, and [`stream`] does the same for SSE streams with a
//! hold-back window so an entity split across events is still caught.
//!
//! Detected values never reach logs, metrics or error messages: errors name
//! entity types and rule names only.

pub(crate) mod actions;
pub(crate) mod error;
pub(crate) mod finding;
pub(crate) mod guard;
pub(crate) mod metrics;
pub(crate) mod recognize;
pub(crate) mod request;
pub(crate) mod response;
pub mod stream;
mod validate;

use std::sync::Arc;

use tollgate_config::{Builtin, Pii, PiiAction};

pub(crate) use error::PiiError;
pub(crate) use finding::Entity;
pub(crate) use metrics::PiiMetrics;
pub use request::filter_request;
pub(crate) use request::{filter_other, Filtered};

/// What the answer to one request needs: the policy, and the pseudonyms
/// its request was given.
#[derive(Clone)]
pub(crate) struct Answers {
    pub engine: Arc<Engine>,
    pub pseudonyms: Option<Arc<actions::Pseudonyms>>,
}

impl Answers {
    /// `None` when answers pass untouched (no response scan, nothing to restore).
    pub(crate) fn of(engine: &Arc<Engine>, filtered: &Filtered) -> Option<Answers> {
        (engine.scan_responses || filtered.pseudonyms.is_some()).then(|| Answers {
            engine: engine.clone(),
            pseudonyms: filtered.pseudonyms.clone(),
        })
    }

    /// The filter for a streamed answer in `app`'s API.
    pub(crate) fn stream(
        &self,
        metrics: &Arc<crate::metrics::Metrics>,
        app: crate::api::Family,
    ) -> stream::StreamFilter {
        stream::StreamFilter::new(
            self.engine.clone(),
            self.pseudonyms.clone(),
            metrics.clone(),
            app,
        )
    }

    /// Filters a whole answer in `app`'s API, parsed; true when it changed.
    pub(crate) fn whole(
        &self,
        metrics: &crate::metrics::Metrics,
        app: crate::api::Family,
        answer: &mut serde_json::Value,
    ) -> bool {
        response::ResponseFilter {
            engine: &self.engine,
            pseudonyms: self.pseudonyms.as_deref(),
            metrics: &metrics.pii,
        }
        .edit(app, answer)
    }
}

/// Names the prompt-guard rules a request tripped in `x-tollgate-guard`
/// on its answer (the response pipeline's header filter writes it).
pub(crate) fn guard_header(rules: &[&str]) -> Option<(&'static str, http::HeaderValue)> {
    if rules.is_empty() {
        return None;
    }
    let v = http::HeaderValue::from_str(&rules.join(",")).ok()?;
    Some(("x-tollgate-guard", v))
}

/// One policy, compiled: built when a config is loaded, shared by requests.
pub struct Engine {
    pub scanner: recognize::Scanner,
    pub guard: Option<guard::Guard>,
    /// PII recognizers run at all.
    pub pii_enabled: bool,
    pub scan_responses: bool,
    pub max_hold_back: usize,
    builtin_actions: [PiiAction; Builtin::ALL.len()],
    builtin_labels: [String; Builtin::ALL.len()],
    custom_names: Vec<String>,
    custom_labels: Vec<String>,
    custom_actions: Vec<PiiAction>,
    salt: Vec<u8>,
}

impl Engine {
    /// The engine for a policy, or `None` when the policy scans nothing.
    pub fn new(p: &Pii) -> Option<Arc<Engine>> {
        if !p.is_active() {
            return None;
        }
        Some(Arc::new(Engine {
            scanner: recognize::Scanner::new(p),
            guard: p.guard.enabled.then(|| guard::Guard::new(&p.guard)),
            pii_enabled: p.enabled,
            scan_responses: p.enabled && p.scan_responses,
            max_hold_back: p.max_hold_back,
            builtin_actions: Builtin::ALL.map(|b| p.policy(b).action),
            builtin_labels: Builtin::ALL.map(|b| b.name().to_ascii_uppercase()),
            custom_names: p.custom.iter().map(|c| c.name.clone()).collect(),
            custom_labels: p
                .custom
                .iter()
                .map(|c| c.name.to_ascii_uppercase())
                .collect(),
            custom_actions: p.custom.iter().map(|c| c.action).collect(),
            salt: p.hash_salt.as_bytes().to_vec(),
        }))
    }

    /// The type's name, as in config and metric labels (`credit_card`).
    pub fn name(&self, e: Entity) -> &str {
        match e {
            Entity::Builtin(b) => b.name(),
            Entity::Custom(i) => &self.custom_names[i as usize],
        }
    }

    /// The type's label in replacements (`CREDIT_CARD`).
    pub fn label(&self, e: Entity) -> &str {
        match e {
            Entity::Builtin(b) => &self.builtin_labels[b.index()],
            Entity::Custom(i) => &self.custom_labels[i as usize],
        }
    }

    pub fn action(&self, e: Entity) -> PiiAction {
        match e {
            Entity::Builtin(b) => self.builtin_actions[b.index()],
            Entity::Custom(i) => self.custom_actions[i as usize],
        }
    }

    /// Six hex digits of HMAC-SHA-256(salt, label NUL value).
    pub fn hash_token(&self, label: &str, value: &str) -> String {
        let mac = actions::hmac_sha256(&self.salt, &[label.as_bytes(), b"\0", value.as_bytes()]);
        hex::encode(&mac[..3])
    }

    /// True when any PII type is pseudonymized (answers need restoring).
    pub fn pseudonymizes(&self) -> bool {
        self.builtin_actions.contains(&PiiAction::Pseudonymize)
            || self.custom_actions.contains(&PiiAction::Pseudonymize)
    }
}

#[cfg(test)]
mod corpus;
#[cfg(any(test, feature = "fuzzing"))]
pub(crate) mod fixtures;
