//! The metrics of one request, recorded once when it ends.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use prometheus::Histogram;
use tollgate_config::{Provider, ProviderType};

use crate::api::usage::Usage;
use crate::metrics::{EndedSeries, Metrics};

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
        let (model, provider) = (self.model, self.gen_ai[4]);
        let [op, gen_provider, requested, response, config_provider] = self.gen_ai;
        let key = [
            self.route,
            model,
            self.status_class,
            self.error_type,
            op,
            gen_provider,
            requested,
            response,
            config_provider,
        ];
        let gen_ai = [op, gen_provider, requested, response, config_provider];
        let series = m.ended.get(&key, || {
            Arc::new(EndedSeries {
                requests: m
                    .requests
                    .series(&[self.route, model, provider, self.status_class]),
                duration: m.operation_duration.series(&[
                    op,
                    gen_provider,
                    requested,
                    response,
                    config_provider,
                    self.error_type,
                ]),
                usage: Default::default(),
                tokens: Default::default(),
            })
        });
        series.requests.inc();
        series.duration.observe(self.elapsed.as_secs_f64());
        if let Some(ttfc) = self.ttfc {
            m.time_to_first_chunk
                .with_label_values(&gen_ai)
                .observe(ttfc.as_secs_f64());
        }
        if let Some(u) = self.usage {
            for (i, (kind, n)) in [("input", u.input), ("output", u.output)]
                .into_iter()
                .enumerate()
            {
                series.usage[i]
                    .get_or_init(|| {
                        m.token_usage.series(&[
                            op,
                            gen_provider,
                            requested,
                            response,
                            config_provider,
                            kind,
                        ])
                    })
                    .observe(n as f64);
            }
            let counts = [
                u.input,
                u.output,
                u.cached_input,
                u.cache_creation,
                u.reasoning,
            ];
            for (i, (kind, n)) in EndedSeries::TOKEN_KINDS.into_iter().zip(counts).enumerate() {
                if n > 0 {
                    series.tokens[i]
                        .get_or_init(|| m.tokens.series(&[provider, model, kind]))
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
