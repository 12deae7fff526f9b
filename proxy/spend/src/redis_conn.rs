//! One way to reach Redis, for every store that keeps state there (budget
//! counters, cache entries, the operator's spend reads): a lazily connecting, self-reconnecting
//! multiplexed connection whose calls are bounded by the configured
//! timeout, so the proxy starts and serves while Redis is down.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::IntoConnectionInfo;

/// The connection for `settings`, with `password` (from its Secret file).
/// Errors are invalid settings; nothing is connected yet.
pub fn connect_lazy(
    settings: &tollgate_config::RedisStore,
    password: Option<&str>,
) -> Result<ConnectionManager, String> {
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
    ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())
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
