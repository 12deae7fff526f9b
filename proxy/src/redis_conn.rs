//! One way to reach Redis, for every store that keeps state there (budget
//! counters, cache entries): a lazily connecting, self-reconnecting
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
