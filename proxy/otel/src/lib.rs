//! OpenTelemetry trace export, shared by the proxy and the operator.
//!
//! One [`Pipeline`] per process: the SDK's tracer provider (its sampler,
//! ids and span limits), a bounded queue in front of an OTLP exporter (gRPC
//! or HTTP/protobuf), and one background task that sends batches. Nothing
//! here runs on a request's path except pushing a finished span into the
//! queue: when the queue is full or the collector is down, spans are
//! dropped and counted ([`Counters`]), never waited for.
//!
//! Settings come from the caller's config ([`Settings`]) and, where it is
//! silent, from the standard `OTEL_*` variables (`OTEL_EXPORTER_OTLP_[TRACES_]
//! ENDPOINT`, `..._PROTOCOL`, `..._HEADERS`, `..._TIMEOUT`, `..._CERTIFICATE`,
//! `..._CLIENT_CERTIFICATE`, `..._CLIENT_KEY`, `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER[_ARG]`, `OTEL_BSP_*`).
//! Export is off unless an endpoint is configured somewhere, and
//! `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none` turn it off.
//!
//! The spans are the `opentelemetry` SDK's; the OTLP requests are written
//! here ([`proto`]) and sent with hyper ([`transport`]): the exporter crate
//! cost more per span than the request it described (see `proto`).
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

mod batch;
mod proto;
mod sampling;
mod transport;

pub use sampling::{Decision, Ids, Sampling};

pub use opentelemetry_sdk::trace::SdkTracer;

/// The OTLP transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (the collector's port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (port 4318, path `/v1/traces`).
    HttpProtobuf,
}

impl Protocol {
    /// The name the `OTEL_EXPORTER_OTLP_PROTOCOL` variable uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// Parses a protocol name as the `OTEL_*` variables spell it.
    pub fn parse(s: &str) -> Result<Protocol, Error> {
        match s.trim() {
            "grpc" => Ok(Protocol::Grpc),
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            other => Err(Error::Protocol(other.to_string())),
        }
    }
}

/// What a process's own config says about export. Every `None` falls back
/// to the `OTEL_*` variables, then to the OpenTelemetry defaults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Settings {
    /// The collector's base URL (`http://otel-collector:4317`); for
    /// HTTP/protobuf `/v1/traces` is appended, as for
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub endpoint: Option<String>,
    pub protocol: Option<Protocol>,
    pub service_name: Option<String>,
    /// Share of new traces sampled (parent-based: an app's sampled flag is
    /// followed). `None`: `OTEL_TRACES_SAMPLER[_ARG]`, default all.
    pub sample_ratio: Option<f64>,
    /// Finished spans waiting for export, beyond which they are dropped
    /// (`OTEL_BSP_MAX_QUEUE_SIZE`, default 2048).
    pub queue_size: Option<usize>,
    /// Time allowed for one export (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s).
    pub timeout: Option<Duration>,
}

/// Why export could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unsupported OTLP protocol `{0}` (grpc or http/protobuf)")]
    Protocol(String),
    #[error("sample ratio {0} is not within 0..=1")]
    SampleRatio(f64),
    #[error("{0}")]
    Sampler(String),
    #[error("OTLP endpoint {0}")]
    Endpoint(String),
    #[error("OTLP headers: {0}")]
    Headers(String),
    #[error("OTLP TLS: {0}")]
    Tls(String),
}

/// Why spans were not exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was full (the collector is slow or away).
    QueueFull,
    /// The collector refused a batch, or did not answer in time.
    ExportFailed,
}

impl DropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::ExportFailed => "export_failed",
        }
    }
}

/// Where a process counts its spans (its own metrics registry).
pub trait Counters: Send + Sync + 'static {
    fn exported(&self, spans: u64);
    fn dropped(&self, reason: DropReason, spans: u64);
}

/// Reads a variable; a seam so tests need not touch the process environment.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// Whether export is on: an endpoint here or in `OTEL_EXPORTER_OTLP_
    /// [TRACES_]ENDPOINT`, and not switched off by `OTEL_SDK_DISABLED=true`
    /// or `OTEL_TRACES_EXPORTER=none`.
    pub fn enabled(&self, env: Env<'_>) -> bool {
        if env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
            return false;
        }
        if env("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none") {
            return false;
        }
        self.endpoint.is_some()
            || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
            || env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
    }

    /// The transport: these settings, else `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`,
    /// `OTEL_EXPORTER_OTLP_PROTOCOL`, else HTTP/protobuf (the specification's
    /// default).
    pub fn protocol(&self, env: Env<'_>) -> Result<Protocol, Error> {
        if let Some(p) = self.protocol {
            return Ok(p);
        }
        match env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Some(p) => Protocol::parse(&p),
            None => Ok(Protocol::HttpProtobuf),
        }
    }

    /// The URL the exporter sends to: these settings' endpoint, else
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (taken as it is), else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`. A base URL gets `/v1/traces` for
    /// HTTP/protobuf (once); gRPC uses only its scheme and authority.
    fn url(&self, protocol: Protocol, env: Env<'_>) -> Option<String> {
        let base = match (&self.endpoint, env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
            (Some(e), _) => e.trim().to_string(),
            (None, Some(traces)) => return Some(traces.trim().to_string()),
            (None, None) => env("OTEL_EXPORTER_OTLP_ENDPOINT")?.trim().to_string(),
        };
        let base = base.trim_end_matches('/');
        Some(match protocol {
            Protocol::Grpc => base.to_string(),
            Protocol::HttpProtobuf if base.ends_with("/v1/traces") => base.to_string(),
            Protocol::HttpProtobuf => format!("{base}/v1/traces"),
        })
    }
}

/// Trace export for one process: the tracer to start spans with, and the
/// task that sends them.
pub struct Pipeline {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    sampling: Sampling,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    protocol: Protocol,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("protocol", &self.protocol)
            .finish()
    }
}

impl Pipeline {
    /// Builds the pipeline if export is on ([`Settings::enabled`]); `None`
    /// when it is off. `service` names the process when neither the
    /// settings nor `OTEL_SERVICE_NAME` do; `resource` adds attributes
    /// (`OTEL_RESOURCE_ATTRIBUTES` are read too). Must run inside a Tokio
    /// runtime: the export task is spawned on it.
    pub fn install(
        settings: &Settings,
        env: Env<'_>,
        service: &str,
        resource: Vec<KeyValue>,
        counters: Arc<dyn Counters>,
    ) -> Result<Option<Pipeline>, Error> {
        if !settings.enabled(env) {
            return Ok(None);
        }
        let protocol = settings.protocol(env)?;
        let sampling = Sampling::from_settings(settings, env)?;
        let timeout = settings
            .timeout
            .or_else(|| env_millis(env, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"))
            .or_else(|| env_millis(env, "OTEL_EXPORTER_OTLP_TIMEOUT"))
            .unwrap_or(Duration::from_secs(10));
        let url = settings
            .url(protocol, env)
            .ok_or_else(|| Error::Endpoint("is not set".into()))?;
        let transport = transport::Transport::new(
            &url,
            protocol,
            transport::headers_from_env(env)?,
            &transport::Tls::from_env(env),
            timeout,
        )?;
        let name = settings
            .service_name
            .clone()
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| service.to_string());
        let resource = Resource::builder()
            .with_attributes(resource)
            .with_service_name(name)
            .build();
        let exporter = Exporter {
            encoder: proto::Encoder::new(&resource),
            transport,
        };

        let limits = batch::Limits::from_env(env, settings.queue_size, timeout);
        let queue = Arc::new(batch::Queue::new(limits));
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(batch::run(
            queue.clone(),
            stop_rx,
            exporter,
            counters.clone(),
        ));
        let provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(Processor { queue, counters })
            .with_sampler(sampling.sampler())
            .with_id_generator(sampling.ids())
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, service.to_string());
        Ok(Some(Pipeline {
            provider,
            tracer,
            sampling,
            stop: Some(stop_tx),
            task: Some(task),
            protocol,
        }))
    }

    /// The tracer spans start from.
    pub fn tracer(&self) -> &SdkTracer {
        &self.tracer
    }

    /// The provider's sampler and ids, to decide a span before building it.
    pub fn sampling(&self) -> &Sampling {
        &self.sampling
    }

    /// The provider, for a `tracing` layer (the operator).
    pub fn provider(&self) -> &SdkTracerProvider {
        &self.provider
    }

    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Sends what is queued, within `within`, and stops the export task.
    /// Spans ended after this are dropped (and counted).
    pub async fn shutdown(mut self, within: Duration) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(within, task).await;
        }
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Encodes a batch and sends it, trying again (twice, after 100 ms and
/// 400 ms) when the failure may pass; the batch's timeout bounds it all.
struct Exporter {
    encoder: proto::Encoder,
    transport: transport::Transport,
}

impl batch::Export for Exporter {
    async fn export(&self, spans: &[SpanData]) -> Result<u64, ()> {
        let mut body = vec![0; self.transport.prefix()];
        self.encoder.request(spans, &mut body);
        self.transport.frame(&mut body);
        let body = Bytes::from(body);
        let mut backoff = Duration::from_millis(100);
        for attempt in 0..3 {
            match self.transport.send(body.clone()).await {
                Ok(rejected) => return Ok(rejected),
                Err(e) if e.retryable() && attempt < 2 => {
                    tokio::time::sleep(backoff).await;
                    backoff *= 4;
                }
                Err(_) => return Err(()),
            }
        }
        Err(())
    }
}

fn env_millis(env: Env<'_>, name: &str) -> Option<Duration> {
    env(name)?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_millis)
}

/// The span processor: a finished span goes into the bounded queue or, when
/// it is full, is dropped and counted. Never blocks.
struct Processor {
    queue: Arc<batch::Queue>,
    counters: Arc<dyn Counters>,
}

impl std::fmt::Debug for Processor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Processor")
    }
}

impl SpanProcessor for Processor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !self.queue.push(span) {
            self.counters.dropped(DropReason::QueueFull, 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An environment of `vars` only.
    pub(crate) fn env_of(
        vars: &'static [(&'static str, &'static str)],
    ) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn off_unless_an_endpoint_is_configured() {
        let none = env_of(&[]);
        assert!(!Settings::default().enabled(&none));
        let with = Settings {
            endpoint: Some("http://127.0.0.1:4318".into()),
            ..Settings::default()
        };
        assert!(with.enabled(&none));
        let env = env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")]);
        assert!(Settings::default().enabled(&env));
        let traces = env_of(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c/v1/traces")]);
        assert!(Settings::default().enabled(&traces));
        let disabled = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert!(!Settings::default().enabled(&disabled));
        let none_exporter = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ]);
        assert!(!with.enabled(&none_exporter));
    }

    #[test]
    fn protocol_from_settings_then_env_then_http() {
        let none = env_of(&[]);
        assert_eq!(
            Settings::default().protocol(&none).unwrap(),
            Protocol::HttpProtobuf
        );
        let grpc = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        assert_eq!(Settings::default().protocol(&grpc).unwrap(), Protocol::Grpc);
        let traces = env_of(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
        ]);
        assert_eq!(
            Settings::default().protocol(&traces).unwrap(),
            Protocol::HttpProtobuf
        );
        let set = Settings {
            protocol: Some(Protocol::Grpc),
            ..Settings::default()
        };
        assert_eq!(set.protocol(&traces).unwrap(), Protocol::Grpc);
        let json = env_of(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")]);
        let err = Settings::default().protocol(&json).unwrap_err();
        assert!(err.to_string().contains("http/json"), "{err}");
    }

    #[test]
    fn an_http_endpoint_gets_the_traces_path_once() {
        let s = |e: &str| Settings {
            endpoint: Some(e.into()),
            ..Settings::default()
        };
        let none = env_of(&[]);
        assert_eq!(
            s("http://c:4318")
                .url(Protocol::HttpProtobuf, &none)
                .unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            s("http://c:4318/")
                .url(Protocol::HttpProtobuf, &none)
                .unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            s("http://c:4318/v1/traces")
                .url(Protocol::HttpProtobuf, &none)
                .unwrap(),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            s("http://c:4317").url(Protocol::Grpc, &none).unwrap(),
            "http://c:4317"
        );
    }

    #[test]
    fn the_traces_endpoint_variable_is_taken_as_it_is() {
        let env = env_of(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:4318/custom"),
        ]);
        let none = Settings::default();
        assert_eq!(
            none.url(Protocol::HttpProtobuf, &env).unwrap(),
            "http://c:4318/custom"
        );
        let base = env_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318/")]);
        assert_eq!(
            none.url(Protocol::HttpProtobuf, &base).unwrap(),
            "http://base:4318/v1/traces"
        );
        // The config's endpoint comes first.
        let set = Settings {
            endpoint: Some("http://mine:4317".into()),
            ..Settings::default()
        };
        assert_eq!(set.url(Protocol::Grpc, &env).unwrap(), "http://mine:4317");
        assert!(none.url(Protocol::Grpc, &env_of(&[])).is_none());
    }
}
