//! What the request's server span records, and the phases' spans a
//! request opens through its settle record (`crate::trace` builds them).

use opentelemetry::trace::SpanKind;
use opentelemetry::KeyValue;

use super::Settle;
use crate::trace::{Phase, RequestTrace};

/// Facts only the server span records.
#[derive(Default)]
pub(super) struct SpanFacts {
    /// The model the app asked for, as it wrote it.
    pub(super) requested_model: Option<String>,
    pub(super) max_tokens: Option<i64>,
    pub(super) server_address: Option<String>,
    pub(super) budget: Option<&'static str>,
    pub(super) pii: Vec<(String, u64)>,
    pub(super) guard: Vec<&'static str>,
}

impl Settle {
    /// The request's trace, while tracing is on.
    pub(crate) fn trace(&self) -> Option<&RequestTrace> {
        self.trace.as_ref()
    }

    /// A child span of the request's span (`Phase::OFF` without tracing).
    pub(crate) fn phase(&self, name: &'static str) -> Phase {
        match &self.trace {
            Some(t) => t.phase(name, SpanKind::Internal),
            None => Phase::OFF,
        }
    }

    /// Whether the request's span records: attributes are worth computing.
    pub(crate) fn tracing(&self) -> bool {
        self.trace.as_ref().is_some_and(RequestTrace::recording)
    }

    /// The span of one upstream attempt (a client span, the provider's
    /// parent), named as GenAI spans are: `{operation} {model}`.
    pub(crate) fn attempt_phase(&self, model: &str) -> Phase {
        match &self.trace {
            Some(t) => {
                let op = self.endpoint.map_or("other", |e| e.operation.otel_name());
                // The name is written only for a span that records.
                let name: std::borrow::Cow<'static, str> = match model {
                    _ if !t.recording() => op.into(),
                    "" => op.into(),
                    m => format!("{op} {m}").into(),
                };
                t.phase(name, SpanKind::Client)
            }
            None => Phase::OFF,
        }
    }

    /// What the app asked for, for the request's span.
    pub(crate) fn set_request_facts(&mut self, model: &str, max_tokens: Option<i64>) {
        if self.tracing() {
            self.span.requested_model = Some(model.to_string());
            self.span.max_tokens = max_tokens;
        }
    }

    /// The budget's decision for the request's span: `admitted`,
    /// `downgraded` or `refused`.
    pub(crate) fn set_budget_decision(&mut self, decision: &'static str) {
        self.span.budget = Some(decision);
    }

    /// PII found in the request, by type (counts only), and guard rules.
    pub(crate) fn set_pii_facts(&mut self, found: Vec<(String, u64)>, guard: &[&'static str]) {
        self.span.pii = found;
        self.span.guard = guard.to_vec();
    }
}

impl Settle {
    /// Ends the request's span, with its attributes and name when it
    /// records; the trace and span ids when `logged` (for the access line).
    pub(super) fn end_trace(
        &self,
        c: &super::access::Closing<'_>,
        error_type: Option<&str>,
        logged: bool,
    ) -> Option<(String, String)> {
        let t = self.trace.as_ref()?;
        let name = t.recording().then(|| {
            t.set_all(self.span_attributes(
                c.gen_ai,
                c.route,
                c.served_model,
                c.status,
                c.cost_nano,
            ));
            let op = c.gen_ai[0];
            match &self.span.requested_model {
                Some(m) => format!("{op} {m}"),
                None => op.to_string(),
            }
        });
        t.end(name, error_type);
        logged.then(|| t.ids())
    }

    /// The server span's attributes: OpenTelemetry's GenAI ones, then
    /// Tollgate's. Counts and names only, never content.
    fn span_attributes(
        &self,
        gen_ai: [&str; 5],
        route: &str,
        served_model: Option<&str>,
        status: u16,
        cost_nano: Option<u64>,
    ) -> Vec<KeyValue> {
        let mut kv = Vec::with_capacity(24);
        let s = |v: &str| opentelemetry::Value::from(v.to_string());
        // A static name is kept by reference, not copied.
        let name = |v: &'static str| opentelemetry::Value::from(v);
        let op = self.endpoint.map_or("other", |e| e.operation.otel_name());
        debug_assert_eq!(op, gen_ai[0]);
        kv.push(KeyValue::new("gen_ai.operation.name", name(op)));
        if let Some(p) = self.gen_ai_provider.clone().filter(|p| !p.is_empty()) {
            kv.push(KeyValue::new("gen_ai.provider.name", p));
        }
        if let Some(m) = &self.span.requested_model {
            kv.push(KeyValue::new("gen_ai.request.model", s(m)));
        }
        if let Some(m) = served_model {
            kv.push(KeyValue::new("gen_ai.response.model", s(m)));
        }
        if let Some(n) = self.span.max_tokens {
            kv.push(KeyValue::new("gen_ai.request.max_tokens", n));
        }
        if let Some(u) = self.usage {
            kv.push(KeyValue::new("gen_ai.usage.input_tokens", u.input as i64));
            kv.push(KeyValue::new("gen_ai.usage.output_tokens", u.output as i64));
            if u.cached_input > 0 {
                kv.push(KeyValue::new(
                    "gen_ai.usage.cache_read.input_tokens",
                    u.cached_input as i64,
                ));
            }
        }
        if let Some(a) = &self.span.server_address {
            let (host, port) = split_authority(a);
            kv.push(KeyValue::new("server.address", s(host)));
            if let Some(p) = port {
                kv.push(KeyValue::new("server.port", p as i64));
            }
        }
        kv.push(KeyValue::new("http.route", s(&self.path)));
        if status != 0 {
            kv.push(KeyValue::new("http.response.status_code", status as i64));
        }
        kv.push(KeyValue::new(
            "tollgate.request_id",
            s(self.request_id.to_str().unwrap_or("")),
        ));
        kv.push(KeyValue::new("tollgate.route", s(route)));
        if let (Some(p), Some(m)) = (&self.provider, served_model) {
            kv.push(KeyValue::new("tollgate.target", format!("{p}/{m}")));
        }
        kv.push(KeyValue::new("tollgate.attempts", self.attempts as i64));
        kv.push(KeyValue::new("tollgate.stream", self.stream));
        kv.push(KeyValue::new(
            "tollgate.outcome",
            name(self.outcome.as_str()),
        ));
        if let Some(c) = self.cache {
            kv.push(KeyValue::new("tollgate.cache.result", name(c)));
        }
        if let Some(n) = cost_nano {
            kv.push(KeyValue::new("tollgate.cost_usd", n as f64 / 1e9));
        }
        if let Some(b) = self.span.budget {
            kv.push(KeyValue::new("tollgate.budget.decision", name(b)));
        }
        for (ty, n) in &self.span.pii {
            kv.push(KeyValue::new(format!("tollgate.pii.{ty}"), *n as i64));
        }
        if !self.span.guard.is_empty() {
            kv.push(KeyValue::new(
                "tollgate.guard.rules",
                self.span.guard.join(","),
            ));
        }
        if let Some(d) = self.first_chunk.filter(|_| self.stream) {
            kv.push(KeyValue::new(
                "tollgate.time_to_first_chunk_ms",
                d.as_secs_f64() * 1e3,
            ));
        }
        kv
    }
}

/// `host` and `port` of an authority (`[v6]:port` too).
pub(crate) fn split_authority(a: &str) -> (&str, Option<u16>) {
    match a.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            match port.parse() {
                Ok(p) => (host.trim_start_matches('[').trim_end_matches(']'), Some(p)),
                Err(_) => (a, None),
            }
        }
        _ => (a.trim_start_matches('[').trim_end_matches(']'), None),
    }
}

/// PII counts as the access log writes them: `email:2,phone:1`.
pub(super) fn pii_counts(found: &[(String, u64)]) -> String {
    let mut out = String::new();
    for (ty, n) in found {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(ty);
        out.push(':');
        out.push_str(&n.to_string());
    }
    out
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn authorities_split_into_host_and_port() {
        assert_eq!(split_authority("api.openai.com"), ("api.openai.com", None));
        assert_eq!(split_authority("127.0.0.1:8443"), ("127.0.0.1", Some(8443)));
        assert_eq!(split_authority("[::1]:9000"), ("::1", Some(9000)));
        assert_eq!(split_authority("[::1]"), ("::1", None));
        assert_eq!(
            pii_counts(&[("email".into(), 2), ("phone".into(), 1)]),
            "email:2,phone:1"
        );
    }
}
