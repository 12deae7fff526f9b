//! Raw → validated config. Every problem is reported with its field path.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::model::*;
use crate::quantity::{parse_bytes, parse_duration};
use crate::raw::{Quantity, RawConfig, RawCredentials, RawProvider};
use crate::{API_VERSION, KIND};

/// One validation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path such as `providers[1].baseUrl`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a config could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// YAML syntax or shape error (wrong type, unknown field, missing field).
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    /// Well-formed but invalid values.
    #[error("invalid config:\n  {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n  "))]
    Invalid(Vec<FieldError>),
}

impl LoadError {
    /// Every problem as `(path, message)`, for status conditions and tests.
    pub fn field_errors(&self) -> Vec<FieldError> {
        match self {
            LoadError::Io { path, source } => vec![FieldError {
                path: path.display().to_string(),
                message: source.to_string(),
            }],
            LoadError::Parse { path, message } => vec![FieldError {
                path: path.clone(),
                message: message.clone(),
            }],
            LoadError::Invalid(errs) => errs.clone(),
        }
    }
}

/// Reads and validates a config file.
pub fn load_file(path: &Path) -> Result<Config, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    from_yaml_str(&text)
}

/// Parses and validates config text (YAML or JSON).
pub fn from_yaml_str(text: &str) -> Result<Config, LoadError> {
    // The path is where serde was when the parser failed; the parser's
    // error (with its line and column) is the message.
    let mut path = String::new();
    let raw: RawConfig =
        serde_saphyr::with_deserializer_from_str_with_options(text, crate::yaml::options(), |de| {
            serde_path_to_error::deserialize(de).map_err(|e| {
                path = e.path().to_string();
                e.into_inner()
            })
        })
        .map_err(|e| LoadError::Parse {
            path: parse_error_path(&path),
            message: crate::yaml::message(&e),
        })?;
    validate(raw)
}

/// A serde path as reported: the root is `.` (and an unknown field named
/// `` at the root gives an empty path); a duplicate key is found before
/// serde sees it, as the key `?` of its mapping, which is named instead.
fn parse_error_path(path: &str) -> String {
    let path = path.strip_suffix(".?").unwrap_or(path);
    if matches!(path, "." | "" | "?") {
        "(root)".into()
    } else {
        path.into()
    }
}

/// Validates a parsed config. The operator calls this on the config it
/// renders, so a policy is accepted only if a proxy would accept it.
pub fn validate(raw: RawConfig) -> Result<Config, LoadError> {
    let mut v = Validator::default();

    if raw.api_version != API_VERSION {
        v.err(
            "apiVersion",
            format!("must be `{API_VERSION}`, got `{}`", raw.api_version),
        );
    }
    if raw.kind != KIND {
        v.err("kind", format!("must be `{KIND}`, got `{}`", raw.kind));
    }

    let s = &raw.server;
    let server = ServerConfig {
        listen: v.addr("server.listen", s.listen.as_deref(), "127.0.0.1:8080"),
        max_request_body: v.bytes(
            "server.maxRequestBody",
            s.max_request_body.as_ref(),
            16 << 20,
        ),
        header_read_timeout: v.duration(
            "server.headerReadTimeout",
            s.header_read_timeout.as_deref(),
            10,
        ),
        max_concurrent_requests: s.max_concurrent_requests.unwrap_or(1024) as usize,
        drain_delay: v.duration_allow_zero("server.drainDelay", s.drain_delay.as_deref(), 5),
        drain_timeout: v.duration("server.drainTimeout", s.drain_timeout.as_deref(), 30),
        runtime: s.runtime.unwrap_or_default(),
    };
    if server.max_concurrent_requests == 0 {
        v.err("server.maxConcurrentRequests", "must be at least 1".into());
    }
    if server.max_request_body == 0 {
        v.err("server.maxRequestBody", "must be at least 1 byte".into());
    }
    let admin = AdminConfig {
        listen: v.addr(
            "admin.listen",
            raw.admin.listen.as_deref(),
            "127.0.0.1:9901",
        ),
    };
    if admin.listen == server.listen && admin.listen.port() != 0 {
        v.err(
            "admin.listen",
            format!("must differ from server.listen ({})", server.listen),
        );
    }

    let u = &raw.upstream;
    let upstream = UpstreamConfig {
        connect_timeout: v.duration("upstream.connectTimeout", u.connect_timeout.as_deref(), 5),
        pool_idle_timeout: v.duration(
            "upstream.poolIdleTimeout",
            u.pool_idle_timeout.as_deref(),
            90,
        ),
        pool_max_idle_per_host: u.pool_max_idle_per_host.unwrap_or(64) as usize,
        response_header_timeout: v.duration(
            "upstream.responseHeaderTimeout",
            u.response_header_timeout.as_deref(),
            600,
        ),
        extra_ca_file: u.extra_ca_file.as_ref().map(PathBuf::from),
        credential_refresh_interval: v.duration(
            "upstream.credentialRefreshInterval",
            u.credential_refresh_interval.as_deref(),
            30,
        ),
    };
    if let Some(ca) = &u.extra_ca_file {
        if ca.trim().is_empty() {
            v.err("upstream.extraCaFile", "must not be empty".into());
        }
    }

    if raw.providers.is_empty() {
        v.err("providers", "at least one provider is required".into());
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut exact_owner: HashMap<(ApiFamily, &str), &str> = HashMap::new();
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (i, p) in raw.providers.iter().enumerate() {
        let at = format!("providers[{i}]");
        if let Some(prev) = names.insert(p.name.as_str(), i) {
            v.err(
                &format!("{at}.name"),
                format!("`{}` is already the name of providers[{prev}]", p.name),
            );
        }
        for m in &p.models {
            if m.ends_with('*') {
                continue;
            }
            let key = (p.kind.family(), m.as_str());
            if let Some(owner) = exact_owner.insert(key, p.name.as_str()) {
                if owner != p.name {
                    v.err(
                        &format!("{at}.models"),
                        format!("model `{m}` is already served by provider `{owner}` of the same API; a model name must map to one provider"),
                    );
                }
            }
        }
        providers.push(v.provider(&at, p));
    }

    let default_provider = match &raw.default_provider {
        None => None,
        Some(name) => match names.get(name.as_str()) {
            Some(&i) => Some(i),
            None => {
                v.err(
                    "defaultProvider",
                    format!(
                        "no provider is named `{name}` (known: {})",
                        known(&raw.providers)
                    ),
                );
                None
            }
        },
    };

    let routing = v.routing(&raw.routing, &names, &upstream);
    let route_names = raw.routing.routes.iter().map(|r| r.name.as_str()).collect();
    let budgets = v.budgets(&raw.budgets, &route_names, raw.metadata.as_ref());
    let cache = v.cache(&raw.cache, &route_names, &raw.providers);
    let pii = v.pii(&raw.pii, raw.metadata.as_ref());
    let tracing = v.tracing(&raw.tracing);

    let level = raw.logging.level.clone().unwrap_or_else(|| "info".into());
    if level.trim().is_empty() {
        v.err("logging.level", "must not be empty".into());
    }
    let raw_access = raw.logging.access.clone().unwrap_or_default();
    let sample = raw_access.sample.unwrap_or(1.0);
    if !(0.0..=1.0).contains(&sample) {
        v.err(
            "logging.access.sample",
            format!("must be between 0 and 1 (a share of requests), not {sample}"),
        );
    }
    let access = AccessLog {
        enabled: raw_access.enabled.unwrap_or(true),
        sample,
    };

    if !v.errors.is_empty() {
        return Err(LoadError::Invalid(v.errors));
    }
    Ok(Config {
        name: raw.metadata.as_ref().and_then(|m| m.name.clone()),
        server,
        admin,
        upstream,
        providers,
        default_provider,
        unknown_paths: raw.unknown_paths,
        logging: LoggingConfig {
            format: raw.logging.format,
            level,
            access,
        },
        metrics: MetricsConfig {
            per_model_histograms: raw.metrics.per_model_histograms.unwrap_or(true),
        },
        routing,
        budgets,
        cache,
        pii,
        tracing,
        hash: hash(&raw),
        raw,
    })
}

fn known(providers: &[RawProvider]) -> String {
    providers
        .iter()
        .map(|p| format!("`{}`", p.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// SHA-256 of the canonical JSON form (serde_json sorts nothing, but the raw
/// types serialize fields in declaration order and maps are BTreeMaps, so the
/// form is canonical for equal configs).
fn hash(raw: &RawConfig) -> String {
    let json = serde_json::to_vec(raw).expect("raw config serializes");
    hex::encode(Sha256::digest(&json))
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn err(&mut self, path: &str, message: String) {
        self.errors.push(FieldError {
            path: path.to_string(),
            message,
        });
    }

    fn addr(&mut self, path: &str, value: Option<&str>, default: &str) -> SocketAddr {
        let text = value.unwrap_or(default);
        text.parse().unwrap_or_else(|_| {
            self.err(
                path,
                format!("`{text}` is not an IP:port address (e.g. 127.0.0.1:8080 or [::1]:8080)"),
            );
            default.parse().expect("default address parses")
        })
    }

    fn bytes(&mut self, path: &str, value: Option<&Quantity>, default: u64) -> u64 {
        match value {
            None => default,
            Some(Quantity::Bytes(n)) => *n,
            Some(Quantity::Text(t)) => parse_bytes(t).unwrap_or_else(|e| {
                self.err(path, e);
                default
            }),
        }
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default_secs: u64) -> Duration {
        let d = self.duration_allow_zero(path, value, default_secs);
        if d.is_zero() {
            self.err(path, "must be greater than zero".into());
        }
        d
    }

    fn duration_allow_zero(
        &mut self,
        path: &str,
        value: Option<&str>,
        default_secs: u64,
    ) -> Duration {
        match value {
            None => Duration::from_secs(default_secs),
            Some(t) => parse_duration(t).unwrap_or_else(|e| {
                self.err(path, e);
                Duration::from_secs(default_secs)
            }),
        }
    }

    fn provider(&mut self, at: &str, p: &RawProvider) -> Provider {
        if !is_dns_label(&p.name) {
            self.err(
                &format!("{at}.name"),
                format!("`{}` must be a DNS label: lowercase letters, digits and '-', 1 to 63 characters", p.name),
            );
        }
        let default_url = match p.kind {
            ProviderType::Openai => Some("https://api.openai.com/v1"),
            ProviderType::Anthropic => Some("https://api.anthropic.com"),
            ProviderType::OpenaiCompatible | ProviderType::AzureOpenai => None,
        };
        let base_url = match p.base_url.as_deref().or(default_url) {
            Some(url) => parse_base_url(url).unwrap_or_else(|e| {
                self.err(&format!("{at}.baseUrl"), e);
                placeholder_url()
            }),
            None => {
                self.err(
                    &format!("{at}.baseUrl"),
                    format!("required for type `{}`", p.kind.as_str()),
                );
                placeholder_url()
            }
        };
        let credentials = match &p.credentials {
            None => {
                if !p.passthrough {
                    self.err(
                        &format!("{at}.credentials"),
                        "required unless `passthrough: true` (set `env` or `file`)".into(),
                    );
                }
                None
            }
            Some(c) => self.credentials(&format!("{at}.credentials"), c),
        };
        if p.models.is_empty() {
            self.err(
                &format!("{at}.models"),
                "list at least one model (an exact name or a prefix ending in `*`)".into(),
            );
        }
        let mut models = Vec::with_capacity(p.models.len());
        for (j, m) in p.models.iter().enumerate() {
            let m = m.trim();
            if m.is_empty() || m == "*" && p.models.len() > 1 {
                self.err(
                    &format!("{at}.models[{j}]"),
                    "must be a model name or `prefix*`".into(),
                );
            }
            if let Some(prefix) = m.strip_suffix('*') {
                if prefix.contains('*') {
                    self.err(
                        &format!("{at}.models[{j}]"),
                        "`*` is only allowed at the end".into(),
                    );
                }
                models.push(ModelPattern::Prefix(prefix.to_string()));
            } else if m.contains('*') {
                self.err(
                    &format!("{at}.models[{j}]"),
                    "`*` is only allowed at the end".into(),
                );
            } else {
                models.push(ModelPattern::Exact(m.to_string()));
            }
        }
        if p.anthropic_version.is_some() && p.kind != ProviderType::Anthropic {
            self.err(
                &format!("{at}.anthropicVersion"),
                "only applies to providers of type `anthropic`".into(),
            );
        }
        match (p.kind, &p.api_version) {
            (ProviderType::AzureOpenai, None) => self.err(
                &format!("{at}.apiVersion"),
                "required for type `azure-openai` (e.g. `2024-10-21`)".into(),
            ),
            (ProviderType::AzureOpenai, Some(_)) | (_, None) => {}
            (_, Some(_)) => self.err(
                &format!("{at}.apiVersion"),
                "only applies to providers of type `azure-openai`".into(),
            ),
        }
        let mut headers = Vec::with_capacity(p.headers.len());
        for (name, value) in &p.headers {
            let lower = name.to_ascii_lowercase();
            if !is_token(name) {
                self.err(
                    &format!("{at}.headers.{name}"),
                    "is not a valid header name".into(),
                );
            } else if matches!(
                lower.as_str(),
                "host"
                    | "content-length"
                    | "transfer-encoding"
                    | "connection"
                    | "authorization"
                    | "x-api-key"
                    | "api-key"
            ) {
                self.err(
                    &format!("{at}.headers.{name}"),
                    "is managed by the proxy and cannot be set here (credentials go in `credentials`)".into(),
                );
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                self.err(
                    &format!("{at}.headers.{name}"),
                    "value must not contain CR, LF or NUL".into(),
                );
            }
            headers.push((lower, value.clone()));
        }
        Provider {
            name: p.name.clone(),
            kind: p.kind,
            base_url,
            credentials,
            passthrough: p.passthrough,
            models,
            anthropic_version: p
                .anthropic_version
                .clone()
                .unwrap_or_else(|| "2023-06-01".to_string()),
            api_version: p.api_version.clone(),
            headers,
            propagate_trace: p.propagate_trace.unwrap_or(true),
        }
    }

    fn credentials(&mut self, at: &str, c: &RawCredentials) -> Option<CredentialSource> {
        match (&c.env, &c.file) {
            (Some(env), None) => {
                if env.is_empty()
                    || !env
                        .chars()
                        .all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                {
                    self.err(
                        &format!("{at}.env"),
                        format!("`{env}` is not an environment variable name"),
                    );
                }
                Some(CredentialSource::Env(env.clone()))
            }
            (None, Some(file)) => {
                if file.trim().is_empty() {
                    self.err(&format!("{at}.file"), "must not be empty".into());
                }
                Some(CredentialSource::File(PathBuf::from(file)))
            }
            (Some(_), Some(_)) => {
                self.err(at, "set exactly one of `env` or `file`, not both".into());
                None
            }
            (None, None) => {
                self.err(at, "set exactly one of `env` or `file`".into());
                None
            }
        }
    }
}

fn placeholder_url() -> BaseUrl {
    BaseUrl {
        scheme: "http".into(),
        authority: "invalid".into(),
        path: String::new(),
    }
}

/// Parses `scheme://host[:port][/path]`. Query strings, fragments and
/// userinfo are refused: credentials belong in `credentials`.
pub fn parse_base_url(url: &str) -> Result<BaseUrl, String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("`{url}` is not an absolute URL (expected https://host[/path])"))?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(format!("`{url}`: scheme must be http or https"));
    }
    if rest.contains(['?', '#']) {
        return Err(format!("`{url}` must not have a query or fragment"));
    }
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(format!("`{url}` has no host"));
    }
    if authority.contains('@') {
        return Err(
            "the base URL must not carry credentials; use `credentials` instead".to_string(),
        );
    }
    if authority
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!("`{url}` has an invalid host"));
    }
    if let Some((_, port)) = authority.rsplit_once(':') {
        if !authority.ends_with(']') && port.parse::<u16>().is_err() {
            return Err(format!("`{url}` has an invalid port"));
        }
    }
    Ok(BaseUrl {
        scheme,
        authority: authority.to_string(),
        path: path.trim_end_matches('/').to_string(),
    })
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

mod budgets;
mod cache;
mod pii;
mod redis;
mod routing;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_budgets;
#[cfg(test)]
mod tests_cache;
#[cfg(test)]
mod tests_redis;
mod tracing;
