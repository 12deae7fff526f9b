//! One way to reach Redis, for every store that keeps state there (budget
//! counters, cache entries, the operator's spend reads): a lazily
//! connecting, self-reconnecting multiplexed connection — to one Redis, to
//! the master Sentinels name, or to a Redis Cluster — over TCP or TLS, as
//! an ACL user, whose calls are bounded by the configured timeout, so the
//! proxy starts and serves while Redis is down.
//!
//! Connections: one per store to its Redis, to the Sentinels' master, or
//! to every node of a Cluster (replicas included), whatever the traffic
//! (calls share it). None is kept to the Sentinels, which are asked only
//! when the store connects, each over a connection closed after the
//! answer, nor to the replica behind them. Each is named
//! ([`name_connections`]) so that `CLIENT LIST` shows whose it is.

use std::sync::Arc;

use redis::aio::ConnectionLike;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};

use crate::redis_auth::RedisSecrets;

mod cluster;
mod lazy;
mod name;
mod node;

pub use name::name_connections;

use self::cluster::Cluster;
use self::lazy::Lazy;
use self::node::Node;

/// A connection to one Redis (or a primary behind a load balancer), to
/// the master of Sentinel-managed Redis, or to a Redis Cluster. Calls go
/// over multiplexed connections that reconnect by themselves; a cluster's
/// client also follows its slots (`MOVED`, `ASK`) and failovers. Cheap to
/// clone: clones share the connection.
#[derive(Clone)]
pub struct Conn(Inner);

#[derive(Clone)]
enum Inner {
    Node(Lazy<Node>),
    Cluster(Lazy<Cluster>),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match &mut self.0 {
            Inner::Node(c) => c.req_packed_command(cmd),
            Inner::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match &mut self.0 {
            Inner::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Inner::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.0 {
            Inner::Node(c) => c.get_db(),
            Inner::Cluster(c) => c.get_db(),
        }
    }
}

/// The connection for `settings`, authenticated with `secrets` (its ACL
/// user's password; over TLS, the CA and client certificate). Errors are
/// invalid settings; nothing is connected yet.
pub fn connect_lazy(
    settings: &tollgate_config::RedisStore,
    secrets: &RedisSecrets,
) -> Result<Conn, String> {
    let inner = if settings.cluster {
        let seeds = std::iter::once(settings.url.as_str())
            .chain(settings.nodes.iter().map(String::as_str))
            .map(|u| u.into_connection_info().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut b = redis::cluster::ClusterClientBuilder::new(seeds)
            .connection_timeout(settings.timeout)
            .response_timeout(settings.timeout)
            .retries(1);
        if let Some(u) = &settings.username {
            b = b.username(u);
        }
        if let Some(p) = &secrets.password {
            b = b.password(p);
        }
        if let Some(c) = secrets.certificates() {
            b = b.certs(c);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        Inner::Cluster(Lazy::new(Cluster(client), settings.timeout))
    } else if settings.sentinel_master.is_some() {
        Inner::Node(Lazy::new(
            Node::sentinels(settings, secrets)?,
            settings.timeout,
        ))
    } else {
        Inner::Node(Lazy::new(
            Node::direct(settings, secrets)?,
            settings.timeout,
        ))
    };
    Ok(Conn(inner))
}

/// True when a call that failed with `e` may still have run in Redis, its
/// reply lost: the client's response timeout or a connection dropped
/// mid-call (a refused connection sent nothing).
pub fn reply_lost(e: &redis::RedisError) -> bool {
    e.is_timeout() || (!e.is_connection_refusal() && (e.is_io_error() || e.is_connection_dropped()))
}

/// Redis' error kind and detail; the URL, password and certificates never
/// appear in it. A TLS handshake that failed says why (an unknown CA, a
/// client certificate the server asked for and did not get); a refused
/// password says so.
pub fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if let Some(tls) = tls_failure(e) {
        format!("TLS: {tls}")
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".into()
    } else if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("WRONGPASS" | "NOAUTH"))
    {
        format!(
            "authentication failed (wrong user or password?): {}",
            e.detail().unwrap_or("(no detail)")
        )
    } else {
        format!("{:?}: {}", e.kind(), e.detail().unwrap_or("(no detail)"))
    }
}

/// The TLS error behind `e`: rustls reports a failed handshake or a fatal
/// alert as an I/O error of kind `InvalidData`, whose message names the
/// reason (`invalid peer certificate: UnknownIssuer`, `received fatal
/// alert: CertificateRequired`) and nothing of the keys.
fn tls_failure(e: &redis::RedisError) -> Option<String> {
    // The client keeps the I/O error behind an `Arc<dyn Error>`.
    let source = std::error::Error::source(e)?;
    let io = source
        .downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>()
        .and_then(|inner| inner.downcast_ref::<std::io::Error>())
        .or_else(|| source.downcast_ref::<std::io::Error>())?;
    (io.kind() == std::io::ErrorKind::InvalidData).then(|| io.to_string())
}

#[cfg(test)]
mod tests;
