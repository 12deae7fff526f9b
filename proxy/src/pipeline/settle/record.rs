//! The metrics of one request, recorded once when it ends.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use prometheus::Histogram;
use tollgate_config::{Provider, ProviderType};

use crate::api::usage::Usage;
use crate::metrics::Metrics;

/// How a request ended, for logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Still in progress (becomes `ClientGone` if dropped like this).
    Open,
    Completed,
    ClientGone,
    UpstreamFailed,
}

impl Outcome {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Outcome::Open => "Open",
            Outcome::Completed => "Completed",
            Outcome::ClientGone => "ClientGone",
            Outcome::UpstreamFailed => "UpstreamFailed",
        }
    }
}

/// What one ended request tells the metrics.
pub(super) struct Ended<'a> {
    /// OpenTelemetry's GenAI labels, in the metrics' order: operation,
    /// provider's well-known name, requested model, response model, and
    /// the config's provider name (the models may be left empty).
    pub gen_ai: [&'a str; 5],
    pub route: &'a str,
    /// The requested model's label, for the `tollgate_*` counters.
    pub model: &'a str,
    pub status_class: &'static str,
    pub error_type: &'static str,
    pub elapsed: Duration,
    /// Time to the first chunk, for streams.
    pub ttfc: Option<Duration>,
    pub usage: Option<Usage>,
    /// A stream the app abandoned.
    pub disconnected_stream: bool,
}

impl Ended<'_> {
    pub(super) fn observe(&self, m: &Metrics) {
        let gen_ai = &self.gen_ai;
        let (model, provider) = (self.model, gen_ai[4]);
        m.requests
            .with_label_values(&[self.route, model, provider, self.status_class])
            .inc();
        m.operation_duration
            .with_label_values(&[&gen_ai[..], &[self.error_type]].concat())
            .observe(self.elapsed.as_secs_f64());
        if let Some(ttfc) = self.ttfc {
            m.time_to_first_chunk
                .with_label_values(gen_ai)
                .observe(ttfc.as_secs_f64());
        }
        if let Some(u) = self.usage {
            m.token_usage
                .with_label_values(&[&gen_ai[..], &["input"]].concat())
                .observe(u.input as f64);
            m.token_usage
                .with_label_values(&[&gen_ai[..], &["output"]].concat())
                .observe(u.output as f64);
            for (kind, n) in [
                ("input", u.input),
                ("output", u.output),
                ("cached_input", u.cached_input),
                ("cache_creation", u.cache_creation),
                ("reasoning", u.reasoning),
            ] {
                if n > 0 {
                    m.tokens
                        .with_label_values(&[provider, model, kind])
                        .inc_by(n);
                }
            }
        }
        if self.disconnected_stream {
            m.stream_disconnects.with_label_values(&[provider]).inc();
        }
    }
}

/// The time per output chunk of one stream: each chunk after the first
/// observes the gap since the previous one.
#[derive(Default)]
pub(super) struct ChunkGaps {
    last: Option<Instant>,
    /// Resolved at the first chunk, then reused.
    histogram: Option<Histogram>,
}

impl ChunkGaps {
    /// No histogram yet: [`ChunkGaps::sent`] may need one.
    pub(super) fn unresolved(&self) -> bool {
        self.histogram.is_none()
    }

    /// A chunk went out; `histogram` is taken when none is kept yet.
    pub(super) fn sent(&mut self, histogram: Option<Histogram>) {
        if self.histogram.is_none() {
            self.histogram = histogram;
        }
        let now = Instant::now();
        if let (Some(prev), Some(h)) = (self.last.replace(now), &self.histogram) {
            h.observe(now.duration_since(prev).as_secs_f64());
        }
    }
}

/// OpenTelemetry's well-known `gen_ai.provider.name` for a provider's type;
/// an OpenAI-compatible server has none, so its config name stands in.
pub(crate) fn gen_ai_provider_name(p: &Provider) -> Cow<'static, str> {
    match p.kind {
        ProviderType::Openai => "openai".into(),
        ProviderType::Anthropic => "anthropic".into(),
        ProviderType::AzureOpenai => "azure.ai.openai".into(),
        ProviderType::OpenaiCompatible => p.name.clone().into(),
    }
}
