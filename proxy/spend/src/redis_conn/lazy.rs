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
    /// The connection, with the number of connections made before it: a
    /// failed call forgets only the connection it ran on.
    conn: Mutex<Slot<C::Conn>>,
    timeout: Duration,
}

struct Slot<T> {
    conn: Option<T>,
    made: u64,
}

impl<C: Connector> Lazy<C> {
    /// Nothing is connected until the first call; making the connection
    /// is bounded by `timeout`.
    pub(super) fn new(connector: C, timeout: Duration) -> Lazy<C> {
        Lazy(Arc::new(State {
            connector,
            conn: Mutex::new(Slot {
                conn: None,
                made: 0,
            }),
            timeout,
        }))
    }

    /// The connection, and which one it is.
    async fn get(&self) -> RedisResult<(C::Conn, u64)> {
        let mut slot = self.0.conn.lock().await;
        if let Some(conn) = slot.conn.as_ref() {
            return Ok((conn.clone(), slot.made));
        }
        let conn = tokio::time::timeout(self.0.timeout, self.0.connector.connect())
            .await
            .map_err(|_| {
                RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    self.0.connector.connecting(),
                ))
            })??;
        slot.made += 1;
        slot.conn = Some(conn.clone());
        Ok((conn, slot.made))
    }

    /// Forgets connection `which` after a call on it failed at the
    /// transport (timed out included), or a demoted master refused it as
    /// `READONLY`: the next call connects again (asking the Sentinels
    /// again, or the cluster's seeds when every node was down). The old
    /// connection closes with its last call in flight. A connection made
    /// since stays: the other calls that were in flight on the broken one
    /// fail too, and each forgetting whatever is current would replace a
    /// healthy connection once per such call.
    async fn after<T>(&self, which: u64, r: &RedisResult<T>) {
        let Err(e) = r else { return };
        let demoted = e.code() == Some("READONLY");
        if demoted || e.is_connection_refusal() || e.is_connection_dropped() || e.is_io_error() {
            let mut slot = self.0.conn.lock().await;
            if slot.made == which {
                slot.conn = None;
            }
        }
    }
}

impl<C: Connector> ConnectionLike for Lazy<C> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (mut conn, which) = self.get().await?;
            let r = conn.req_packed_command(cmd).await;
            self.after(which, &r).await;
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
            let (mut conn, which) = self.get().await?;
            let r = conn.req_packed_commands(pipeline, offset, count).await;
            self.after(which, &r).await;
            r
        })
    }

    fn get_db(&self) -> i64 {
        self.0.connector.db()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;

    /// A connection that fails every call once broken.
    #[derive(Clone)]
    struct Fake {
        broken: Arc<AtomicBool>,
    }

    impl ConnectionLike for Fake {
        fn req_packed_command<'a>(&'a mut self, _: &'a Cmd) -> RedisFuture<'a, Value> {
            let broken = self.broken.load(Ordering::SeqCst);
            Box::pin(async move {
                if broken {
                    Err(std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset").into())
                } else {
                    Ok(Value::Okay)
                }
            })
        }

        fn req_packed_commands<'a>(
            &'a mut self,
            _: &'a Pipeline,
            _: usize,
            _: usize,
        ) -> RedisFuture<'a, Vec<Value>> {
            Box::pin(async { Ok(Vec::new()) })
        }

        fn get_db(&self) -> i64 {
            0
        }
    }

    /// Counts connections and hands out the last one made.
    #[derive(Default)]
    struct Maker {
        made: AtomicUsize,
        last: std::sync::Mutex<Option<Arc<AtomicBool>>>,
    }

    impl Maker {
        /// Breaks the connection made last.
        fn break_last(&self) {
            let last = self.last.lock().unwrap();
            last.as_ref().unwrap().store(true, Ordering::SeqCst);
        }
    }

    impl Connector for Arc<Maker> {
        type Conn = Fake;

        fn connecting(&self) -> &'static str {
            "connecting to the fake"
        }

        async fn connect(&self) -> RedisResult<Fake> {
            self.made.fetch_add(1, Ordering::SeqCst);
            let broken = Arc::new(AtomicBool::new(false));
            *self.last.lock().unwrap() = Some(broken.clone());
            Ok(Fake { broken })
        }
    }

    #[tokio::test]
    async fn calls_that_fail_on_a_broken_connection_replace_it_once() {
        let maker = Arc::new(Maker::default());
        let mut lazy = Lazy::new(maker.clone(), Duration::from_secs(1));
        let ping = redis::cmd("PING");
        lazy.req_packed_command(&ping).await.unwrap();
        assert_eq!(maker.made.load(Ordering::SeqCst), 1);
        // Three calls in flight on the first connection when it breaks.
        let (a, which) = lazy.get().await.unwrap();
        let in_flight = [a.clone(), a.clone(), a];
        maker.break_last();
        let mut failures = Vec::new();
        for mut conn in in_flight {
            failures.push(conn.req_packed_command(&ping).await);
        }
        // The first failure is seen, a new connection is made and used...
        lazy.after(which, &failures[0]).await;
        lazy.req_packed_command(&ping).await.unwrap();
        assert_eq!(maker.made.load(Ordering::SeqCst), 2);
        // ...and the later failures of the old one leave it alone.
        for r in &failures[1..] {
            assert!(r.is_err());
            lazy.after(which, r).await;
        }
        lazy.req_packed_command(&ping).await.unwrap();
        assert_eq!(maker.made.load(Ordering::SeqCst), 2, "one replacement");
        // A failure on the current connection replaces it.
        maker.break_last();
        assert!(lazy.req_packed_command(&ping).await.is_err());
        lazy.req_packed_command(&ping).await.unwrap();
        assert_eq!(maker.made.load(Ordering::SeqCst), 3);
    }
}
