//! A scripted API server on loopback for unit tests: each request waits
//! for the test to answer it, so a test decides what the operator's client
//! sees and when (a list held, a watch ended, a connection cut).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

type Body = BoxBody<Bytes, std::io::Error>;

/// The server, and a client that talks to it.
pub(crate) struct FakeApi {
    pub(crate) client: kube::Client,
    requests: mpsc::UnboundedReceiver<Pending>,
}

/// A request waiting for its answer.
pub(crate) struct Pending {
    pub(crate) uri: Uri,
    reply: oneshot::Sender<Response<Body>>,
}

/// The events of an answered watch. Dropping it ends the watch as the API
/// server does at its timeout; [`Events::cut`] ends it as a killed server.
pub(crate) struct Events(mpsc::UnboundedSender<Result<Bytes, std::io::Error>>);

impl FakeApi {
    pub(crate) async fn start() -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, requests) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let tx = tx.clone();
                        async move {
                            let (reply, answer) = oneshot::channel();
                            let _ = tx.send(Pending {
                                uri: req.uri().clone(),
                                reply,
                            });
                            Ok::<_, Infallible>(answer.await.unwrap_or_else(|_| {
                                json_response(StatusCode::SERVICE_UNAVAILABLE, &json!({}))
                            }))
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        let config = kube::Config::new(url.parse().unwrap());
        FakeApi {
            client: kube::Client::try_from(config).unwrap(),
            requests,
        }
    }

    /// The next request the client sends (within 10 s).
    pub(crate) async fn next(&mut self) -> Pending {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("server running")
    }
}

impl Pending {
    pub(crate) fn is_watch(&self) -> bool {
        self.query().split('&').any(|p| p == "watch=true")
    }

    pub(crate) fn query(&self) -> &str {
        self.uri.query().unwrap_or_default()
    }

    /// Answers 200 with `body`.
    pub(crate) fn json(self, body: Value) {
        let _ = self.reply.send(json_response(StatusCode::OK, &body));
    }

    /// Answers a watch: 200, then the events sent through the result.
    pub(crate) fn watch(self) -> Events {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let frames = futures_util::stream::poll_fn(move |cx| {
            rx.poll_recv(cx)
                .map(|item: Option<Result<Bytes, std::io::Error>>| item.map(|r| r.map(Frame::data)))
        });
        let response = Response::builder()
            .header("content-type", "application/json")
            .body(StreamBody::new(frames).boxed())
            .unwrap();
        let _ = self.reply.send(response);
        Events(tx)
    }
}

impl Events {
    /// A watch event: `kind` `ADDED`, `MODIFIED`, `DELETED` or `ERROR`.
    pub(crate) fn send(&self, kind: &str, object: Value) {
        let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
        line.push(b'\n');
        let _ = self.0.send(Ok(Bytes::from(line)));
    }

    /// The connection dropped mid-response, as when the server is killed.
    pub(crate) fn cut(self) {
        let _ = self.0.send(Err(std::io::Error::other("killed")));
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(serde_json::to_vec(body).unwrap()))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .unwrap()
}

/// Polls `f` every 10 ms until it holds, failing after 10 s.
pub(crate) async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: not within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
