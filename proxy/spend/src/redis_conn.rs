//! One way to reach Redis, for every store that keeps state there (budget
//! counters, cache entries, the operator's spend reads): a lazily
//! connecting, self-reconnecting multiplexed connection — to one Redis, to
//! the master Sentinels name, or to a Redis Cluster — over TCP or TLS, as
//! an ACL user, whose calls are bounded by the configured timeout, so the
//! proxy starts and serves while Redis is down.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, Value};
use tokio::sync::Mutex;

use crate::redis_auth::RedisSecrets;

/// A connection to one Redis (or a primary behind a load balancer), to
/// the master of Sentinel-managed Redis, or to a Redis Cluster. Either way calls go over multiplexed connections and
/// reconnect by themselves; a cluster's client also follows its slots
/// (`MOVED`, `ASK`) and failovers. Cheap to clone.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(LazyCluster),
    Sentinel(LazySentinel),
}

/// A connection to the master the Sentinels name, asked for at the first
/// call and again after a call fails at the transport or is refused as
/// `READONLY` (the old master, demoted to a replica by a failover).
#[derive(Clone)]
pub struct LazySentinel(Arc<SentinelState>);

struct SentinelState {
    sentinels: Mutex<redis::sentinel::SentinelClient>,
    conn: Mutex<Option<MultiplexedConnection>>,
    timeout: Duration,
}

impl LazySentinel {
    async fn get(&self) -> redis::RedisResult<MultiplexedConnection> {
        let mut c = self.0.conn.lock().await;
        if let Some(conn) = c.as_ref() {
            return Ok(conn.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.0.timeout))
            .set_response_timeout(Some(self.0.timeout));
        let conn = tokio::time::timeout(self.0.timeout, async {
            let client = self.0.sentinels.lock().await.async_get_client().await?;
            client
                .get_multiplexed_async_connection_with_config(&config)
                .await
        })
        .await
        .map_err(|_| {
            redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "asking the Sentinels for the master",
            ))
        })??;
        *c = Some(conn.clone());
        Ok(conn)
    }

    async fn reset_after(&self, e: &redis::RedisError) {
        let demoted = e.code() == Some("READONLY");
        if demoted || e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            *self.0.conn.lock().await = None;
        }
    }
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
            Conn::Sentinel(lazy) => Box::pin(async move {
                let mut conn = lazy.get().await?;
                let r = conn.req_packed_command(cmd).await;
                if let Err(e) = &r {
                    lazy.reset_after(e).await;
                }
                r
            }),
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
            Conn::Sentinel(lazy) => Box::pin(async move {
                let mut conn = lazy.get().await?;
                let r = conn.req_packed_commands(pipeline, offset, count).await;
                if let Err(e) = &r {
                    lazy.reset_after(e).await;
                }
                r
            }),
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
            Conn::Cluster(_) | Conn::Sentinel(_) => 0,
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
    let seeds = || {
        std::iter::once(settings.url.as_str())
            .chain(settings.nodes.iter().map(String::as_str))
            .map(|u| u.into_connection_info().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()
    };
    let certs = secrets.certificates();
    let password = secrets.password.as_deref();
    let username = settings.username.as_deref();
    if settings.cluster {
        let mut b = redis::cluster::ClusterClientBuilder::new(seeds()?)
            .connection_timeout(settings.timeout)
            .response_timeout(settings.timeout)
            .retries(1);
        if let Some(u) = username {
            b = b.username(u);
        }
        if let Some(p) = password {
            b = b.password(p);
        }
        if let Some(c) = certs {
            b = b.certs(c);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        return Ok(Conn::Cluster(LazyCluster(Arc::new(ClusterState {
            client,
            conn: Mutex::new(None),
            timeout: settings.timeout,
        }))));
    }
    if let Some(master) = &settings.sentinel_master {
        let sentinels = seeds()?;
        // The master's own settings: its user, password and TLS, and the
        // database of `url`. The Sentinels are asked without a password,
        // over TLS (with the same CA and client certificate) when their
        // URLs are `rediss://`.
        let db = sentinels[0].redis_settings().db();
        let tls = matches!(sentinels[0].addr(), redis::ConnectionAddr::TcpTls { .. });
        let mut b = redis::sentinel::SentinelClientBuilder::new(
            sentinels.into_iter().map(|s| s.addr().clone()),
            master,
            redis::sentinel::SentinelServerType::Master,
        )
        .map_err(|e| e.to_string())?
        .set_client_to_redis_db(db);
        if let Some(u) = username {
            b = b.set_client_to_redis_username(u);
        }
        if let Some(p) = password {
            b = b.set_client_to_redis_password(p);
        }
        if tls {
            b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
        }
        if let Some(c) = certs {
            b = b
                .set_client_to_redis_certificates(c.clone())
                .set_client_to_sentinel_certificates(c);
        }
        let client = b.build().map_err(|e| e.to_string())?;
        return Ok(Conn::Sentinel(LazySentinel(Arc::new(SentinelState {
            sentinels: Mutex::new(client),
            conn: Mutex::new(None),
            timeout: settings.timeout,
        }))));
    }
    let mut info = settings
        .url
        .as_str()
        .into_connection_info()
        .map_err(|e| e.to_string())?;
    let mut redis = info.redis_settings().clone();
    if let Some(u) = username {
        redis = redis.set_username(u);
    }
    if let Some(p) = password {
        redis = redis.set_password(p);
    }
    info = info.set_redis_settings(redis);
    let client = match certs {
        Some(c) => redis::Client::build_with_tls(info, c),
        None => redis::Client::open(info),
    }
    .map_err(|e| e.to_string())?;
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
