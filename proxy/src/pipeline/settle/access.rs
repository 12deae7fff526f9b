//! The access log: one line per request (target `tollgate::access`) for the
//! requests `logging.access` selects — every error, and an evenly spaced
//! share of the rest.

use std::sync::atomic::{AtomicU64, Ordering};

use tollgate_config::AccessLog;

use super::record::Outcome;

/// Picks an evenly spaced share: with 0.1, one in ten (a count, not a
/// coin: the share is exact). The access log's successful requests (one
/// per proxy, shared by every request, surviving reloads), and each
/// route's verified semantic hits (`cache::verify`).
#[derive(Debug, Default)]
pub(crate) struct Sampler(AtomicU64);

impl Sampler {
    /// Whether the next one is in `share` (0 to 1) of all those asked.
    pub(crate) fn take(&self, share: f64) -> bool {
        if share >= 1.0 {
            return true;
        }
        if share <= 0.0 {
            return false;
        }
        let n = self.0.fetch_add(1, Ordering::Relaxed) as f64;
        ((n + 1.0) * share).floor() > (n * share).floor()
    }
}

/// What one request's line says. Never a body, a header or a key.
pub(super) struct Line<'a> {
    pub request_id: &'a str,
    /// The request's trace and span, while tracing is on.
    pub trace_id: Option<&'a str>,
    pub span_id: Option<&'a str>,
    /// `admitted`, `downgraded` or `refused`, when budgets apply.
    pub budget: Option<&'static str>,
    /// PII found in the request by type, counts only (`email:1,phone:2`).
    pub pii: Option<String>,
    pub method: &'a http::Method,
    pub path: &'a str,
    pub api: Option<&'static str>,
    pub operation: &'a str,
    pub route: &'a str,
    pub model: &'a str,
    pub provider: &'a str,
    pub served_by: Option<String>,
    pub attempts: u32,
    pub stream: bool,
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub error: Option<&'static str>,
    pub outcome: Outcome,
    pub cache: Option<&'static str>,
    pub duration_ms: f64,
    pub ttfc_ms: Option<f64>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cached_input_tokens: Option<u64>,
    pub cost_usd: Option<f64>,
}

/// Whether `policy` gives a request a line: every error (`failed`: an
/// error status, or a stream the provider cut) while the log is on, and
/// the sampled share of the rest. Nothing when the log filter drops the
/// target's `info` lines (the line is not even built then).
pub(super) fn selected(policy: AccessLog, sampler: &Sampler, failed: bool) -> bool {
    policy.enabled
        && tracing::enabled!(target: "tollgate::access", tracing::Level::INFO)
        && (failed || sampler.take(policy.sample))
}

/// How a request ended, as the settle record worked it out.
pub(super) struct Closing<'a> {
    pub gen_ai: [&'a str; 5],
    pub route: &'a str,
    pub model: &'a str,
    pub status: u16,
    pub served_model: Option<&'a str>,
    pub elapsed: std::time::Duration,
    pub cost_nano: Option<u64>,
    pub ids: Option<(String, String)>,
}

impl super::Settle {
    /// Writes this request's line.
    pub(super) fn write_access_line(&self, c: Closing<'_>) {
        let Closing {
            gen_ai,
            route,
            model,
            status,
            served_model,
            elapsed,
            cost_nano,
            ids,
        } = c;
        write(&Line {
            request_id: self.request_id.to_str().unwrap_or(""),
            trace_id: ids.as_ref().map(|(t, _)| t.as_str()),
            span_id: ids.as_ref().map(|(_, s)| s.as_str()),
            budget: self.span.budget,
            pii: (!self.span.pii.is_empty()).then(|| super::span::pii_counts(&self.span.pii)),
            method: &self.method,
            path: &self.path,
            api: self.endpoint.map(|e| e.family.as_str()),
            operation: gen_ai[0],
            route,
            model,
            provider: gen_ai[4],
            // `provider/model` of the attempt that answered (not `target`:
            // that key is the log line's own in JSON).
            served_by: (self.provider.as_deref())
                .zip(served_model)
                .map(|(p, m)| format!("{p}/{m}")),
            attempts: self.attempts,
            stream: self.stream,
            status,
            upstream_status: self.upstream_status,
            error: self.error,
            outcome: self.outcome,
            cache: self.cache,
            duration_ms: elapsed.as_secs_f64() * 1e3,
            ttfc_ms: self.first_chunk.map(|d| d.as_secs_f64() * 1e3),
            input_tokens: self.usage.map(|u| u.input),
            output_tokens: self.usage.map(|u| u.output),
            cached_input_tokens: self.usage.map(|u| u.cached_input),
            cost_usd: cost_nano.map(|n| n as f64 / 1e9),
        });
    }
}

/// Writes a request's line.
fn write(line: &Line<'_>) {
    tracing::info!(
        target: "tollgate::access",
        request_id = line.request_id,
        trace_id = line.trace_id,
        span_id = line.span_id,
        method = %line.method,
        path = %line.path,
        api = line.api,
        operation = line.operation,
        route = line.route,
        model = line.model,
        provider = line.provider,
        served_by = line.served_by,
        attempts = line.attempts,
        stream = line.stream,
        status = line.status,
        upstream_status = line.upstream_status,
        error = line.error,
        outcome = %line.outcome.as_str(),
        cache = line.cache,
        budget = line.budget,
        pii = line.pii,
        duration_ms = line.duration_ms,
        ttfc_ms = line.ttfc_ms,
        input_tokens = line.input_tokens,
        output_tokens = line.output_tokens,
        cached_input_tokens = line.cached_input_tokens,
        cost_usd = line.cost_usd,
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_share_is_logged_evenly_and_exactly() {
        for (share, of_100) in [(1.0, 100), (0.0, 0), (0.1, 10), (0.25, 25), (0.333, 33)] {
            let s = Sampler::default();
            let taken: Vec<bool> = (0..100).map(|_| s.take(share)).collect();
            assert_eq!(taken.iter().filter(|t| **t).count(), of_100, "{share}");
            if share == 0.1 {
                // Evenly spaced: one in each run of ten.
                for chunk in taken.chunks(10) {
                    assert_eq!(chunk.iter().filter(|t| **t).count(), 1);
                }
            }
        }
    }
}
