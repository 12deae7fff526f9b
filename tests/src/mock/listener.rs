//! The accept loop: TCP (or TLS) connections served by hyper's automatic
//! HTTP/1.1 + HTTP/2 (h2c or ALPN h2) builder, with a graceful stop.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::router;
use super::state::State;

/// How long a stop waits for in-flight responses before cutting them off.
const DRAIN: Duration = Duration::from_secs(1);

/// Backs off after an accept error (such as running out of descriptors).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(20);

pub(crate) async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http1().timer(TokioTimer::new());
    http.http2().timer(TokioTimer::new());
    let http = Arc::new(http);
    let graceful = GracefulShutdown::new();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nodelay(true);
                    let task = connection(tcp, tls.clone(), http.clone(), state.clone(), graceful.watcher());
                    conns.spawn(task);
                }
                Err(_) => tokio::time::sleep(ACCEPT_BACKOFF).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN, graceful.shutdown()).await;
    conns.shutdown().await;
}

async fn connection(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    http: Arc<auto::Builder<TokioExecutor>>,
    state: Arc<State>,
    watcher: Watcher,
) {
    let service = service_fn(move |req| router::serve(state.clone(), req));
    // Connection errors (resets, bad handshakes, our own deliberate aborts)
    // end that connection only; there is nobody to report them to.
    match tls {
        None => {
            let conn = http.serve_connection(TokioIo::new(tcp), service);
            let _ = watcher.watch(conn).await;
        }
        Some(acceptor) => {
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let conn = http.serve_connection(TokioIo::new(stream), service);
            let _ = watcher.watch(conn).await;
        }
    }
}
