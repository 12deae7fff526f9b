//! A connection made at the first call, so that the proxy starts and
//! serves while Redis is down, and made again after a call finds it
//! broken. Concurrent calls share it (it multiplexes); while it is being
//! made they wait for it, each within its own timeout.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};
use tokio::sync::Mutex;

/// How to make the connection a [`Lazy`] holds.
pub(super) trait Connector: Send + Sync + 'static {
    type Conn: ConnectionLike + Clone + Send + Sync + 'static;

    /// What making it does, for the error when that times out.
    fn connecting(&self) -> &'static str;

    fn connect(&self) -> impl Future<Output = RedisResult<Self::Conn>> + Send;

    /// The database the connection uses.
    fn db(&self) -> i64 {
        0
    }
}

pub(super) struct Lazy<C: Connector>(Arc<State<C>>);

impl<C: Connector> Clone for Lazy<C> {
    fn clone(&self) -> Self {
        Lazy(self.0.clone())
    }
}

struct State<C: Connector> {
    connector: C,
    conn: Mutex<Option<C::Conn>>,
    timeout: Duration,
}

impl<C: Connector> Lazy<C> {
    /// Nothing is connected until the first call; making the connection
    /// is bounded by `timeout`.
    pub(super) fn new(connector: C, timeout: Duration) -> Lazy<C> {
        Lazy(Arc::new(State {
            connector,
            conn: Mutex::new(None),
            timeout,
        }))
    }

    async fn get(&self) -> RedisResult<C::Conn> {
        let mut slot = self.0.conn.lock().await;
        if let Some(conn) = slot.as_ref() {
            return Ok(conn.clone());
        }
        let conn = tokio::time::timeout(self.0.timeout, self.0.connector.connect())
            .await
            .map_err(|_| {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    self.0.connector.connecting(),
                ))
            })??;
        *slot = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection after a call that failed at the transport
    /// (timed out included), or that a demoted master refused as
    /// `READONLY`: the next call
    /// connects again (asking the Sentinels again, or the cluster's seeds
    /// when every node was down). The old connection closes with its last
    /// call in flight.
    async fn after<T>(&self, r: &RedisResult<T>) {
        let Err(e) = r else { return };
        let demoted = e.code() == Some("READONLY");
        if demoted || e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            *self.0.conn.lock().await = None;
        }
    }
}

impl<C: Connector> ConnectionLike for Lazy<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let mut conn = self.get().await?;
            let r = conn.req_packed_command(cmd).await;
            self.after(&r).await;
            r
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let mut conn = self.get().await?;
            let r = conn.req_packed_commands(pipeline, offset, count).await;
            self.after(&r).await;
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.0.connector.db()
    }
}
