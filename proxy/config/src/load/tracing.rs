//! Validation of `tracing:`.

use super::Validator;
use crate::model::Tracing;
use crate::raw::RawTracing;

impl Validator {
    pub(super) fn tracing(&mut self, raw: &RawTracing) -> Tracing {
        let mut t = Tracing {
            service_name: raw.service_name.clone(),
            sample_ratio: raw.sample_ratio,
            queue_size: raw.queue_size.map(|n| n as usize),
            ..Tracing::default()
        };
        if let Some(otlp) = &raw.otlp {
            let e = otlp.endpoint.trim();
            let scheme_ok = e.starts_with("http://") || e.starts_with("https://");
            let host = e.split_once("://").map_or("", |(_, rest)| rest);
            if !scheme_ok || host.is_empty() || host.starts_with('/') {
                self.err(
                    "tracing.otlp.endpoint",
                    format!("must be an http:// or https:// URL of a collector, not `{e}`"),
                );
            }
            t.endpoint = Some(e.to_string());
            t.protocol = otlp.protocol;
            if otlp.timeout.is_some() {
                t.timeout =
                    Some(self.duration("tracing.otlp.timeout", otlp.timeout.as_deref(), 10));
            }
        }
        if let Some(r) = raw.sample_ratio {
            if !(0.0..=1.0).contains(&r) {
                self.err(
                    "tracing.sampleRatio",
                    format!("must be between 0 and 1 (a share of traces), not {r}"),
                );
            }
        }
        if raw.queue_size == Some(0) {
            self.err("tracing.queueSize", "must be at least 1".into());
        }
        if raw
            .service_name
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            self.err("tracing.serviceName", "must not be empty".into());
        }
        t
    }
}
