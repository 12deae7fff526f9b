//! The connection to a Redis Cluster: the client learns the slot map from
//! the seeds and keeps one multiplexed connection to every node it lists,
//! replicas included (they serve none of its calls), follows `MOVED` and
//! `ASK`, and learns the new map after a failover. Each node connection
//! is named like every other of the process.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::{ClusterConnection, Connect};
use redis::{
    AsyncConnectionConfig, Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value,
};

use super::lazy::Connector;

pub(super) struct Cluster(pub(super) ClusterClient);

impl Connector for Cluster {
    type Conn = ClusterConnection<NamedNode>;

    fn connecting(&self) -> &'static str {
        "connecting to the cluster"
    }

    async fn connect(&self) -> RedisResult<ClusterConnection<NamedNode>> {
        self.0.get_async_generic_connection::<NamedNode>().await
    }
}

/// One node's connection, named when it is made (the first, and each one
/// the client makes after a failover).
#[derive(Clone)]
pub(super) struct NamedNode(MultiplexedConnection);

impl Connect for NamedNode {
    fn connect_with_config<'a, T>(info: T, config: AsyncConnectionConfig) -> RedisFuture<'a, Self>
    where
        T: IntoConnectionInfo + Send + 'a,
    {
        Box::pin(async move {
            let mut conn = MultiplexedConnection::connect_with_config(info, config).await?;
            super::name::set(&mut conn).await?;
            Ok(NamedNode(conn))
        })
    }
}

impl ConnectionLike for NamedNode {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}
