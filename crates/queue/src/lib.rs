//! A Redis Streams backend for [apalis](https://docs.rs/apalis) 1.0: jobs that any
//! language can produce with one `XADD`, run by workers that lease what they hold, retry with
//! backoff, and dead-letter what cannot succeed, with the reason.
//!
//! Generic over the job type ([`Job`]: any serde type): it knows nothing of what the jobs
//! do. Why not apalis-redis, and the design in full: `docs/design/queue.md` of the payworker
//! repository. In short: a producer does `XADD <prefix>:{<queue>:<p>} * job '<json>'`;
//! workers read with a consumer group in batches, decode inside the fetch (a bad entry is
//! dead-lettered, never fatal), renew leases on what they hold, reclaim what dead workers
//! held (`XAUTOCLAIM`), dead-letter what keeps killing workers, retry with exponential
//! full-jitter backoff through a delayed set, and ack in batches from one flusher. Dead
//! letters and retry histories never keep payment card data ([`redact`]).
//!
//! Producing and consuming a job (runs against the Redis at 127.0.0.1:6379):
//!
//! ```
//! use std::time::Duration;
//!
//! use payworker_queue::{Job, JobError, JobMeta, QueueConfig, QueueKeys, RedisTarget};
//! use redis::AsyncCommands;
//! use tokio_util::sync::CancellationToken;
//!
//! #[derive(serde::Deserialize)]
//! struct Greet {
//!     name: String,
//! }
//! impl Job for Greet {}
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prefix = format!("example-{:08x}", rand::random::<u32>());
//! let config = QueueConfig::new(&prefix, "greet");
//!
//! // A producer, in any language: one XADD of a `job` field holding JSON.
//! let client = redis::Client::open("redis://127.0.0.1:6379")?;
//! let mut conn = client.get_multiplexed_async_connection().await?;
//! let stream = QueueKeys::new(&prefix, "greet", 0).stream;
//! let _: String = conn.xadd(&stream, "*", &[("job", r#"{"name":"Ada"}"#)]).await?;
//!
//! // A worker: runs each job once, acks it, stops when told to.
//! let stop = CancellationToken::new();
//! let done = stop.clone();
//! let handler = move |job: Greet, meta: JobMeta| {
//!     let done = done.clone();
//!     async move {
//!         println!("hello, {} (entry {})", job.name, meta.entry_id);
//!         done.cancel(); // one job is enough for this example
//!         Ok::<(), JobError>(())
//!     }
//! };
//! let target = RedisTarget::Single("redis://127.0.0.1:6379".into());
//! payworker_queue::run(config, target, handler, stop, Duration::from_secs(5)).await?;
//!
//! let left: usize = conn.xlen(&stream).await?;
//! assert_eq!(left, 0, "the job was acked and deleted");
//! let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await?;
//! if !keys.is_empty() {
//!     let _: () = conn.del(keys).await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Modules:
//! - `config`: a queue's settings ([`QueueConfig`]); `keys`: key names (one hash tag per
//!   partition); `reply`: stream reply parsing.
//! - `job`: the [`Job`] trait, [`JobError`], [`NotAJob`], and a queue's [`Validator`];
//!   `envelope`: entry fields and decoding.
//! - `lease`: what a handler knows of its entry ([`JobMeta`]) and its hold on it ([`Lease`]);
//!   `hooks`: the dead-letter and refusal hooks; `shared`: what one process shares per queue.
//! - `retry`: the retry policy (pure); `redact`: what a dead letter may keep.
//! - `backend`: the apalis `Backend`; `fetch`: reads and reclaims; `ack`: the ack layer.
//! - `flusher`: batched outcome writes; `upkeep`: leases, promotion, and the retention
//!   loop over `retention` (what a partition keeps, and for how long).
//! - `dlq`: dead letters (written, read back masked, paged with filters, re-driven and
//!   deleted atomically, in bulk with progress), and `reason` their one list of reason codes.
//! - `conn`: single-server or Cluster connections (TLS, failover).
//! - `durability`: the persistence check at start, and waiting for replicas (`WAIT`).
//! - `metrics`: the queue's metric names, recorded through the `metrics` facade (runs by
//!   outcome and duration, reclaims, each partition's depth); the application exports them.
//! - `joblog`: one log line per job outcome (what the run ended with, what the queue wrote,
//!   how long it took), in the span the handler names ([`JobMeta::log_outcome_in`]).
//! - `lanes`: the weighted gate that shares a process's slots among a queue's lanes
//!   ([`LaneGate`]), so a lane's jobs never wait behind another lane's backlog.
//! - `quiet`: the [`Quiet`] switch that stops fetching and starts it again, for deploys.
//! - `worker`: running a queue (the composition root for one queue).

mod ack;
mod backend;
pub mod config;
pub mod conn;
pub mod dlq;
pub mod durability;
pub mod envelope;
mod fetch;
mod flusher;
pub mod hooks;
pub mod job;
mod joblog;
pub mod keys;
pub mod lanes;
pub mod lease;
pub mod metrics;
pub mod quiet;
pub mod reason;
pub mod redact;
mod reply;
pub mod retention;
pub mod retry;
mod shared;
mod upkeep;
mod worker;

pub use backend::{BackendError, StreamsBackend};
pub use config::{Lane, QueueConfig};
pub use conn::{RedisConn, RedisTarget};
pub use hooks::{DeadHook, DeadNotice, Refused, RefusedHook};
pub use job::{Invalid, Job, JobError, NotAJob, Validator};
pub use keys::{DEFAULT_LANE, GROUP, Place, QueueKeys};
pub use lanes::LaneGate;
pub use lease::{JobMeta, Lease};
pub use quiet::Quiet;
pub use reason::DeadReason;
pub use retry::RetryPolicy;
pub use shared::now_ms;
pub use worker::{Queue, QueueError, run};
