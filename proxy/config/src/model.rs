//! Validated configuration: what the proxy runs on.
//!
//! Every value here has passed [`crate::load`]; defaults are filled in and
//! strings are parsed, so the data path never re-checks them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::raw::RawConfig;
mod budgets;
mod cache;
mod pii;
mod routing;
pub use budgets::*;
pub use cache::*;
pub use pii::*;
pub use routing::*;

pub use crate::raw::{LogFormat, ProviderType, UnknownPaths};

/// The whole validated config.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub name: Option<String>,
    pub server: ServerConfig,
    pub admin: AdminConfig,
    pub upstream: UpstreamConfig,
    pub providers: Vec<Provider>,
    /// Index into `providers`.
    pub default_provider: Option<usize>,
    pub unknown_paths: UnknownPaths,
    pub logging: LoggingConfig,
    pub metrics: MetricsConfig,
    pub routing: Routing,
    pub budgets: Budgets,
    pub cache: Cache,
    pub pii: Pii,
    pub tracing: Tracing,
    /// Hex SHA-256 of the config's canonical JSON form: equal configs hash
    /// equal whatever their YAML formatting.
    pub hash: String,
    /// The config as written (with defaults left implicit), for `/config`.
    pub raw: RawConfig,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub max_request_body: u64,
    pub header_read_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub drain_delay: Duration,
    pub drain_timeout: Duration,
    pub runtime: crate::raw::RuntimeMode,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamConfig {
    pub connect_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
    pub response_header_timeout: Duration,
    pub extra_ca_file: Option<PathBuf>,
    pub credential_refresh_interval: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LoggingConfig {
    pub format: LogFormat,
    pub level: String,
    pub access: AccessLog,
}

/// OpenTelemetry trace export as the config file sets it; `None` leaves
/// the field to the `OTEL_*` variables. Read at start.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tracing {
    /// The collector's base URL.
    pub endpoint: Option<String>,
    pub protocol: Option<crate::raw::OtlpProtocol>,
    pub timeout: Option<Duration>,
    pub service_name: Option<String>,
    pub sample_ratio: Option<f64>,
    pub queue_size: Option<usize>,
}

/// What `/metrics` exports (applies on reload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsConfig {
    /// The `gen_ai_*` histograms carry the requested and response model.
    pub per_model_histograms: bool,
}

/// Which requests get an access log line (applies on reload).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccessLog {
    /// The share of successful requests logged, in [0, 1].
    pub sample: f64,
    /// Off: no line at all, not even for errors (which are logged
    /// whenever it is on, whatever the share).
    pub enabled: bool,
}

/// Which wire API a request or provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiFamily {
    OpenAi,
    Anthropic,
}

impl ApiFamily {
    /// Lowercase name, for logs and keys.
    pub fn as_str(self) -> &'static str {
        match self {
            ApiFamily::OpenAi => "openai",
            ApiFamily::Anthropic => "anthropic",
        }
    }
}

impl ProviderType {
    /// The wire API this provider type speaks.
    pub fn family(self) -> ApiFamily {
        match self {
            ProviderType::Anthropic => ApiFamily::Anthropic,
            _ => ApiFamily::OpenAi,
        }
    }

    /// Name as written in config and used in metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderType::Openai => "openai",
            ProviderType::Anthropic => "anthropic",
            ProviderType::OpenaiCompatible => "openai-compatible",
            ProviderType::AzureOpenai => "azure-openai",
        }
    }
}

/// One provider, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub kind: ProviderType,
    pub base_url: BaseUrl,
    pub credentials: Option<CredentialSource>,
    pub passthrough: bool,
    pub models: Vec<ModelPattern>,
    pub anthropic_version: String,
    pub api_version: Option<String>,
    pub headers: Vec<(String, String)>,
    /// Send `traceparent`/`tracestate` to this provider while tracing is on.
    pub propagate_trace: bool,
}

impl Provider {
    /// True when this provider's allow-list admits `model`.
    pub fn serves(&self, model: &str) -> bool {
        self.models.iter().any(|p| p.matches(model))
    }

    /// Exact model names, as listed by `GET /v1/models`.
    pub fn listed_models(&self) -> impl Iterator<Item = &str> {
        self.models.iter().filter_map(|p| match p {
            ModelPattern::Exact(m) => Some(m.as_str()),
            ModelPattern::Prefix(_) => None,
        })
    }
}

/// A parsed base URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`.
    pub authority: String,
    /// Path prefix without a trailing slash (may be empty).
    pub path: String,
}

impl BaseUrl {
    /// `scheme://authority/path` with no trailing slash.
    pub fn as_string(&self) -> String {
        format!("{}://{}{}", self.scheme, self.authority, self.path)
    }
}

/// Where a provider key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSource {
    Env(String),
    File(PathBuf),
}

/// An allow-list entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelPattern {
    Exact(String),
    /// Written `prefix*`.
    Prefix(String),
}

impl ModelPattern {
    pub fn matches(&self, model: &str) -> bool {
        match self {
            ModelPattern::Exact(m) => m == model,
            ModelPattern::Prefix(p) => model.starts_with(p.as_str()),
        }
    }
}
