//! One Redis connection type for a single server or a Cluster, so every queue step is
//! written once. Timeouts are explicit: a blocking read needs a response timeout longer
//! than its `BLOCK` (redis-rs' default is shorter).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisFuture, RedisResult, Value};

/// Where Redis is: one server, or the seed nodes of a Cluster.
#[derive(Debug, Clone)]
pub enum RedisTarget {
    /// A single server (or a proxy), by URL.
    Single(String),
    /// A Redis Cluster, by some of its nodes' URLs.
    Cluster(Vec<String>),
}

/// A multiplexed connection to either kind of target; cheap to clone.
#[derive(Clone)]
pub enum RedisConn {
    /// A single server.
    Single(redis::aio::MultiplexedConnection),
    /// A Cluster.
    Cluster(ClusterConnection),
    /// A single server, reconnecting on its own after the server goes away: for long-lived
    /// handles outside the queue's read loop (handlers, the ingress).
    Managed(ConnectionManager),
}

impl RedisTarget {
    /// Opens a connection whose answers may take up to `response_timeout`.
    pub async fn connect(&self, response_timeout: Duration) -> RedisResult<RedisConn> {
        let connect_timeout = Duration::from_secs(5);
        match self {
            RedisTarget::Single(url) => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(Some(response_timeout));
                let conn = redis::Client::open(url.as_str())?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                Ok(RedisConn::Single(conn))
            }
            RedisTarget::Cluster(nodes) => {
                let conn = ClusterClient::builder(nodes.clone())
                    .connection_timeout(connect_timeout)
                    .response_timeout(response_timeout)
                    .build()?
                    .get_async_connection()
                    .await?;
                Ok(RedisConn::Cluster(conn))
            }
        }
    }

    /// A connection that outlives a restart of Redis: a single server's connection manager
    /// (connected lazily, so a process can start while Redis is down; each command fails
    /// fast until it is back), or a Cluster connection (which reconnects by itself).
    pub async fn connect_managed(&self, response_timeout: Duration) -> RedisResult<RedisConn> {
        match self {
            RedisTarget::Single(url) => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(Duration::from_secs(2)))
                    .set_response_timeout(Some(response_timeout))
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_secs(1))
                    .set_number_of_retries(2);
                let client = redis::Client::open(url.as_str())?;
                Ok(RedisConn::Managed(ConnectionManager::new_lazy_with_config(
                    client, config,
                )?))
            }
            RedisTarget::Cluster(_) => self.connect(response_timeout).await,
        }
    }

    /// Whether this is a Cluster (where a transaction must stay in one slot).
    pub fn is_cluster(&self) -> bool {
        matches!(self, RedisTarget::Cluster(_))
    }
}

impl ConnectionLike for RedisConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConn::Single(c) => c.req_packed_command(cmd),
            RedisConn::Cluster(c) => c.req_packed_command(cmd),
            RedisConn::Managed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            RedisConn::Managed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConn::Single(c) => c.get_db(),
            RedisConn::Cluster(c) => c.get_db(),
            RedisConn::Managed(c) => c.get_db(),
        }
    }
}
