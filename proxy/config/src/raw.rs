//! The config file as written: serde types that mirror the YAML one to one.
//!
//! Field names are camelCase (Kubernetes API conventions), durations are
//! strings such as `30s` or `1m30s`, sizes are integers (bytes) or quantities
//! such as `4Mi`. Unknown fields are an error so typos never pass silently.
//! Nothing here is validated beyond its shape; see [`crate::load`].

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod budgets;
mod cache;
mod pii;
mod routing;
pub use budgets::*;
pub use cache::*;
pub use pii::*;
pub use routing::*;

/// A whole `ProxyConfig` file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schemars(title = "ProxyConfig")]
pub struct RawConfig {
    /// Must be `tollgate.dev/v1alpha1`.
    pub api_version: String,
    /// Must be `ProxyConfig`.
    pub kind: String,
    /// Optional identification, shown in logs and `/config`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<RawMetadata>,
    /// The data-path listener the apps call.
    #[serde(default)]
    pub server: RawServer,
    /// The admin listener: metrics, health, active config.
    #[serde(default)]
    pub admin: RawAdmin,
    /// How the proxy talks to providers.
    #[serde(default)]
    pub upstream: RawUpstream,
    /// LLM providers the proxy may call. At least one.
    pub providers: Vec<RawProvider>,
    /// Provider that receives `/v1/*` paths the proxy does not handle itself
    /// (files, batches, ...), and requests whose API has no model to route on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_provider: Option<String>,
    /// What to do with `/v1/*` paths the proxy does not handle itself.
    #[serde(default)]
    pub unknown_paths: UnknownPaths,
    /// Log format and level.
    #[serde(default)]
    pub logging: RawLogging,

    #[serde(default, skip_serializing_if = "RawMetrics::is_empty")]
    pub metrics: RawMetrics,
    /// Model aliases and routes (filled by the routing feature).
    #[serde(default, skip_serializing_if = "RawRouting::is_empty")]
    pub routing: RawRouting,
    /// Response cache (filled by the cache feature).
    #[serde(default, skip_serializing_if = "RawCache::is_empty")]
    pub cache: RawCache,
    /// PII filtering and prompt guard (filled by the PII feature).
    #[serde(default, skip_serializing_if = "RawPii::is_empty")]
    pub pii: RawPii,
    /// Budgets and rate limits (filled by the budget feature).
    #[serde(default, skip_serializing_if = "RawBudgets::is_empty")]
    pub budgets: RawBudgets,
    /// OpenTelemetry traces (OTLP export). Off unless an endpoint is set
    /// here or in `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`.
    #[serde(default, skip_serializing_if = "RawTracing::is_empty")]
    pub tracing: RawTracing,
}

/// Free-form identification of a config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMetadata {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scope value of `scope: namespace` budgets and rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The scope value of `scope: workload` budgets and rate limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// Data-path listener and its limits.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on. Default `127.0.0.1:8080`. Changing it needs a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Largest request body accepted (bytes or a quantity like `16Mi`). Default `16Mi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_request_body: Option<Quantity>,
    /// Time allowed for a client to send the request headers. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_read_timeout: Option<String>,
    /// Requests handled at once; beyond it the proxy answers 503 with
    /// `Retry-After`. Default 1024.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_requests: Option<u32>,
    /// After SIGTERM, keep accepting for this long (the app in the same pod
    /// may still be finishing). Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_delay: Option<String>,
    /// After the delay, wait this long for in-flight requests and streams.
    /// Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_timeout: Option<String>,
    /// How the data path's workers share connections. Default `perCore`.
    /// Changing it needs a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<RuntimeMode>,
}

/// How the data path's workers (one per CPU the process may use) share
/// the work.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RuntimeMode {
    /// One single-threaded runtime per worker, each accepting on its own
    /// `SO_REUSEPORT` listener and keeping its own upstream connection
    /// pool, as nginx and Envoy do: a connection and its upstream calls
    /// stay on one thread, with no hand-offs between workers. The kernel
    /// spreads connections, not requests: an app with one or two
    /// long-lived connections may keep one worker busy while another idles.
    #[default]
    PerCore,
    /// One work-stealing runtime: any worker runs any connection's work.
    /// Evens out a few busy connections at the cost of hand-offs between
    /// workers on every request.
    WorkStealing,
}

/// Admin listener.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAdmin {
    /// Address to listen on. Default `127.0.0.1:9901`. Changing it needs a restart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

/// Upstream HTTP client settings shared by every provider.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawUpstream {
    /// TCP + TLS connect timeout. Default `5s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout: Option<String>,
    /// Close pooled connections idle this long. Default `90s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_idle_timeout: Option<String>,
    /// Idle connections kept per upstream host. Default 64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_max_idle_per_host: Option<u32>,
    /// Time allowed for the upstream to send response headers. Default `600s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_header_timeout: Option<String>,
    /// PEM bundle of extra CA certificates trusted besides the webpki roots
    /// (a private gateway, a corporate TLS proxy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_ca_file: Option<String>,
    /// How often credential files are re-read in addition to file-change
    /// notifications. Default `30s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_refresh_interval: Option<String>,
}

/// The API family a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderType {
    /// api.openai.com.
    Openai,
    /// api.anthropic.com.
    Anthropic,
    /// Anything that speaks the OpenAI API: vLLM, Ollama, LocalAI, gateways.
    OpenaiCompatible,
    /// Azure OpenAI: deployment paths and `api-version`.
    AzureOpenai,
}

/// One LLM provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawProvider {
    /// Unique name, a DNS label (`[a-z0-9-]`, at most 63 characters).
    pub name: String,
    /// API family.
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// Base URL as the provider's SDK takes it: OpenAI-style ones include
    /// the version prefix (`https://api.openai.com/v1`), Anthropic's does not
    /// (`https://api.anthropic.com`), Azure's is the resource endpoint
    /// (`https://NAME.openai.azure.com`). Defaults exist for `openai` and
    /// `anthropic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Where the provider key comes from. Omit only with `passthrough`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RawCredentials>,
    /// Forward the key the app sent instead of injecting one. Off by default:
    /// apps never hold real keys.
    #[serde(default)]
    pub passthrough: bool,
    /// Models this provider serves. Exact names, or a prefix ending in `*`.
    /// Exact names are what `GET /v1/models` lists.
    pub models: Vec<String>,
    /// `anthropic-version` header sent when the app did not send one.
    /// Default `2023-06-01`. Anthropic only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anthropic_version: Option<String>,
    /// Azure OpenAI `api-version` query parameter. Required for `azure-openai`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Extra headers sent upstream on every request (values are redacted in
    /// `/config`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Default true: while tracing is on, requests to this provider carry a
    /// W3C `traceparent` (and the app's `tracestate`) naming the attempt's
    /// span as parent. False sends neither, the app's included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagate_trace: Option<bool>,
}

/// A provider key's source: exactly one of `env` or `file`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawCredentials {
    /// Environment variable holding the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// File holding the key (a mounted Secret); re-read when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// What to do with `/v1/*` paths the proxy does not handle itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum UnknownPaths {
    /// Forward to `defaultProvider` (refused if none is set).
    #[default]
    Forward,
    /// Refuse with 404.
    Reject,
}

/// Log settings. Changing `format` or `level` needs a restart; `access`
/// applies on reload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawLogging {
    /// The access log: one line per request (target `tollgate::access`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<RawAccessLog>,
    /// `text` (default) or `json`.
    #[serde(default)]
    pub format: LogFormat,
    /// A tracing filter such as `info` or `tollgate_proxy=debug`. Default `info`;
    /// `RUST_LOG` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

/// What `/metrics` exports. Applies on reload.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawMetrics {
    /// Default true: the `gen_ai_*` histograms (duration, time to first
    /// chunk, time per chunk, token usage) are labelled with the requested
    /// and the response model. False leaves both labels empty, one series
    /// per operation and provider instead of per model: about 50 fewer
    /// series for each model a pod calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_model_histograms: Option<bool>,
}

impl RawMetrics {
    pub fn is_empty(&self) -> bool {
        self == &RawMetrics::default()
    }
}

/// OpenTelemetry trace export. Where a field is unset, the standard
/// `OTEL_*` variable applies. Read at start: changing it needs a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawTracing {
    /// Where spans go. Unset: `OTEL_EXPORTER_OTLP_*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp: Option<RawOtlp>,
    /// `service.name` of the spans. Default `OTEL_SERVICE_NAME`, else
    /// `tollgate-proxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// The share of new traces recorded, 0 to 1; a trace the app started
    /// follows the app's sampled flag. Default `OTEL_TRACES_SAMPLER[_ARG]`,
    /// else every trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sample_ratio: Option<f64>,
    /// Finished spans waiting for export; beyond it spans are dropped and
    /// counted (`tollgate_trace_spans_total{result="queue_full"}`). Default
    /// `OTEL_BSP_MAX_QUEUE_SIZE`, else 2048.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_size: Option<u32>,
}

impl RawTracing {
    pub fn is_empty(&self) -> bool {
        self == &RawTracing::default()
    }
}

/// An OTLP collector.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawOtlp {
    /// The collector's base URL, e.g. `http://otel-collector:4318`
    /// (`/v1/traces` is added for `http/protobuf`) or
    /// `http://otel-collector:4317` for `grpc`.
    pub endpoint: String,
    /// `http/protobuf` (default, as in OpenTelemetry) or `grpc`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<OtlpProtocol>,
    /// Time allowed for one export. Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum OtlpProtocol {
    #[serde(rename = "grpc")]
    Grpc,
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

/// Which requests get an access log line.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RawAccessLog {
    /// Default true; false writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The share of successful requests logged, 0 to 1 (default 1): 0.1
    /// logs one in ten, evenly spaced. Requests answered with an error
    /// status (or a stream that failed) are always logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sample: Option<f64>,
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// An integer number of bytes or a quantity string (`512Ki`, `16Mi`, `1G`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Quantity {
    Bytes(u64),
    Text(String),
}
