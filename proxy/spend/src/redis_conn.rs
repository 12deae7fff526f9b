//! One way to reach Redis, for every store that keeps state there (budget
//! counters, cache entries, the operator's spend reads): a lazily
//! connecting, self-reconnecting multiplexed connection — to one Redis or
//! to a Redis Cluster — whose calls are bounded by the configured timeout,
//! so the proxy starts and serves while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};
use tokio::sync::Mutex;

/// A connection to one Redis (or a primary behind a load balancer), or to
/// a Redis Cluster. Either way calls go over multiplexed connections and
/// reconnect by themselves; a cluster's client also follows its slots
/// (`MOVED`, `ASK`) and failovers. Cheap to clone.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(LazyCluster),
}

/// A cluster connection made at the first call (so the proxy starts while
/// the cluster is down) and made again after a call finds it broken.
#[derive(Clone)]
pub struct LazyCluster(Arc<ClusterState>);

struct ClusterState {
    client: ClusterClient,
    conn: Mutex<Option<ClusterConnection>>,
    timeout: Duration,
}

impl LazyCluster {
    async fn get(&self) -> redis::RedisResult<ClusterConnection> {
        let mut c = self.0.conn.lock().await;
        if let Some(conn) = c.as_ref() {
            return Ok(conn.clone());
        }
        let conn = tokio::time::timeout(self.0.timeout, self.0.client.get_async_connection())
            .await
            .map_err(|_| {
                redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting to the cluster",
                ))
            })??;
        *c = Some(conn.clone());
        Ok(conn)
    }

    /// Drops a connection whose call failed at the transport: the next
    /// call connects again (the client itself reconnects to nodes, but
    /// not when every seed was down when it started).
    async fn reset_after(&self, e: &redis::RedisError) {
        if e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            *self.0.conn.lock().await = None;
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(lazy) => Box::pin(async move {
                let mut conn = lazy.get().await?;
                let r = conn.req_packed_command(cmd).await;
                if let Err(e) = &r {
                    lazy.reset_after(e).await;
                }
                r
            }),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(lazy) => Box::pin(async move {
                let mut conn = lazy.get().await?;
                let r = conn.req_packed_commands(pipeline, offset, count).await;
                if let Err(e) = &r {
                    lazy.reset_after(e).await;
                }
                r
            }),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(_) => 0,
        }
    }
}

/// The connection for `settings`, with `password` (from its Secret file).
/// Errors are invalid settings; nothing is connected yet.
pub fn connect_lazy(
    settings: &tollgate_config::RedisStore,
    password: Option<&str>,
) -> Result<Conn, String> {
    if settings.cluster {
        let seeds = std::iter::once(settings.url.as_str())
            .chain(settings.nodes.iter().map(String::as_str))
            .map(|u| u.into_connection_info().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut b = redis::cluster::ClusterClientBuilder::new(seeds)
            .connection_timeout(settings.timeout)
            .response_timeout(settings.timeout)
            .retries(1);
        if let Some(p) = password {
            b = b.password(p);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        return Ok(Conn::Cluster(LazyCluster(Arc::new(ClusterState {
            client,
            conn: Mutex::new(None),
            timeout: settings.timeout,
        }))));
    }
    let mut info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    if let Some(p) = password {
        let redis = info.redis_settings().clone().set_password(p);
        info = info.set_redis_settings(redis);
    }
    let client = redis::Client::open(info).map_err(|e| e.to_string())?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(settings.timeout))
        .set_response_timeout(Some(settings.timeout))
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(10))
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map(Conn::Single)
        .map_err(|e| e.to_string())
}

/// True when a call that failed with `e` may still have run in Redis, its
/// reply lost: the client's response timeout or a connection dropped
/// mid-call (a refused connection sent nothing).
pub fn reply_lost(e: &redis::RedisError) -> bool {
    e.is_timeout() || (!e.is_connection_refusal() && (e.is_io_error() || e.is_connection_dropped()))
}

/// Redis' error kind and detail; the URL and password never appear in it.
pub fn describe(e: &redis::RedisError) -> String {
    if e.is_timeout() {
        "timeout".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_io_error() || e.is_connection_dropped() {
        "connection lost".into()
    } else {
        format!("{:?}: {}", e.kind(), e.detail().unwrap_or("(no detail)"))
    }
}
