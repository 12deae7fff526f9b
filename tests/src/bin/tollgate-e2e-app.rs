//! `tollgate-e2e-app`: the application container of the real-node e2e
//! (tests/k8s/node_e2e.py). It knows nothing of Tollgate: like an app using
//! an OpenAI SDK, it reads `OPENAI_BASE_URL` and `OPENAI_API_KEY` and sends
//! requests there.
//!
//! * `serve` (default): sends one chat completion at start (before it
//!   listens, so a sidecar that is not ready yet shows as a failed first
//!   request), then serves on `--listen`:
//!   `GET /first` — that first request's `{"status", "body"}`;
//!   `GET /env` — the provider variables the app sees (keys only as set/unset);
//!   `POST /call/<path>` — sends the body to `$OPENAI_BASE_URL/<path>` with the
//!   app's key and any `x-mock-*` headers, and streams the answer back.
//!   On SIGTERM it stops accepting and finishes the calls in flight, as a
//!   well-behaved app does, then exits 0.
//! * `once`: one chat completion; prints the status and body; exits 0 on 2xx.

#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::sync::OnceCell;

#[derive(Parser)]
#[command(about = "The app container of Tollgate's real-node e2e")]
struct Args {
    #[command(subcommand)]
    mode: Option<Mode>,
}

#[derive(Subcommand)]
enum Mode {
    /// Serve the test's calls (default).
    Serve {
        #[arg(long, default_value = "0.0.0.0:8080")]
        listen: SocketAddr,
    },
    /// One chat completion, then exit.
    Once,
}

type Body = BoxBody<Bytes, hyper::Error>;

struct App {
    base: String,
    key: String,
    client: Client<HttpConnector, Full<Bytes>>,
    first: OnceCell<serde_json::Value>,
}

impl App {
    fn from_env() -> anyhow::Result<Self> {
        let base = std::env::var("OPENAI_BASE_URL").context("OPENAI_BASE_URL is not set")?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            key: std::env::var("OPENAI_API_KEY").unwrap_or_default(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            first: OnceCell::new(),
        })
    }

    /// Sends `body` to `$OPENAI_BASE_URL/<path>` with the app's key.
    async fn send(
        &self,
        path: &str,
        body: Bytes,
        mock_headers: &[(header::HeaderName, header::HeaderValue)],
    ) -> anyhow::Result<Response<Incoming>> {
        let mut req = Request::post(format!("{}/{}", self.base, path.trim_start_matches('/')))
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, format!("Bearer {}", self.key));
        for (name, value) in mock_headers {
            req = req.header(name, value);
        }
        let resp = self.client.request(req.body(Full::new(body))?).await?;
        Ok(resp)
    }

    async fn chat_once(&self) -> serde_json::Value {
        let body = json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello from the e2e app"}]});
        match self
            .send("chat/completions", Bytes::from(body.to_string()), &[])
            .await
        {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let text = match resp.into_body().collect().await {
                    Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                    Err(e) => format!("body error: {e}"),
                };
                json!({"status": status, "body": text})
            }
            Err(e) => json!({"status": 0, "body": format!("{e:#}")}),
        }
    }

    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
        let path = req.uri().path().to_string();
        let resp = match (req.method(), path.as_str()) {
            (&Method::GET, "/first") => match self.first.get() {
                Some(v) => json_response(StatusCode::OK, v),
                None => json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({"status": null})),
            },
            (&Method::GET, "/env") => {
                let var = |k: &str| std::env::var(k).ok();
                json_response(
                    StatusCode::OK,
                    &json!({
                        "OPENAI_BASE_URL": var("OPENAI_BASE_URL"),
                        "ANTHROPIC_BASE_URL": var("ANTHROPIC_BASE_URL"),
                        "OPENAI_API_KEY_SET": var("OPENAI_API_KEY").is_some(),
                    }),
                )
            }
            (&Method::POST, p) if p.starts_with("/call/") => {
                let mock_headers: Vec<_> = req
                    .headers()
                    .iter()
                    .filter(|(n, _)| n.as_str().starts_with("x-mock-"))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                let target = p["/call/".len()..].to_string();
                let body = match req.into_body().collect().await {
                    Ok(b) => b.to_bytes(),
                    Err(e) => return Ok(text(StatusCode::BAD_REQUEST, &e.to_string())),
                };
                match self.send(&target, body, &mock_headers).await {
                    Ok(up) => {
                        let (parts, body) = up.into_parts();
                        let mut resp = Response::new(body.boxed());
                        *resp.status_mut() = parts.status;
                        for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
                            if let Some(v) = parts.headers.get(&name) {
                                resp.headers_mut().insert(name, v.clone());
                            }
                        }
                        resp
                    }
                    Err(e) => text(StatusCode::BAD_GATEWAY, &format!("{e:#}")),
                }
            }
            _ => text(StatusCode::NOT_FOUND, "no such route"),
        };
        Ok(resp)
    }
}

fn json_response(status: StatusCode, v: &serde_json::Value) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(v.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from(s.to_string()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r
}

async fn serve(app: Arc<App>, listen: SocketAddr) -> anyhow::Result<()> {
    let first = app.chat_once().await;
    eprintln!("first request: status {}", first["status"]);
    let _ = app.first.set(first);

    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    eprintln!("listening on {listen}");
    let graceful = GracefulShutdown::new();
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let app = app.clone();
                let svc = hyper::service::service_fn(move |req| app.clone().handle(req));
                let conn = builder.serve_connection(TokioIo::new(stream), svc).into_owned();
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = term.recv() => break,
        }
    }
    eprintln!("SIGTERM: finishing calls in flight");
    drop(listener);
    graceful.shutdown().await;
    eprintln!("done");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let app = Arc::new(App::from_env()?);
    match args.mode.unwrap_or(Mode::Serve {
        listen: "0.0.0.0:8080".parse()?,
    }) {
        Mode::Serve { listen } => serve(app, listen).await,
        Mode::Once => {
            let r = app.chat_once().await;
            println!("{r}");
            if (200..300).contains(&r["status"].as_u64().unwrap_or(0)) {
                Ok(())
            } else {
                anyhow::bail!("request failed with status {}", r["status"])
            }
        }
    }
}
