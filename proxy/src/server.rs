//! Accept loops for the data and admin listeners, with graceful drain.
//!
//! Connections speak HTTP/1.1 or h2c (detected per connection). On shutdown
//! the listener closes, idle connections are told to go away, and in-flight
//! requests and streams get until the drain deadline to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use prometheus::{IntCounter, IntGauge};
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

use crate::body::ResponseBody;

/// A worker's connection counters (data listener only).
pub(crate) struct Connections {
    pub(crate) accepted: IntCounter,
    pub(crate) open: IntGauge,
}

/// Serves `handler` on `listener` until `stop` is cancelled, then waits up
/// to `drain` for open connections to finish. Returns true if everything
/// drained in time.
pub(crate) async fn serve<H, F>(
    listener: TcpListener,
    handler: H,
    header_read_timeout: impl Fn() -> Duration,
    stop: CancellationToken,
    drain: Duration,
    counted: Option<Connections>,
) -> bool
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly
                    // instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout());
        builder.http2().timer(TokioTimer::new());
        let handler = handler.clone();
        // The request's future is boxed: hyper keeps the allocation it
        // stores a connection's in-flight future in for as long as the
        // connection lives (a stream's whole length), so that allocation
        // holds a pointer, not the whole request pipeline's state (~5.5 KB).
        let service = service_fn(move |req| {
            let h = handler.clone();
            async move { Ok::<_, Infallible>(Box::pin(h(req)).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        let open = counted.as_ref().map(|c| {
            c.accepted.inc();
            c.open.inc();
            c.open.clone()
        });
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            if let Some(open) = open {
                open.dec();
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => true,
        _ = tokio::time::sleep(drain) => false,
    }
}

/// Binds a listener on the current runtime, naming the address on failure.
/// With `reuse_port`, other listeners (one per per-core worker) may bind the
/// same address and the kernel spreads new connections over them.
pub(crate) fn bind(addr: SocketAddr, reuse_port: bool, what: &str) -> std::io::Result<TcpListener> {
    let socket = bound(addr, reuse_port, what)?;
    socket.listen(1024).map_err(|e| named(e, addr, what))
}

/// Fails, as a listener's bind would, when something already listens on
/// `addr`; binds nothing (the socket is closed before it listens).
pub(crate) fn probe(addr: SocketAddr, what: &str) -> std::io::Result<()> {
    bound(addr, false, what).map(drop)
}

/// A socket bound to `addr`, not yet listening.
fn bound(addr: SocketAddr, reuse_port: bool, what: &str) -> std::io::Result<TcpSocket> {
    let named = |e| named(e, addr, what);
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(named)?;
    // As tokio's `TcpListener::bind`: a restarted proxy can listen again
    // while the old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(named)?;
    if reuse_port {
        socket.set_reuseport(true).map_err(named)?;
    }
    socket.bind(addr).map_err(named)?;
    Ok(socket)
}

/// `e`, saying which address could not be listened on and what for.
fn named(e: std::io::Error, addr: SocketAddr, what: &str) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}"))
}

/// Convenience for handlers that need shared state.
pub(crate) fn with_state<S, F, Fut>(
    state: Arc<S>,
    f: F,
) -> impl Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    move |req| f(state.clone(), req)
}
