//! The connection to one Redis (or a primary behind a load balancer), or
//! to the master the Sentinels name.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{IntoConnectionInfo, RedisError, RedisResult};
use tollgate_config::RedisStore;

use super::lazy::Connector;
use crate::redis_auth::RedisSecrets;

pub(super) struct Node {
    target: Target,
    timeout: Duration,
    db: i64,
}

enum Target {
    Direct(redis::Client),
    /// Asked at each connect: the first, and every one after a failover.
    Sentinels {
        settings: RedisStore,
        secrets: RedisSecrets,
    },
}

impl Node {
    /// The Redis of `settings.url`, as its ACL user, over TLS with the
    /// CA and client certificate of `secrets` for `rediss://`.
    pub(super) fn direct(settings: &RedisStore, secrets: &RedisSecrets) -> Result<Node, String> {
        let mut info = settings
            .url
            .as_str()
            .into_connection_info()
            .map_err(|e| e.to_string())?;
        let mut redis = info.redis_settings().clone();
        if let Some(u) = &settings.username {
            redis = redis.set_username(u);
        }
        if let Some(p) = &secrets.password {
            redis = redis.set_password(p);
        }
        let db = redis.db();
        info = info.set_redis_settings(redis);
        let client = match secrets.certificates() {
            Some(c) => redis::Client::build_with_tls(info, c),
            None => redis::Client::open(info),
        }
        .map_err(|e| e.to_string())?;
        Ok(Node {
            target: Target::Direct(client),
            timeout: settings.timeout,
            db,
        })
    }

    /// The master the Sentinels of `settings.url` and `settings.nodes`
    /// know as `settings.sentinel_master`.
    pub(super) fn sentinels(settings: &RedisStore, secrets: &RedisSecrets) -> Result<Node, String> {
        let (_, db) = sentinel_client(settings, secrets)?;
        Ok(Node {
            target: Target::Sentinels {
                settings: settings.clone(),
                secrets: secrets.clone(),
            },
            timeout: settings.timeout,
            db,
        })
    }
}

/// A client that asks the Sentinels for the master, and the database of
/// `url`. The master is reached with its own settings: its user, password
/// and TLS. The Sentinels are asked without a password, over TLS (with the
/// same CA and client certificate) when their URLs are `rediss://`.
fn sentinel_client(
    settings: &RedisStore,
    secrets: &RedisSecrets,
) -> Result<(SentinelClient, i64), String> {
    let sentinels = std::iter::once(settings.url.as_str())
        .chain(settings.nodes.iter().map(String::as_str))
        .map(|u| u.into_connection_info().map_err(|e| e.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let master = settings.sentinel_master.as_deref().unwrap_or_default();
    let db = sentinels[0].redis_settings().db();
    let tls = matches!(sentinels[0].addr(), redis::ConnectionAddr::TcpTls { .. });
    let mut b = SentinelClientBuilder::new(
        sentinels.into_iter().map(|s| s.addr().clone()),
        master,
        SentinelServerType::Master,
    )
    .map_err(|e| e.to_string())?
    .set_client_to_redis_db(db);
    if let Some(u) = &settings.username {
        b = b.set_client_to_redis_username(u);
    }
    if let Some(p) = &secrets.password {
        b = b.set_client_to_redis_password(p);
    }
    if tls {
        b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
    }
    if let Some(c) = secrets.certificates() {
        b = b
            .set_client_to_redis_certificates(c.clone())
            .set_client_to_sentinel_certificates(c);
    }
    let client = b.build().map_err(|e| e.to_string())?;
    Ok((client, db))
}

impl Connector for Node {
    type Conn = MultiplexedConnection;

    fn connecting(&self) -> &'static str {
        match self.target {
            Target::Direct(_) => "connecting to Redis",
            Target::Sentinels { .. } => "asking the Sentinels for the master",
        }
    }

    async fn connect(&self) -> RedisResult<MultiplexedConnection> {
        let client = match &self.target {
            Target::Direct(client) => client.clone(),
            Target::Sentinels { settings, secrets } => {
                // A client for this lookup only: it keeps a connection to
                // each Sentinel it asked, which would stay open for as long
                // as the store if the client did.
                let (mut sentinels, _) = sentinel_client(settings, secrets).map_err(|e| {
                    RedisError::from((redis::ErrorKind::InvalidClientConfig, "Sentinels", e))
                })?;
                sentinels.async_get_client().await?
            }
        };
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let mut conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        super::name::set(&mut conn).await?;
        Ok(conn)
    }

    fn db(&self) -> i64 {
        self.db
    }
}
