//! The queue's integration tests against a real Redis, one binary: delivery, dead letters,
//! retries, the outcome log lines, ownership, recovery, retention, shutdown, quiet, crashes,
//! lanes (checkouts before a deep batch backlog),
//! and a partitioned queue on a Redis Cluster. The test job, the shared Redis and the servers
//! a test owns come from `payworker-testkit`, which the application's tests use too.

mod cluster;
mod crash;
mod dead_letters;
mod delivery;
mod fixture;
mod joblog;
mod lanes;
mod ownership;
mod quiet;
mod recovery;
mod retention;
mod retries;
mod shutdown;

use std::time::Duration;

use payworker_queue::RedisTarget;
use payworker_testkit::ChildGuard;
use payworker_testkit::queue_job::{Ping, Runs, config, keys, ping, setup, start};
use payworker_testkit::shared_redis::{REDIS, cleanup, dlq, enqueue, pending, redis};
use redis::AsyncCommands;
use tokio_util::sync::CancellationToken;

/// A worker in a process of its own ([`fixture::counting_worker`]: each finished job
/// increments `<prefix>:done:<n>`), killed when the guard drops. `concurrency` and `lease`
/// are the queue's settings.
pub fn worker_process(prefix: &str, concurrency: usize, lease: Duration) -> ChildGuard {
    ChildGuard(
        fixture::command(prefix, concurrency, lease)
            .spawn()
            .unwrap(),
    )
}
