//! Redis servers that a test owns: one standalone server it may stop and restart
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
mod proxy;
mod redis_cpu;
mod redis_server;
pub mod replication;
mod tls_server;

pub use cluster::RedisCluster;
pub use proxy::SwitchProxy;
pub use redis_cpu::{parse_cpu_micros, redis_cpu_micros};
pub use redis_server::RedisServer;
pub use tls_server::TlsRedisServer;

/// A key or queue prefix no other test (or run) shares: `test-<test>-<16 random hex digits>`.
pub fn unique_prefix(test: &str) -> String {
    format!("test-{test}-{:016x}", rand::random::<u64>())
}
