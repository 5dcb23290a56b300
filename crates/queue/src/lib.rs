//! The job queue: apalis 1.0 workers on the project's own Redis Streams backend.
//!
//! Why not apalis-redis, and the design in full: `docs/design/queue.md`. In short: a
//! producer in any language does one `XADD <prefix>:{<queue>:<p>} * job '<json>'`; workers
//! read with a consumer group in batches, decode inside the fetch (a bad entry is
//! dead-lettered, never fatal), renew leases on what they hold, reclaim what dead workers
//! held (`XAUTOCLAIM`), dead-letter what keeps killing workers, retry with exponential
//! full-jitter backoff through a delayed set, and ack in batches from one flusher.
//!
//! - `keys`: key names (one hash tag per partition); `reply`: stream reply parsing.
//! - `job`: the `Job` trait, `JobError`, and a queue's `Validator`; `envelope`: entry
//!   fields and decoding.
//! - `retry`: the retry policy (pure); `redact`: what a dead letter may keep.
//! - `backend`: the apalis `Backend`; `fetch`: reads and reclaims; `ack`: the ack layer.
//! - `flusher`: batched outcome writes; `upkeep`: leases, promotion, and the retention
//!   loop over `retention` (what a partition keeps, and for how long).
//! - `dlq`: dead letters, and `reason` their one list of reason codes; `conn`: single-server or Cluster connections (TLS, failover).
//! - `durability`: the persistence check at start, and waiting for replicas (`WAIT`).
//! - `worker`: running a queue (the composition root for one queue).

mod ack;
mod backend;
pub mod conn;
pub mod dlq;
pub mod durability;
pub mod envelope;
mod fetch;
mod flusher;
pub mod job;
pub mod keys;
pub mod reason;
pub mod redact;
mod reply;
pub mod retention;
pub mod retry;
mod runtime;
mod upkeep;
mod worker;

pub use backend::{BackendError, StreamsBackend};
pub use conn::{RedisConn, RedisTarget};
pub use job::{Invalid, Job, JobError, NotAJob, Validator};
pub use keys::{GROUP, QueueKeys};
pub use reason::DeadReason;
pub use retry::RetryPolicy;
pub use runtime::{
    DeadHook, DeadNotice, JobMeta, Lease, QueueConfig, Refused, RefusedHook, now_ms,
};
pub use worker::{Queue, QueueError, run};
