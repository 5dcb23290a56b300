//! Test support that more than one crate's tests need (a dev-dependency only): Redis
//! servers a test owns, the shared Redis, the queue's test job, child processes, bounded
//! polling and key prefixes no other test shares.
//!
//! Redis servers that a test owns: one standalone server it may stop and restart
//! ([`RedisServer`]), a three-master Redis Cluster on loopback ports ([`RedisCluster`]),
//! replication and failover between owned servers ([`replication`]), a switchable TCP proxy
//! that stands for a DNS name moving to a new primary ([`SwitchProxy`]), a server reachable
//! only with TLS and a password ([`TlsRedisServer`]), and Redis CPU accounting for
//! throughput tests ([`redis_cpu_micros`]). Tests that only need *a* Redis use the shared
//! one at 127.0.0.1:6379 ([`shared_redis`]) with a key prefix from [`unique_prefix`]; they
//! never flush it. The queue's test job and its worker: [`queue_job`].
//!
//! Everything here binds 127.0.0.1 only, waits with bounded deadlines, and kills its
//! processes on drop.
//!
//! Modules: `shared_redis`, `redis_server`, `cluster`, `replication`, `tls_server`,
//! `proxy`, `redis_cpu`, `queue_job`, and `process` (child processes, a free port).

mod cluster;
mod process;
mod proxy;
pub mod queue_job;
mod redis_cpu;
mod redis_server;
pub mod replication;
pub mod shared_redis;
mod tls_server;

pub use cluster::{RedisCluster, owner_of};
pub use process::{ChildGuard, free_port};
pub use proxy::SwitchProxy;
pub use redis_cpu::{parse_cpu_micros, redis_cpu_micros};
pub use redis_server::RedisServer;
pub use tls_server::TlsRedisServer;

use std::future::Future;
use std::time::{Duration, Instant};

/// A key or queue prefix no other test (or run) shares: `test-<test>-<16 random hex digits>`.
pub fn unique_prefix(test: &str) -> String {
    format!("test-{test}-{:016x}", rand::random::<u64>())
}

/// Polls `f` until it returns `Some`, or panics after `timeout`. Never a bare sleep.
pub async fn eventually<F, Fut, T>(timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
