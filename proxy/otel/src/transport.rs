//! Sending an encoded export request to the collector: OTLP/gRPC (one unary
//! call over HTTP/2, cleartext or TLS with ALPN) or OTLP/HTTP (a protobuf
//! body), with the headers `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` name (often
//! a backend's credentials: never logged or put in an error) and the
//! certificates `OTEL_EXPORTER_OTLP_[TRACES_]{CERTIFICATE,CLIENT_CERTIFICATE,
//! CLIENT_KEY}` name.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{proto, Env, Error, Protocol};

/// The gRPC method of OTLP's trace service.
const GRPC_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Where and how export requests go.
pub(crate) struct Transport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    protocol: Protocol,
    headers: HeaderMap,
}

/// Why a request did not deliver its spans.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    #[error("cannot reach the collector: {0}")]
    Connect(String),
    #[error("the collector answered HTTP {0}")]
    Http(StatusCode),
    #[error("the collector answered gRPC status {0}")]
    Grpc(u32),
}

impl SendError {
    /// Whether trying again may help (OTLP's list: a collector away,
    /// throttling or overloaded).
    pub(crate) fn retryable(&self) -> bool {
        match self {
            SendError::Connect(_) => true,
            SendError::Http(s) => matches!(s.as_u16(), 429 | 502 | 503 | 504),
            // CANCELLED, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
            // OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS.
            SendError::Grpc(code) => matches!(code, 1 | 4 | 8 | 10 | 11 | 14 | 15),
        }
    }
}

impl Transport {
    /// A transport to `url` (the full URL for OTLP/HTTP; scheme and
    /// authority for gRPC).
    pub(crate) fn new(
        url: &str,
        protocol: Protocol,
        headers: HeaderMap,
        tls: &Tls,
        timeout: Duration,
    ) -> Result<Transport, Error> {
        let parsed: Uri = url
            .parse()
            .map_err(|_| Error::Endpoint(format!("`{url}` is not a URL")))?;
        match parsed.scheme_str() {
            Some("https" | "http") => {}
            _ => {
                return Err(Error::Endpoint(format!(
                    "`{url}` must start with http:// or https://"
                )))
            }
        }
        if parsed.authority().is_none() {
            return Err(Error::Endpoint(format!("`{url}` names no host")));
        }
        let uri = match protocol {
            Protocol::Grpc => Uri::builder()
                .scheme(parsed.scheme_str().unwrap_or("http"))
                .authority(parsed.authority().expect("checked").clone())
                .path_and_query(GRPC_PATH)
                .build()
                .map_err(|e| Error::Endpoint(e.to_string()))?,
            Protocol::HttpProtobuf => parsed,
        };
        // Cleartext needs a config too, to build the connector.
        let config = tls.client_config()?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(config)
            .https_or_http();
        let connector = match protocol {
            Protocol::Grpc => connector.enable_http2().wrap_connector(http),
            Protocol::HttpProtobuf => connector.enable_http1().wrap_connector(http),
        };
        let client = Client::builder(TokioExecutor::new())
            .http2_only(protocol == Protocol::Grpc)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Transport {
            client,
            uri,
            protocol,
            headers,
        })
    }

    /// Bytes the caller leaves free at the start of a request's body for
    /// the transport's framing (gRPC's message prefix).
    pub(crate) fn prefix(&self) -> usize {
        match self.protocol {
            Protocol::Grpc => 5,
            Protocol::HttpProtobuf => 0,
        }
    }

    /// Fills the framing [`Transport::prefix`] left room for.
    pub(crate) fn frame(&self, body: &mut [u8]) {
        if self.protocol == Protocol::Grpc {
            // Not compressed, then the message's length.
            let len = u32::try_from(body.len() - 5).unwrap_or(u32::MAX);
            body[0] = 0;
            body[1..5].copy_from_slice(&len.to_be_bytes());
        }
    }

    /// Sends one framed request; the spans the collector rejected in a
    /// partial success on success.
    pub(crate) async fn send(&self, body: Bytes) -> Result<u64, SendError> {
        let mut req = Request::post(self.uri.clone())
            .body(Full::new(body))
            .expect("a valid request");
        let h = req.headers_mut();
        h.insert(
            USER_AGENT,
            HeaderValue::from_static(concat!("tollgate-otel/", env!("CARGO_PKG_VERSION"))),
        );
        match self.protocol {
            Protocol::Grpc => {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                h.insert("te", HeaderValue::from_static("trailers"));
            }
            Protocol::HttpProtobuf => {
                h.insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("application/x-protobuf"),
                );
            }
        }
        for (k, v) in &self.headers {
            h.insert(k, v.clone());
        }
        let resp = self
            .client
            .request(req)
            .await
            .map_err(|e| SendError::Connect(error_chain(&e)))?;
        let status = resp.status();
        let early = grpc_status(resp.headers());
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| SendError::Connect(error_chain(&e)))?;
        if !status.is_success() {
            return Err(SendError::Http(status));
        }
        match self.protocol {
            Protocol::HttpProtobuf => Ok(proto::rejected_spans(&body.to_bytes())),
            Protocol::Grpc => {
                // A "trailers-only" answer has its status in the headers.
                let code = early
                    .or_else(|| body.trailers().and_then(grpc_status))
                    .unwrap_or(2);
                if code != 0 {
                    return Err(SendError::Grpc(code));
                }
                let bytes = body.to_bytes();
                Ok(bytes.get(5..).map_or(0, proto::rejected_spans))
            }
        }
    }
}

fn grpc_status(h: &HeaderMap) -> Option<u32> {
    h.get("grpc-status")?.to_str().ok()?.trim().parse().ok()
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

/// Certificates for a TLS connection to the collector (PEM files).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Tls {
    /// Trusted instead of the public roots.
    pub(crate) ca: Option<PathBuf>,
    /// The client's certificate and key (mutual TLS).
    pub(crate) cert: Option<PathBuf>,
    pub(crate) key: Option<PathBuf>,
}

impl Tls {
    pub(crate) fn from_env(env: Env<'_>) -> Tls {
        let path = |suffix: &str| {
            env(&format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"))
                .or_else(|| env(&format!("OTEL_EXPORTER_OTLP_{suffix}")))
                .map(PathBuf::from)
        };
        Tls {
            ca: path("CERTIFICATE"),
            cert: path("CLIENT_CERTIFICATE"),
            key: path("CLIENT_KEY"),
        }
    }

    fn client_config(&self) -> Result<rustls::ClientConfig, Error> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| tls_error(path, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_error(path, e))?;
                if certs.is_empty() {
                    return Err(tls_error(path, "contains no PEM certificate"));
                }
                for c in certs {
                    roots.add(c).map_err(|e| tls_error(path, e))?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots);
        match (&self.cert, &self.key) {
            (None, None) => Ok(builder.with_no_client_auth()),
            (Some(cert), Some(key)) => {
                let chain = CertificateDer::pem_file_iter(cert)
                    .map_err(|e| tls_error(cert, e))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| tls_error(cert, e))?;
                let private = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_error(key, e))?;
                builder
                    .with_client_auth_cert(chain, private)
                    .map_err(|e| tls_error(cert, e))
            }
            _ => Err(Error::Tls(
                "a client certificate and its key go together (OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY)"
                    .into(),
            )),
        }
    }
}

fn tls_error(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::Tls(format!("{}: {e}", path.display()))
}

/// The headers `OTEL_EXPORTER_OTLP_HEADERS` and then
/// `OTEL_EXPORTER_OTLP_TRACES_HEADERS` name (`key=value,...`, values
/// percent-encoded as W3C baggage is); the second wins for a key both name.
/// An error names the variable and the entry's position, never a value.
pub(crate) fn headers_from_env(env: Env<'_>) -> Result<HeaderMap, Error> {
    let mut out = HeaderMap::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        let Some(list) = env(var) else { continue };
        for (i, entry) in list.split(',').enumerate() {
            if entry.trim().is_empty() {
                continue;
            }
            let bad = |what: &str| Error::Headers(format!("{var}: entry {} {what}", i + 1));
            let (k, v) = entry
                .split_once('=')
                .ok_or_else(|| bad("is not key=value"))?;
            let name = HeaderName::from_bytes(k.trim().to_ascii_lowercase().as_bytes())
                .map_err(|_| bad("has an invalid header name"))?;
            let value = percent_decode(v.trim()).ok_or_else(|| bad("has an invalid %-escape"))?;
            let mut value =
                HeaderValue::from_str(&value).map_err(|_| bad("has an invalid header value"))?;
            value.set_sensitive(true);
            out.insert(name, value);
        }
    }
    Ok(out)
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn headers_are_read_decoded_and_the_traces_variable_wins() {
        let env = env_of(vec![
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "Authorization=Bearer%20s3cret, x-tenant = a ,".into(),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=b".into()),
        ]);
        let h = headers_from_env(&env).unwrap();
        assert_eq!(h["authorization"], "Bearer s3cret");
        assert!(h["authorization"].is_sensitive());
        assert_eq!(h["x-tenant"], "b");
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn a_bad_header_entry_is_named_by_position_without_its_value() {
        for (list, what) in [
            ("a=1,s3cret", "entry 2 is not key=value"),
            ("bad name=s3cret", "entry 1 has an invalid header name"),
            ("k=s3cret%zz", "entry 1 has an invalid %-escape"),
            ("k=s3cret%0a", "entry 1 has an invalid header value"),
        ] {
            let env = env_of(vec![("OTEL_EXPORTER_OTLP_HEADERS", list.into())]);
            let err = headers_from_env(&env).unwrap_err().to_string();
            assert!(err.contains(what), "{err}");
            assert!(!err.contains("s3cret"), "{err}");
        }
    }

    #[test]
    fn retryable_failures_follow_otlp() {
        assert!(SendError::Connect("refused".into()).retryable());
        assert!(SendError::Http(StatusCode::SERVICE_UNAVAILABLE).retryable());
        assert!(SendError::Http(StatusCode::TOO_MANY_REQUESTS).retryable());
        assert!(!SendError::Http(StatusCode::BAD_REQUEST).retryable());
        assert!(!SendError::Http(StatusCode::UNAUTHORIZED).retryable());
        assert!(SendError::Grpc(14).retryable());
        assert!(!SendError::Grpc(16).retryable(), "UNAUTHENTICATED");
        assert!(!SendError::Grpc(3).retryable(), "INVALID_ARGUMENT");
    }

    #[test]
    fn endpoints_need_a_scheme_and_a_host() {
        let t = |url: &str, p| {
            Transport::new(
                url,
                p,
                HeaderMap::new(),
                &Tls::default(),
                Duration::from_secs(1),
            )
        };
        assert!(t("collector:4317", Protocol::Grpc).is_err());
        assert!(t("ftp://collector:4317", Protocol::Grpc).is_err());
        let g = t("http://collector:4317/ignored", Protocol::Grpc).unwrap();
        assert_eq!(
            g.uri,
            "http://collector:4317/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        );
        let h = t("https://collector:4318/v1/traces", Protocol::HttpProtobuf).unwrap();
        assert_eq!(h.uri, "https://collector:4318/v1/traces");
    }

    #[test]
    fn tls_files_are_checked_when_the_transport_is_built() {
        let dir = std::env::temp_dir().join(format!("tg-otel-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let tls = Tls {
            ca: Some(empty.clone()),
            ..Tls::default()
        };
        let err = Transport::new(
            "https://c:4317",
            Protocol::Grpc,
            HeaderMap::new(),
            &tls,
            Duration::from_secs(1),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("empty.pem"), "{err}");
        let half = Tls {
            cert: Some(empty),
            ..Tls::default()
        };
        assert!(half.client_config().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
