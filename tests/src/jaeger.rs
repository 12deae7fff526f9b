//! A real Jaeger (v2, the OpenTelemetry Collector based all-in-one) for the
//! tracing tests: OTLP gRPC and HTTP receivers and the query API on free
//! loopback ports, traces kept in memory; killed on drop.
//!
//! The binary is `TOLLGATE_JAEGER_BIN`, else the one
//! `tests/trace/build-jaeger.sh` builds into the tools cache. Without one the
//! tests skip, unless `TOLLGATE_REQUIRE_JAEGER` is set (CI).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::free_port;

pub struct Jaeger {
    pub otlp_grpc: u16,
    pub otlp_http: u16,
    pub query: u16,
    tls: bool,
    _dir: tempfile::TempDir,
    child: Child,
}

fn jaeger_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TOLLGATE_JAEGER_BIN") {
        return Some(PathBuf::from(p));
    }
    let version = std::env::var("TOLLGATE_JAEGER_VERSION").unwrap_or_else(|_| "v1.75.0".into());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    let p = cache
        .join("tollgate/tools")
        .join(format!("jaeger-{version}"))
        .join("bin/jaeger");
    p.is_file().then_some(p)
}

/// How the OTLP receivers are set up beyond the defaults.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// TLS on both receivers (PEM files): the server's certificate and key
    /// and, for mutual TLS, the CA client certificates must chain to.
    pub tls: Option<ReceiverTls>,
    /// A request header the collector copies into every span it receives,
    /// as the attribute `received.<header>` (the receivers keep the
    /// request's metadata and the `attributes` processor reads it): shows
    /// which headers reached the collector.
    pub copy_header: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ReceiverTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

impl Jaeger {
    /// Starts one, or returns `None` (skip) when there is no binary and
    /// `TOLLGATE_REQUIRE_JAEGER` is unset.
    pub async fn start() -> Option<Jaeger> {
        Jaeger::start_with(Options::default()).await
    }

    /// [`Jaeger::start`] with receivers set up as `opts` says.
    pub async fn start_with(opts: Options) -> Option<Jaeger> {
        let Some(bin) = jaeger_binary() else {
            assert!(
                std::env::var_os("TOLLGATE_REQUIRE_JAEGER").is_none(),
                "TOLLGATE_REQUIRE_JAEGER is set but there is no jaeger binary: run tests/trace/build-jaeger.sh"
            );
            eprintln!("SKIPPED: no jaeger binary (tests/trace/build-jaeger.sh builds it)");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let (otlp_grpc, otlp_http, query, query_grpc) =
            (free_port(), free_port(), free_port(), free_port());
        let tls = opts.tls.as_ref().map_or(String::new(), |t| {
            let mut s = format!(
                "\n        tls:\n          cert_file: {}\n          key_file: {}",
                t.cert.display(),
                t.key.display()
            );
            if let Some(ca) = &t.client_ca {
                s.push_str(&format!("\n          client_ca_file: {}", ca.display()));
            }
            s
        });
        // Copying a header: the receivers keep the request's metadata, a
        // processor in the pipeline writes it into each span.
        let (metadata, pipeline_processors, processors_section) = match &opts.copy_header {
            Some(h) => (
                "\n        include_metadata: true".to_string(),
                "      processors: [attributes]\n".to_string(),
                format!(
                    "processors:\n  attributes:\n    actions:\n      - {{key: received.{h}, from_context: metadata.{h}, action: insert}}\n"
                ),
            ),
            None => (String::new(), String::new(), String::new()),
        };
        let config = format!(
            r#"service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
{pipeline_processors}      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
{processors_section}receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}{tls}{metadata}
      http:
        endpoint: 127.0.0.1:{otlp_http}{tls}{metadata}
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"#
        );
        let path = dir.path().join("jaeger.yaml");
        std::fs::write(&path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("jaeger.log")).unwrap();
        let child = Command::new(&bin)
            .arg("--config")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("jaeger starts");
        let j = Jaeger {
            otlp_grpc,
            otlp_http,
            query,
            tls: opts.tls.is_some(),
            _dir: dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let up = j.get("/api/services").await.is_some()
                && tokio::net::TcpStream::connect(("127.0.0.1", otlp_grpc))
                    .await
                    .is_ok()
                && tokio::net::TcpStream::connect(("127.0.0.1", otlp_http))
                    .await
                    .is_ok();
            if up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "jaeger did not start: {}",
                j.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(j)
    }

    /// The OTLP/gRPC receiver's base URL.
    pub fn grpc_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.otlp_grpc)
    }

    /// The OTLP/HTTP receiver's base URL (without `/v1/traces`).
    pub fn http_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme(), self.otlp_http)
    }

    fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// What Jaeger logged (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("jaeger.log")).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}{path}", self.query);
        let resp = reqwest::get(url).await.ok()?;
        if !resp.status().is_success() {
            return None;
        }
        resp.json().await.ok()
    }

    /// The raw JSON of the query API's answer for `path` (every byte
    /// Jaeger keeps of the spans it shows).
    pub async fn raw(&self, path: &str) -> String {
        let url = format!("http://127.0.0.1:{}{path}", self.query);
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// The traces of `service` (Jaeger's JSON: `traceID`, `spans`,
    /// `processes`), newest first.
    pub async fn traces(&self, service: &str) -> Vec<Trace> {
        let v = self
            .get(&format!(
                "/api/traces?service={service}&limit=1000&lookback=1h"
            ))
            .await
            .unwrap_or(Value::Null);
        v["data"]
            .as_array()
            .map(|a| a.iter().cloned().map(Trace).collect())
            .unwrap_or_default()
    }

    /// Waits (up to 30 s) until the traces of `service` satisfy `done`,
    /// and returns them.
    pub async fn wait_for(&self, service: &str, done: impl Fn(&[Trace]) -> bool) -> Vec<Trace> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let t = self.traces(service).await;
            if done(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "jaeger never had the expected traces of {service}: {} traces: {:#?}",
                t.len(),
                t.iter().map(|t| t.summary()).collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One trace as Jaeger's query API shows it.
#[derive(Debug, Clone)]
pub struct Trace(pub Value);

/// One span of a [`Trace`].
#[derive(Debug, Clone)]
pub struct Span<'a> {
    pub v: &'a Value,
}

impl Trace {
    pub fn id(&self) -> &str {
        self.0["traceID"].as_str().unwrap_or("")
    }

    pub fn spans(&self) -> Vec<Span<'_>> {
        self.0["spans"]
            .as_array()
            .map(|a| a.iter().map(|v| Span { v }).collect())
            .unwrap_or_default()
    }

    /// Spans named `name`.
    pub fn named(&self, name: &str) -> Vec<Span<'_>> {
        self.spans()
            .into_iter()
            .filter(|s| s.name() == name)
            .collect()
    }

    /// The span with id `id`.
    pub fn span(&self, id: &str) -> Option<Span<'_>> {
        self.spans().into_iter().find(|s| s.id() == id)
    }

    /// The service that emitted `span`.
    pub fn service_of(&self, span: &Span<'_>) -> String {
        let p = span.v["processID"].as_str().unwrap_or("");
        self.0["processes"][p]["serviceName"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Names and parents, for failure messages.
    pub fn summary(&self) -> Vec<(String, String, Option<String>)> {
        self.spans()
            .iter()
            .map(|s| (s.name().to_string(), s.id().to_string(), s.parent()))
            .collect()
    }
}

impl Span<'_> {
    pub fn name(&self) -> &str {
        self.v["operationName"].as_str().unwrap_or("")
    }

    pub fn id(&self) -> &str {
        self.v["spanID"].as_str().unwrap_or("")
    }

    /// The `CHILD_OF` parent's span id.
    pub fn parent(&self) -> Option<String> {
        self.refs("CHILD_OF").into_iter().next().map(|(_, s)| s)
    }

    /// `(trace id, span id)` of the references of `kind` (`CHILD_OF`,
    /// `FOLLOWS_FROM`: Jaeger shows OpenTelemetry links as the latter).
    pub fn refs(&self, kind: &str) -> Vec<(String, String)> {
        self.v["references"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter(|r| r["refType"] == kind)
                    .map(|r| {
                        (
                            r["traceID"].as_str().unwrap_or("").to_string(),
                            r["spanID"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A tag (attribute) value: strings as they are, numbers and booleans
    /// as JSON.
    pub fn tag(&self, key: &str) -> Option<Value> {
        self.v["tags"]
            .as_array()?
            .iter()
            .find(|t| t["key"] == key)
            .map(|t| t["value"].clone())
    }

    pub fn tag_str(&self, key: &str) -> Option<String> {
        self.tag(key).map(|v| match v {
            Value::String(s) => s,
            other => other.to_string(),
        })
    }

    pub fn tag_i64(&self, key: &str) -> Option<i64> {
        self.tag(key).and_then(|v| v.as_i64())
    }

    /// Start and duration in microseconds.
    pub fn start_us(&self) -> i64 {
        self.v["startTime"].as_i64().unwrap_or(0)
    }

    pub fn duration_us(&self) -> i64 {
        self.v["duration"].as_i64().unwrap_or(0)
    }
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
