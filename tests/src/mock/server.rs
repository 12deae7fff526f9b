//! [`MockServer`]: start, inspect and stop a mock provider.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::config::MockConfig;
use super::listener::accept_loop;
use super::record::RecordedRequest;
use super::state::State;
use super::switches::Switches;
use super::tls;

/// A running mock provider. Dropping it stops the accept loop too;
/// [`shutdown`](Self::shutdown) also waits for it.
pub struct MockServer {
    addr: SocketAddr,
    ca_pem: Option<String>,
    state: Arc<State>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Starts on `127.0.0.1` with a free port.
    pub async fn start(cfg: MockConfig) -> std::io::Result<MockServer> {
        Self::start_on(cfg, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    pub async fn start_on(cfg: MockConfig, addr: SocketAddr) -> std::io::Result<MockServer> {
        let tls = cfg.tls.then(tls::generate).transpose()?;
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::new(&cfg));
        let (stop, stopped) = watch::channel(false);
        let (acceptor, ca_pem) = match tls {
            Some(t) => (Some(t.acceptor), Some(t.ca_pem)),
            None => (None, None),
        };
        let task = tokio::spawn(accept_loop(listener, acceptor, state.clone(), stopped));
        Ok(MockServer {
            addr,
            ca_pem,
            state,
            stop,
            task: Some(task),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://…` in TLS mode.
    pub fn url(&self) -> String {
        let scheme = if self.ca_pem.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.addr)
    }

    /// PEM of the CA that signed the server certificate (TLS mode only).
    pub fn ca_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// Every API request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.records().clone()
    }

    /// Forgets the recorded requests and the fail-first counters.
    pub fn clear(&self) {
        self.state.clear();
    }

    /// Stops (or resumes) recording; for benchmarks that would otherwise
    /// keep every request body in memory.
    pub fn set_recording(&self, on: bool) {
        self.state.set_recording(on);
    }

    /// Replaces the server-wide switch defaults.
    pub fn set_defaults(&self, s: Switches) {
        self.state.set_defaults(s);
    }

    /// Waits until at least `n` requests were recorded or `timeout` passed,
    /// and returns the records either way.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.wait_for(timeout, |s| s.state.records().len() >= n)
            .await;
        self.requests()
    }

    /// Waits until `cond` holds (checked whenever a request arrives or a
    /// stream starts or ends) or `timeout` passed; returns whether it holds.
    pub async fn wait_for(&self, timeout: Duration, cond: impl Fn(&MockServer) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.state.stats.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if cond(self) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return cond(self);
            }
        }
    }

    /// Streams currently being written.
    pub fn active_streams(&self) -> usize {
        self.state.stats.active.load(Ordering::SeqCst)
    }

    /// Streams whose client went away before the end.
    pub fn cancelled_streams(&self) -> usize {
        self.state.stats.cancelled.load(Ordering::SeqCst)
    }

    /// Streams that ran to their end.
    pub fn completed_streams(&self) -> usize {
        self.state.stats.completed.load(Ordering::SeqCst)
    }

    /// Stops accepting, lets in-flight responses finish for a moment, then
    /// cuts the rest off.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("url", &self.url())
            .finish()
    }
}
