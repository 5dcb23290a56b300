//! What the integration tests share: bounded polling ([`eventually`]), key prefixes no
//! other test shares ([`unique_prefix`]), the gateway's test vectors ([`vectors`]), child
//! processes ([`ChildGuard`], [`payworker_command`], [`spawn_payworker`], [`free_port`]),
//! the sandbox gateway of the process-level runs ([`notifying_sandbox`]), every Redis key
//! read back as text ([`key_as_text`]), and Redis servers that a test owns: one standalone server it may stop and restart
//! ([`RedisServer`]), a three-master Redis Cluster on loopback ports ([`RedisCluster`]),
//! replication and failover between owned servers ([`replication`]), a switchable TCP proxy
//! that stands for a DNS name moving to a new primary ([`SwitchProxy`]), a server reachable only
//! with TLS and a password ([`TlsRedisServer`]), and Redis CPU
//! accounting for throughput tests ([`redis_cpu_micros`]).
//!
//! Everything here binds 127.0.0.1 only, waits with bounded deadlines, and kills its processes on
//! drop. Tests that only need *a* Redis use the shared one at 127.0.0.1:6379 with a key prefix
//! from [`unique_prefix`]; they never flush it.

mod cluster;
mod gateway;
mod process;
mod proxy;
mod redis_cpu;
mod redis_dump;
mod redis_server;
pub mod replication;
mod tls_server;

pub use cluster::RedisCluster;
pub use gateway::notifying_sandbox;
pub use process::{ChildGuard, env_or, free_port, payworker_command, spawn_payworker};
pub use proxy::SwitchProxy;
pub use redis_cpu::{parse_cpu_micros, redis_cpu_micros};
pub use redis_dump::key_as_text;
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

/// The gateway's independent test vectors (`crates/gateway/tests/fixtures/gateway.json`,
/// which the gateway crate's own tests check): the application's tests use its key and
/// webhook cases.
pub fn vectors() -> serde_json::Value {
    let text = include_str!("../../../crates/gateway/tests/fixtures/gateway.json");
    serde_json::from_str(text).expect("fixture is JSON")
}
