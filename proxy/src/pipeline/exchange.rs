//! One app request as the rest of the path sees it, built once its head is
//! parsed: who is asking (the API and operation, the request id, the
//! headers), the body (its bytes, and its JSON parsed at most once — the
//! PII filter edits that JSON in place), the model and stream flag, the PII
//! filter's outcome, and the route decision once routing has made it.
//! Every step after parsing takes this one value instead of a dozen
//! arguments.

use std::sync::Arc;

use http::header::{HeaderMap, HeaderValue};
use http::Method;
use serde_json::Value;
use tokio::time::Instant;

use crate::api::request::Payload;
use crate::api::Endpoint;
use crate::pii;
use crate::routing::Plan;
use crate::state::{Runtime, Shared};

/// One app request.
pub(crate) struct Exchange<'a> {
    pub rt: &'a Arc<Runtime>,
    pub shared: &'a Shared,
    /// The API and operation the app called.
    pub endpoint: Endpoint,
    pub request_id: &'a HeaderValue,
    /// Method, URI and headers as the app sent them.
    pub parts: http::request::Parts,
    /// The body: bytes, and JSON parsed once.
    pub body: Payload,
    /// The `model` the app asked for.
    pub model: &'a str,
    /// The app asked for a stream.
    pub stream: bool,
    /// When the request arrived.
    pub started: Instant,
    /// What the PII filter and prompt guard did, when they are on.
    pub filtered: Option<pii::Filtered>,
    /// The route decision: set by routing, replaced by a budget downgrade.
    pub plan: Option<Plan<'a>>,
}

impl<'a> Exchange<'a> {
    /// The route decision.
    pub(crate) fn plan(&self) -> &Plan<'a> {
        self.plan.as_ref().expect("the request has been routed")
    }

    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.parts.headers
    }

    pub(crate) fn method(&self) -> &Method {
        &self.parts.method
    }

    pub(crate) fn path(&self) -> &str {
        self.parts.uri.path()
    }

    pub(crate) fn query(&self) -> Option<&str> {
        self.parts.uri.query()
    }

    /// The app asked for OpenAI's final usage chunk. Read only from a body
    /// already parsed: a translated request always is, and only a
    /// translated stream needs to know.
    pub(crate) fn include_usage(&self) -> bool {
        self.body
            .parsed()
            .and_then(|v| v.get("stream_options")?.get("include_usage"))
            .and_then(Value::as_bool)
            .unwrap_or(false)
    }

    /// PII work the answer needs (restore pseudonyms, scan), if any.
    pub(crate) fn pii_answers(&self) -> Option<pii::Answers> {
        let engine = self.rt.pii.as_ref()?;
        pii::Answers::of(engine, self.filtered.as_ref()?)
    }
}
