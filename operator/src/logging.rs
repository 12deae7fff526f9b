//! The operator's `tracing` subscriber: log lines to stderr, as text or
//! JSON, filtered by `RUST_LOG`; and, when trace export is on, the same
//! spans sent to OpenTelemetry ([`crate::telemetry`]).

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer};

use tollgate_otel::Pipeline;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event (colours only on a terminal).
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, the
    /// event's fields flattened, and the current span's fields under
    /// `span` (`policy`, `namespace` inside a reconcile; `trace_id` too
    /// while traces are exported).
    Json,
}

/// The filter when `RUST_LOG` is unset or invalid.
const DEFAULT_FILTER: &str = "info,kube=warn";

/// The subscriber writing to `writer`, with `pipeline`'s layer when given.
pub fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    ansi: bool,
    writer: W,
    pipeline: Option<&Pipeline>,
) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = match format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Text => fmt.boxed(),
    };
    let otel = pipeline.map(crate::telemetry::layer);
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
}

/// Installs the process's subscriber: stderr, `RUST_LOG` (default
/// `info,kube=warn`).
pub fn init(format: LogFormat, pipeline: Option<&Pipeline>) {
    use std::io::IsTerminal;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_FILTER.into());
    subscriber(
        format,
        filter,
        std::io::stderr().is_terminal(),
        std::io::stderr,
        pipeline,
    )
    .init();
}
