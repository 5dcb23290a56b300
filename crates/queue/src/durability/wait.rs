//! Waiting until replicas hold a write: `WAIT`, then `WAITAOF` where the server has it.
//!
//! Both act on the connection they are sent on: `WAIT n t` blocks until `n` replicas have
//! received every write made so far on that connection (or `t` passes) and answers how many
//! did. So the wait must go over the connection that made the write, and on a Cluster to the
//! master holding the key (redis-rs would otherwise send it to every master). `WAITAOF`
//! (Redis 7.2 and later) additionally waits until the primary and the replicas have fsynced
//! the write to their append-only files; on an older server it is an unknown command, which
//! is noticed once and remembered.
//!
//! What it cannot do: make a lost write come back. It tells the caller, before it goes on
//! (answers a webhook, calls the gateway), that a failover now would keep the write.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use redis::{RedisError, Value};

use crate::RedisConn;

/// How many replicas must acknowledge a write, and how long to wait for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicaWait {
    /// Replicas that must acknowledge; 0 turns waiting off.
    pub replicas: u32,
    /// Longest wait for each of `WAIT` and `WAITAOF`.
    pub timeout: Duration,
}

/// Why a write is not known to be held by enough replicas.
#[derive(Debug, thiserror::Error)]
pub enum WaitError {
    /// `WAIT` timed out with fewer replicas than required holding the write.
    #[error(
        "only {acknowledged} of {required} Redis replicas acknowledged the write within {timeout:?}"
    )]
    TooFewReplicas {
        /// Replicas required.
        required: u32,
        /// Replicas that acknowledged.
        acknowledged: u32,
        /// The wait.
        timeout: Duration,
    },
    /// `WAITAOF` timed out before the write was fsynced where required.
    #[error(
        "the write was fsynced by the primary: {local}, and by {replicas} of {required} \
         Redis replicas within {timeout:?}"
    )]
    NotFsynced {
        /// Whether the primary fsynced it (only asked when the primary has an append-only file).
        local: bool,
        /// Replicas that fsynced it.
        replicas: u32,
        /// Replicas required.
        required: u32,
        /// The wait.
        timeout: Duration,
    },
    /// Redis failed or answered something unexpected.
    #[error("waiting for Redis replicas failed: {0}")]
    Redis(#[from] RedisError),
}

/// What is known about `WAITAOF` on the server.
const UNKNOWN: u8 = 0;
const WITH_LOCAL: u8 = 1;
const REPLICAS_ONLY: u8 = 2;
const ABSENT: u8 = 3;

/// Waits for replicas after a write; remembers whether the server has `WAITAOF`. Cheap to
/// clone (clones share what was learnt).
#[derive(Debug, Clone)]
pub struct ReplicaWaiter {
    wait: ReplicaWait,
    waitaof: Arc<AtomicU8>,
}

impl ReplicaWaiter {
    /// A waiter for `wait` (from `redis.wait_replicas` and `redis.wait_timeout`).
    pub fn new(wait: ReplicaWait) -> Self {
        Self {
            wait,
            waitaof: Arc::new(AtomicU8::new(UNKNOWN)),
        }
    }

    /// Whether waiting is on (`replicas` > 0).
    pub fn is_enabled(&self) -> bool {
        self.wait.replicas > 0
    }

    /// Whether the server was found to have `WAITAOF`; `None` before the first wait.
    pub fn has_waitaof(&self) -> Option<bool> {
        match self.waitaof.load(Ordering::Relaxed) {
            UNKNOWN => None,
            ABSENT => Some(false),
            _ => Some(true),
        }
    }

    /// Waits until the configured number of replicas hold every write made so far on `conn`,
    /// the connection that wrote `key` (on a Cluster, the wait goes to the master of `key`'s
    /// slot). Returns the number of replicas that acknowledged; returns 0 at once when
    /// waiting is off.
    ///
    /// Call it right after the write, on the same `conn` (or a clone: clones share the
    /// connection). If the connection was replaced in between (a failover, see
    /// [`RedisConn::Managed`]), the new one has no write to wait for and succeeds at once;
    /// the write itself may then be lost, which no wait can tell.
    ///
    /// # Errors
    ///
    /// [`WaitError::TooFewReplicas`] or [`WaitError::NotFsynced`] when too few acknowledged
    /// within `redis.wait_timeout` (each of `WAIT` and `WAITAOF` may take that long), and
    /// [`WaitError::Redis`] when Redis failed.
    pub async fn wait_for(&self, conn: &mut RedisConn, key: &str) -> Result<u32, WaitError> {
        if self.wait.replicas == 0 {
            return Ok(0);
        }
        self.wait_replicas(conn, key).await
    }

    /// [`Self::wait_for`] when there are replicas to wait for: a span of its own (a trace
    /// shows what the wait costs), which the common case without replicas does not open.
    #[tracing::instrument(name = "redis_wait", skip_all, fields(replicas = self.wait.replicas))]
    async fn wait_replicas(&self, conn: &mut RedisConn, key: &str) -> Result<u32, WaitError> {
        let ReplicaWait { replicas, timeout } = self.wait;
        let millis = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(millis);
        let acknowledged: u32 =
            redis::from_redis_value(send(conn, key, &wait).await?).map_err(RedisError::from)?;
        if acknowledged < replicas {
            return Err(WaitError::TooFewReplicas {
                required: replicas,
                acknowledged,
                timeout,
            });
        }
        self.wait_aof(conn, key, millis).await?;
        Ok(acknowledged)
    }

    /// `WAITAOF`, unless the server is known not to have it. Asks for the primary's own fsync
    /// too, unless it has no append-only file (then `WAITAOF 1` is refused; noticed once).
    async fn wait_aof(
        &self,
        conn: &mut RedisConn,
        key: &str,
        millis: u64,
    ) -> Result<(), WaitError> {
        let ReplicaWait { replicas, timeout } = self.wait;
        loop {
            let known = self.waitaof.load(Ordering::Relaxed);
            if known == ABSENT {
                return Ok(());
            }
            let local = u32::from(known != REPLICAS_ONLY);
            let mut cmd = redis::cmd("WAITAOF");
            cmd.arg(local).arg(replicas).arg(millis);
            let reply = match send(conn, key, &cmd).await {
                Ok(reply) => reply,
                Err(error) if is_unknown_command(&error) => {
                    self.waitaof.store(ABSENT, Ordering::Relaxed);
                    tracing::info!("Redis has no WAITAOF (before 7.2): waiting with WAIT only");
                    return Ok(());
                }
                Err(error) if local == 1 && error.to_string().contains("appendonly") => {
                    self.waitaof.store(REPLICAS_ONLY, Ordering::Relaxed);
                    continue;
                }
                Err(error) => return Err(error.into()),
            };
            if known == UNKNOWN {
                self.waitaof.store(WITH_LOCAL, Ordering::Relaxed);
            }
            let (local_done, replicas_done): (u32, u32) =
                redis::from_redis_value(reply).map_err(RedisError::from)?;
            if local_done < local || replicas_done < replicas {
                return Err(WaitError::NotFsynced {
                    local: local_done >= 1,
                    replicas: replicas_done,
                    required: replicas,
                    timeout,
                });
            }
            return Ok(());
        }
    }
}

/// Sends `cmd` on `conn`; on a Cluster, to the master of `key`'s slot. A server error reply
/// comes back as `Err`.
async fn send(conn: &mut RedisConn, key: &str, cmd: &redis::Cmd) -> Result<Value, RedisError> {
    match conn {
        RedisConn::Cluster(cluster) => {
            let route = Route::with_key(key, SlotAddr::Master);
            let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
            cluster
                .route_command(cmd.clone(), routing)
                .await?
                .extract_error()
        }
        conn => cmd.query_async(conn).await,
    }
}

fn is_unknown_command(error: &RedisError) -> bool {
    error.code() == Some("ERR")
        && error
            .to_string()
            .to_ascii_lowercase()
            .contains("unknown command")
}
