//! The Redis connection itself: following a failover, TLS with a password from a file,
//! durability checks at start, and waiting for replicas.

mod durability;
mod failover;
mod tls;
mod wait;
