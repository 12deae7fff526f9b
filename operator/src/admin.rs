//! The admin listener, off the webhook path: `/metrics`, `/healthz`
//! (the process runs), `/readyz` (the webhooks' watch caches are current:
//! a complete list in, and the watch that follows it open, see
//! [`crate::cache`]; and there is a certificate to serve).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::context::Stores;
use crate::metrics::Metrics;
use crate::webhook::tls::CertStore;

/// Serves the admin endpoints on `listener` until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    stores: Arc<Stores>,
    certs: Arc<CertStore>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        let stores = stores.clone();
        let certs = certs.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let metrics = metrics.clone();
                let stores = stores.clone();
                let certs = certs.clone();
                async move { Ok::<_, Infallible>(answer(&req, &metrics, &stores, &certs)) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

fn answer(
    req: &Request<Incoming>,
    metrics: &Metrics,
    stores: &Stores,
    certs: &CertStore,
) -> Response<Full<Bytes>> {
    let (status, body) = match req.uri().path() {
        "/metrics" => (StatusCode::OK, metrics.render()),
        "/healthz" => (StatusCode::OK, "ok\n".into()),
        "/readyz" if !certs.loaded() => (
            StatusCode::SERVICE_UNAVAILABLE,
            "no webhook certificate yet (waiting for its Secret)\n".into(),
        ),
        "/readyz" if stores.synced() => (StatusCode::OK, "ready\n".into()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "watch caches not synced (the webhooks answer from live reads)\n".into(),
        ),
        _ => (StatusCode::NOT_FOUND, "not found\n".into()),
    };
    Response::builder()
        .status(status)
        .header("content-type", "text/plain; version=0.0.4")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}
