//! The pooled HTTP client to providers, and the upstream request it sends.
//!
//! One hyper-util client (a pool per per-core worker) serves every provider:
//! HTTP/1.1 or HTTP/2 chosen by ALPN, rustls with the webpki roots plus an
//! optional extra CA bundle, connect and idle timeouts. Requests get the provider's credentials in the
//! provider's own header; whatever key the app sent is dropped unless the
//! provider is configured for passthrough.

mod error;

pub(crate) use error::UpstreamError;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Uri};
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateDer;
use tollgate_config::{Provider, ProviderType, UpstreamConfig};

use crate::api::Operation;
use crate::credentials::Credential;

/// Why an upstream client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("upstream.extraCaFile {path}: {reason}")]
    CaBundle { path: String, reason: String },
}

type Pool = HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A pooled client; cheap to clone. It keeps one connection pool per
/// per-core worker ([`crate::workers`]), so a worker's requests use only
/// connections its own runtime drives.
#[derive(Clone)]
pub struct Client {
    pools: Arc<[Pool]>,
    settings: UpstreamConfig,
}

impl Client {
    pub fn new(settings: &UpstreamConfig) -> Result<Client, ClientError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        if let Some(path) = &settings.extra_ca_file {
            let shown = path.display().to_string();
            let err = |reason: String| ClientError::CaBundle {
                path: shown.clone(),
                reason,
            };
            let file = std::fs::File::open(path).map_err(|e| err(e.to_string()))?;
            let mut added = 0;
            for cert in CertificateDer::pem_reader_iter(file) {
                let cert = cert.map_err(|e| err(format!("not a PEM bundle: {e}")))?;
                roots
                    .add(cert)
                    .map_err(|e| err(format!("invalid certificate: {e}")))?;
                added += 1;
            }
            if added == 0 {
                return Err(err("contains no PEM certificates".into()));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        http.set_keepalive(Some(Duration::from_secs(60)));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let pool = || {
            HyperClient::builder(TokioExecutor::new())
                // Reads of a fixed 4 KiB: a streamed answer comes in events
                // of a few hundred bytes, and hyper's growing buffer held
                // 16 KiB per open stream; a large JSON answer takes a few
                // more reads.
                .http1_read_buf_exact_size(4096)
                .pool_idle_timeout(settings.pool_idle_timeout)
                .pool_max_idle_per_host(settings.pool_max_idle_per_host)
                .pool_timer(TokioTimer::new())
                .timer(TokioTimer::new())
                .build(https.clone())
        };
        Ok(Client {
            pools: (0..crate::workers::pools()).map(|_| pool()).collect(),
            settings: settings.clone(),
        })
    }

    /// The settings this client was built with (a reload reuses the client,
    /// and its warm pool, when they are unchanged).
    pub fn settings(&self) -> &UpstreamConfig {
        &self.settings
    }

    /// Sends a request and waits for the response headers (the caller
    /// bounds the wait).
    pub async fn send(
        &self,
        provider: &str,
        req: Request<Full<Bytes>>,
    ) -> Result<http::Response<hyper::body::Incoming>, UpstreamError> {
        let pool = self
            .pools
            .get(crate::workers::index())
            .unwrap_or(&self.pools[0]);
        pool.request(req).await.map_err(|e| classify(provider, &e))
    }
}

fn classify(provider: &str, e: &hyper_util::client::legacy::Error) -> UpstreamError {
    // Walk the source chain for the most specific, non-sensitive reason.
    let mut reason = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        reason = s.to_string();
        source = s.source();
    }
    if e.is_connect() {
        UpstreamError::Connect {
            provider: provider.to_string(),
            reason,
        }
    } else {
        UpstreamError::Protocol {
            provider: provider.to_string(),
            reason,
        }
    }
}

/// Headers that describe one hop and never cross the proxy.
/// Parsed once: removing by `&str` would parse and validate the name on
/// every request.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Removes hop-by-hop headers, including those named by `Connection`.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
}

const AUTH_HEADERS: &[&str] = &["authorization", "x-api-key", "api-key"];

/// Everything needed to build one upstream request.
pub(crate) struct Outgoing<'a> {
    pub provider: &'a Provider,
    pub credential: Option<&'a Credential>,
    pub operation: Operation,
    pub method: Method,
    /// The app's path, starting with `/v1/`.
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub model: Option<&'a str>,
    pub request_id: &'a HeaderValue,
    pub body: Bytes,
    /// The attempt's `traceparent` while tracing is on; without it the
    /// app's trace headers pass as they came (if the provider takes them).
    pub trace: Option<crate::trace::Propagation>,
}

/// Builds the upstream request from the app's headers.
pub(crate) fn build_request(
    out: Outgoing<'_>,
    mut headers: HeaderMap,
) -> Result<Request<Full<Bytes>>, UpstreamError> {
    let p = out.provider;
    strip_hop_by_hop(&mut headers);
    headers.remove(header::HOST);
    headers.remove(header::CONTENT_LENGTH);
    // Streams are inspected on the way back; keep them uncompressed.
    headers.insert(
        header::ACCEPT_ENCODING,
        HeaderValue::from_static("identity"),
    );
    // Names as constants: a `&str` name is parsed on every insert.
    const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
    headers.insert(X_REQUEST_ID, out.request_id.clone());
    const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
    match (&out.trace, p.propagate_trace) {
        (_, false) => {
            headers.remove(TRACEPARENT);
            headers.remove(TRACESTATE);
        }
        (Some(t), true) => {
            headers.insert(TRACEPARENT, t.traceparent.clone());
            match &t.tracestate {
                Some(v) => headers.insert(TRACESTATE, v.clone()),
                None => headers.remove(TRACESTATE),
            };
        }
        (None, true) => {}
    }
    let internal: Vec<HeaderName> = headers
        .keys()
        .filter(|k| k.as_str().starts_with("x-tollgate-"))
        .cloned()
        .collect();
    for k in internal {
        headers.remove(k);
    }

    let app_sent_key = AUTH_HEADERS.iter().any(|h| headers.contains_key(*h));
    if !(p.passthrough && app_sent_key) {
        for h in AUTH_HEADERS {
            headers.remove(*h);
        }
        if let Some(cred) = out.credential {
            let state = cred.get();
            let secret = state.as_ref().as_ref().map_err(|reason| {
                UpstreamError::CredentialsUnavailable {
                    provider: p.name.clone(),
                    reason: reason.clone(),
                }
            })?;
            match p.kind {
                ProviderType::Openai | ProviderType::OpenaiCompatible => {
                    headers.insert(header::AUTHORIZATION, secret.bearer.clone());
                }
                ProviderType::Anthropic => {
                    headers.insert("x-api-key", secret.raw.clone());
                }
                ProviderType::AzureOpenai => {
                    headers.insert("api-key", secret.raw.clone());
                }
            }
        }
    }
    if p.kind == ProviderType::Anthropic && !headers.contains_key("anthropic-version") {
        if let Ok(v) = HeaderValue::from_str(&p.anthropic_version) {
            headers.insert("anthropic-version", v);
        }
    }
    for (name, value) in &p.headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.insert(n, v);
        }
    }

    let uri = upstream_uri(p, out.operation, out.path, out.query, out.model)?;
    let mut req = Request::new(Full::new(out.body));
    *req.method_mut() = out.method;
    *req.uri_mut() = uri;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Maps the app's path onto the provider's base URL.
///
/// OpenAI-style base URLs already end in the version (`.../v1`), so the
/// app's `/v1` is dropped; Anthropic's do not; Azure puts the model (its
/// deployment name) in the path and the API version in the query.
pub(crate) fn upstream_uri(
    p: &Provider,
    op: Operation,
    path: &str,
    query: Option<&str>,
    model: Option<&str>,
) -> Result<Uri, UpstreamError> {
    let base = &p.base_url;
    let rest = path.strip_prefix("/v1").unwrap_or(path);
    let mut target = String::with_capacity(base.path.len() + path.len() + 32);
    target.push_str(&base.path);
    match p.kind {
        ProviderType::Openai | ProviderType::OpenaiCompatible => target.push_str(rest),
        ProviderType::Anthropic => target.push_str(path),
        ProviderType::AzureOpenai => {
            target.push_str("/openai");
            if let (
                Some(m),
                Operation::ChatCompletions | Operation::Completions | Operation::Embeddings,
            ) = (model, op)
            {
                target.push_str("/deployments/");
                percent_encode_segment(m, &mut target);
            }
            target.push_str(rest);
        }
    }
    let mut q: Vec<&str> = query.into_iter().filter(|q| !q.is_empty()).collect();
    let api_version;
    if let (ProviderType::AzureOpenai, Some(v)) = (p.kind, &p.api_version) {
        if !q
            .iter()
            .any(|q| q.split('&').any(|kv| kv.starts_with("api-version=")))
        {
            api_version = format!("api-version={v}");
            q.push(&api_version);
        }
    }
    if !q.is_empty() {
        target.push('?');
        target.push_str(&q.join("&"));
    }
    Uri::builder()
        .scheme(base.scheme.as_str())
        .authority(base.authority.as_str())
        .path_and_query(target)
        .build()
        .map_err(|e| UpstreamError::Uri(e.to_string()))
}

fn percent_encode_segment(s: &str, out: &mut String) {
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests;
