//! The shared store: entries in Redis under `{prefix}:cache:{key}` with the
//! entry's TTL, so every replica using the same Redis serves them. Every
//! call is bounded by the configured timeout; any failure is a miss (or a
//! skipped store), never a failed request.

use std::time::Duration;

use tollgate_spend::redis_conn::{describe, Conn};
use tollgate_spend::RedisSecrets;

use super::entry::Entry;
use super::key::Key;
use super::CacheError;

#[derive(Clone)]
pub(super) struct RedisCache {
    settings: tollgate_config::RedisStore,
    /// The password and TLS files' contents it was made with.
    secrets: RedisSecrets,
    conn: Conn,
}

impl RedisCache {
    /// Prepares a lazy connection: the proxy starts while Redis is down.
    pub(super) fn open(
        settings: &tollgate_config::RedisStore,
        secrets: &RedisSecrets,
    ) -> Result<RedisCache, CacheError> {
        let conn = tollgate_spend::redis_conn::connect_lazy(settings, secrets)
            .map_err(CacheError::RedisConfig)?;
        Ok(RedisCache {
            settings: settings.clone(),
            secrets: secrets.clone(),
            conn,
        })
    }

    /// True when a reload can keep this connection.
    pub(super) fn same(
        &self,
        settings: &tollgate_config::RedisStore,
        secrets: &RedisSecrets,
    ) -> bool {
        self.settings == *settings && self.secrets == *secrets
    }

    /// The connection and what it was made from, for the shared semantic
    /// index.
    pub(super) fn link(&self) -> super::semantic::shared::Link<'_> {
        super::semantic::shared::Link {
            settings: &self.settings,
            secrets: &self.secrets,
            conn: &self.conn,
        }
    }

    fn redis_key(&self, key: &Key) -> String {
        format!("{}:cache:{}", self.settings.key_prefix, key.hex())
    }

    pub(super) async fn get(&self, key: &Key) -> Result<Option<Entry>, CacheError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(self.redis_key(key)).to_owned();
        let v: Option<Vec<u8>> = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(v.and_then(|b| Entry::from_json(&b)))
    }

    pub(super) async fn put(
        &self,
        key: &Key,
        entry: &Entry,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(self.redis_key(key))
            .arg(entry.to_json())
            .arg("PX")
            .arg(ttl.as_millis().max(1) as u64)
            .to_owned();
        let _: () = self.bounded(cmd.query_async(&mut conn)).await?;
        Ok(())
    }

    async fn bounded<T>(
        &self,
        fut: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        match tokio::time::timeout(self.settings.timeout, fut).await {
            Err(_) => Err(CacheError::Timeout(self.settings.timeout)),
            Ok(Err(e)) => Err(CacheError::Redis(describe(&e))),
            Ok(Ok(v)) => Ok(v),
        }
    }
}
